"""Loading transforms: decode 1-fps frames for training and evaluation.

* :class:`DecodeSSLSegment` (training, docs/method.md section 1): a random
  segment of ``2W`` consecutive frames at 1 fps, looping short videos.
* :class:`DecodeRetrievalVideo` (evaluation, docs/method.md section 2): every
  frame at 1 fps, resized (short side 256) and centre-cropped (224).

Both read ``results['filename']`` (a video file or a frame folder) through
:mod:`hapvr_mm.datasets.video_io` and raise
:class:`~hapvr_mm.datasets.video_io.VideoReadError` on a bad video, which
:class:`~hapvr_mm.datasets.ssl_video_dataset.SSLVideoDataset` catches to skip
it. Randomness comes from NumPy's global generator, which mmengine seeds
(``--seed``, ``randomness=dict(seed=...)``) per process and worker.
"""
from typing import Dict, Optional

import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ..video_io import (VideoReadError, open_video, resize_center_crop,
                        resize_short_side)

__all__ = ['DecodeSSLSegment', 'DecodeRetrievalVideo', 'segment_positions']


def segment_positions(length: int,
                      num: int,
                      rng: Optional[np.random.RandomState] = None
                      ) -> np.ndarray:
    """Random segment of ``num`` consecutive positions in a looped sequence.

    When ``length >= num`` the start is uniform in ``[0, length - num]`` and
    the segment never wraps. When ``length < num`` the sequence is looped:
    the start is uniform in ``[0, length)`` and positions are taken modulo
    ``length``.

    Args:
        length (int): Length ``T >= 1`` of the sequence.
        num (int): Segment length ``>= 1`` (``2W`` for training).
        rng (np.random.RandomState, optional): Generator; defaults to NumPy's
            global one (seeded by mmengine).

    Returns:
        np.ndarray: int64 ``[num]`` positions in ``[0, length)``.
    """
    if length < 1 or num < 1:
        raise ValueError(
            f'expected length >= 1 and num >= 1, got {length} and {num}')
    randint = np.random.randint if rng is None else rng.randint
    if length >= num:
        start = int(randint(0, length - num + 1))
        return np.arange(start, start + num, dtype=np.int64)
    start = int(randint(0, length))
    return (start + np.arange(num, dtype=np.int64)) % length


def _positive_int(name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f'{name} must be an int >= 1'
                         f'{" or None" if allow_none else ""}, got {value!r}')


def _check_fps(fps) -> None:
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) \
            or not fps > 0:
        raise ValueError(f'fps must be a number > 0, got {fps!r}')


@TRANSFORMS.register_module()
class DecodeSSLSegment(BaseTransform):
    """Load a random segment of ``2W`` consecutive 1-fps frames.

    Reads ``results['filename']``; a video with fewer than ``2W`` sampled
    frames is looped (positions modulo its length, see
    :func:`segment_positions`).

    Required keys: ``filename``; ``window`` and ``min_frames`` when the
    transform's own arguments are None (:class:`SSLVideoDataset` sets both).

    Added keys: ``imgs`` (uint8 RGB ``np.ndarray [2W, H, W, 3]``),
    ``frame_inds`` (``[2W]`` positions in the 1-fps sequence),
    ``num_frames`` (``2W``), ``original_length`` (``T`` at ``fps``),
    ``img_shape`` / ``original_shape`` (``(H, W)``), ``modality`` (``'RGB'``).

    Args:
        window (int, optional): The window ``W``; the segment has ``2W``
            frames. None (default) takes ``results['window']``.
        fps (float): Sampling rate. Defaults to 1.0.
        min_frames (int, optional): Videos with fewer sampled frames raise
            :class:`VideoReadError` (reason ``'too short ...'``). None
            (default) takes ``results['min_frames']`` if present, else 1.
        short_side (int, optional): If set, frames are resized so that their
            shorter side has this length right after decoding (saves memory
            on large videos). Defaults to None (original size).
        num_threads (int): decord threads. Defaults to 1.
    """

    def __init__(self,
                 window: Optional[int] = None,
                 fps: float = 1.0,
                 min_frames: Optional[int] = None,
                 short_side: Optional[int] = None,
                 num_threads: int = 1) -> None:
        _positive_int('window', window)
        _positive_int('min_frames', min_frames)
        _positive_int('short_side', short_side)
        _check_fps(fps)
        self.window = window
        self.fps = float(fps)
        self.min_frames = min_frames
        self.short_side = short_side
        self.num_threads = num_threads

    def transform(self, results: Dict) -> Dict:
        """Decode the segment.

        Args:
            results (dict): Needs ``filename`` (and ``window`` when
                ``self.window`` is None).

        Returns:
            dict: ``results`` with the keys listed in the class docstring.

        Raises:
            VideoReadError: Bad or too short video.
            ValueError: No window given.
        """
        window = self.window if self.window is not None \
            else results.get('window')
        if window is None:
            raise ValueError('DecodeSSLSegment needs a window: pass window=W '
                             'or set results["window"]')
        _positive_int('window', window, allow_none=False)
        min_frames = self.min_frames if self.min_frames is not None \
            else results.get('min_frames', 1)
        path = results['filename']
        video = open_video(path, self.num_threads)
        length = video.length(self.fps)
        if length < min_frames:
            raise VideoReadError(
                path, f'too short: {length} frames at {self.fps:g} fps, '
                f'min_frames={min_frames}')
        num = 2 * int(window)
        pos = segment_positions(length, num)
        imgs = video.read(self.fps, start=int(pos[0]), num=num)
        if self.short_side is not None:
            imgs = resize_short_side(imgs, self.short_side)
        results['imgs'] = imgs
        results['frame_inds'] = pos
        results['num_frames'] = num
        results['original_length'] = length
        results['img_shape'] = imgs.shape[1:3]
        results['original_shape'] = imgs.shape[1:3]
        results['modality'] = 'RGB'
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(window={self.window}, '
                f'fps={self.fps}, min_frames={self.min_frames}, '
                f'short_side={self.short_side}, '
                f'num_threads={self.num_threads})')


@TRANSFORMS.register_module()
class DecodeRetrievalVideo(BaseTransform):
    """Load every 1-fps frame of a video for evaluation, resized and cropped.

    Frames are resized so that their short side is ``short_side`` and
    centre-cropped to ``crop`` (see
    :func:`~hapvr_mm.datasets.video_io.resize_center_crop`).

    Required keys: ``filename``.

    Added keys: ``imgs`` (uint8 RGB ``np.ndarray [T, crop, crop, 3]``),
    ``num_frames`` (``T``), ``original_length`` (frames at ``fps`` before the
    cap), ``original_shape`` (decoded ``(H, W)``), ``img_shape``
    (``(crop, crop)``), ``modality`` (``'RGB'``).

    Args:
        fps (float): Sampling rate. Defaults to 1.0.
        max_frames (int, optional): Keep only the first ``max_frames``
            frames. Defaults to None (all).
        short_side (int): Short side after resizing. Defaults to 256.
        crop (int): Centre-crop side. Defaults to 224.
        num_threads (int): decord threads. Defaults to 1.
    """

    def __init__(self,
                 fps: float = 1.0,
                 max_frames: Optional[int] = None,
                 short_side: int = 256,
                 crop: int = 224,
                 num_threads: int = 1) -> None:
        _check_fps(fps)
        _positive_int('max_frames', max_frames)
        _positive_int('short_side', short_side, allow_none=False)
        _positive_int('crop', crop, allow_none=False)
        if crop > short_side:
            raise ValueError(f'crop ({crop}) must be <= short_side '
                             f'({short_side})')
        self.fps = float(fps)
        self.max_frames = max_frames
        self.short_side = short_side
        self.crop = crop
        self.num_threads = num_threads

    def transform(self, results: Dict) -> Dict:
        """Decode, resize and crop all frames.

        Args:
            results (dict): Needs ``filename``.

        Returns:
            dict: ``results`` with the keys listed in the class docstring.

        Raises:
            VideoReadError: Bad video.
        """
        video = open_video(results['filename'], self.num_threads)
        frames = video.read(self.fps, max_frames=self.max_frames)
        results['original_length'] = video.length(self.fps)
        results['original_shape'] = frames.shape[1:3]
        imgs = resize_center_crop(frames, self.short_side, self.crop)
        results['imgs'] = imgs
        results['num_frames'] = int(imgs.shape[0])
        results['img_shape'] = imgs.shape[1:3]
        results['modality'] = 'RGB'
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(fps={self.fps}, '
                f'max_frames={self.max_frames}, '
                f'short_side={self.short_side}, crop={self.crop}, '
                f'num_threads={self.num_threads})')
