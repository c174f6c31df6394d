"""Reading videos (decord) and frame folders (OpenCV) at a fixed frame rate.

Plain functions, no mmengine: they are shared by the training and evaluation
transforms and by the feature-extraction tool.

Frame sampling (docs/method.md sections 1-2): frames are sampled at ``fps``
(1 by default) from the native frame rate ``r`` of the file. The ``k``-th
sampled frame is the native frame ``floor(k * r / fps + 0.5)`` (rounding half
up, so the result never depends on Python's round-half-to-even), for every
``k`` whose index falls inside the video. A folder of pre-extracted frames
(``00000.jpg``, ``00001.jpg``, ... sorted by name) is taken to be at
:data:`FRAME_FOLDER_FPS` (1 fps) already, so at ``fps=1`` every image is used.

Anything that cannot be read raises :class:`VideoReadError`, whose message
names the path and the reason (missing, empty, unreadable/corrupt, zero
frames). Only decoding and file errors become a :class:`VideoReadError`
(decord's ``DECORDError``, a ``RuntimeError`` raised by the decoder, an
``OSError`` for a missing or unreadable file, see :func:`decode_errors`);
anything else (a ``TypeError`` from a bug, a ``MemoryError``) propagates
with its own traceback. decord and FFmpeg also print
their errors straight to the process's standard error (file descriptor 2,
below Python); :func:`silence_native_stderr` keeps that text out of the log
while a file is opened or decoded, since the :class:`VideoReadError` already
says what went wrong.
"""
import contextlib
import math
import os
import os.path as osp
import sys
import threading
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

__all__ = [
    'VideoReadError', 'FRAME_FOLDER_FPS', 'IMAGE_EXTENSIONS',
    'DEFAULT_FPS_FALLBACK', 'sample_frame_indices', 'list_frame_files',
    'is_frame_folder', 'OpenedVideo', 'open_video', 'video_length_1fps',
    'silence_native_stderr', 'decode_errors', 'read_video_frames',
    'resize_short_side', 'center_crop', 'resize_center_crop'
]

#: Frame rate assumed for a folder of pre-extracted frames.
FRAME_FOLDER_FPS = 1.0
#: File extensions (lower case) recognised as frames in a frame folder.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')
#: Native frame rate assumed when a container reports none (0, NaN or inf).
DEFAULT_FPS_FALLBACK = 25.0


class VideoReadError(Exception):
    """A video (file or frame folder) could not be read.

    Args:
        path (str): The video file or frame folder at fault.
        reason (str): Why it could not be read, e.g. ``'missing'``,
            ``'empty file (0 bytes)'``, ``'unreadable or corrupt: ...'``,
            ``'zero frames'``, ``'too short: ...'``.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f'cannot read video {self.path!r}: {self.reason}')

    def __reduce__(self):
        # keep the two-argument constructor picklable (dataloader workers)
        return (self.__class__, (self.path, self.reason))


def decode_errors() -> Tuple[type, ...]:
    """Exception types that mean "this file cannot be decoded".

    decord's ``DECORDError`` (imported lazily; it derives from
    ``Exception`` only), ``RuntimeError`` (raised by decoder bindings) and
    ``OSError`` (missing, unreadable or truncated file). ``MemoryError``,
    ``TypeError`` and other exceptions are not included: they are bugs or
    resource failures, not a corrupt video, and must stop the run.

    Returns:
        tuple[type]: the exception classes, for an ``except`` clause.
    """
    errors: Tuple[type, ...] = (RuntimeError, OSError)
    try:
        from decord._ffi.base import DECORDError
    except ImportError:  # decord missing or reorganised
        return errors
    return (DECORDError, ) + errors


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """Short one-line description of an exception (decord's are long)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ''
    line = f'{type(exc).__name__}: {line}'
    return line if len(line) <= limit else line[:limit] + '...'


def sample_frame_indices(num_native: int,
                         native_fps: float,
                         fps: float = 1.0) -> np.ndarray:
    """Native frame indices of the frames sampled at ``fps``.

    Index ``k`` maps to native frame ``floor(k * native_fps / fps + 0.5)``;
    all ``k`` whose native index is ``< num_native`` are kept.

    Args:
        num_native (int): Number of frames in the file (>= 0).
        native_fps (float): The file's frame rate (> 0).
        fps (float): Sampling rate (> 0). Defaults to 1.0.

    Returns:
        np.ndarray: int64 array ``[T]`` of non-decreasing native indices,
        ``T >= 1`` when ``num_native >= 1`` (frame 0 is always kept).
    """
    if num_native < 0:
        raise ValueError(f'num_native must be >= 0, got {num_native}')
    if not (native_fps > 0 and math.isfinite(native_fps)):
        raise ValueError(
            f'native_fps must be a finite number > 0, got {native_fps}')
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f'fps must be a finite number > 0, got {fps}')
    if num_native == 0:
        return np.zeros((0, ), dtype=np.int64)
    ratio = native_fps / fps
    count = int(math.ceil(num_native / ratio)) + 2
    idx = np.floor(np.arange(count, dtype=np.float64) * ratio + 0.5)
    idx = idx.astype(np.int64)
    return idx[idx < num_native]


def list_frame_files(folder: str) -> List[str]:
    """Sorted image files of a frame folder.

    Args:
        folder (str): Folder holding ``00000.jpg``, ``00001.jpg``, ...

    Returns:
        list[str]: Full paths, sorted by file name; empty when the folder has
        no image (extensions :data:`IMAGE_EXTENSIONS`, any case).
    """
    names = [
        n for n in os.listdir(folder)
        if osp.splitext(n)[1].lower() in IMAGE_EXTENSIONS
    ]
    return [osp.join(folder, n) for n in sorted(names)]


def is_frame_folder(path: str) -> bool:
    """Whether ``path`` is a directory that holds at least one image file.

    Args:
        path (str): Any path.

    Returns:
        bool: True for a non-empty frame folder.
    """
    if not osp.isdir(path):
        return False
    with os.scandir(path) as it:
        for entry in it:
            if (entry.is_file() and osp.splitext(entry.name)[1].lower()
                    in IMAGE_EXTENSIONS):
                return True
    return False


_STDERR_LOCK = threading.Lock()
_STDERR_STATE = dict(depth=0, saved=-1)


@contextlib.contextmanager
def silence_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to ``/dev/null``.

    decord and FFmpeg report a corrupt file with lines such as ``moov atom
    not found`` and ``ERROR opening: ...`` written by C code to the process's
    standard error, which Python's ``sys.stderr`` redirection does not catch.
    Inside this context descriptor 2 points at ``/dev/null``; it is restored
    on exit. Nested and concurrent uses (threads) share one redirection,
    undone when the last one exits. Python's ``sys.stderr`` is flushed first
    so that nothing written before is lost.

    Args:
        enabled (bool): False makes the context a no-op. Defaults to True.

    Yields:
        None
    """
    if not enabled:
        yield
        return
    with _STDERR_LOCK:
        if _STDERR_STATE['depth'] == 0:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            try:
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
            except OSError:
                saved = -1
            if saved >= 0:
                os.dup2(devnull, 2)
                os.close(devnull)
            _STDERR_STATE['saved'] = saved
        _STDERR_STATE['depth'] += 1
    try:
        yield
    finally:
        with _STDERR_LOCK:
            _STDERR_STATE['depth'] -= 1
            if _STDERR_STATE['depth'] == 0 and _STDERR_STATE['saved'] >= 0:
                os.dup2(_STDERR_STATE['saved'], 2)
                os.close(_STDERR_STATE['saved'])
                _STDERR_STATE['saved'] = -1


def _check_exists(path: str) -> None:
    if not osp.exists(path):
        raise VideoReadError(path, 'missing (no such file or folder)')
    if osp.isfile(path) and osp.getsize(path) == 0:
        raise VideoReadError(path, 'empty file (0 bytes)')


def _open_decord(path: str, num_threads: int):
    """Open a decord reader; returns ``(reader, num_native, native_fps)``."""
    import decord  # imported lazily: frame folders need only OpenCV
    try:
        with silence_native_stderr():
            reader = decord.VideoReader(
                path, ctx=decord.cpu(0), num_threads=num_threads)
            num_native = len(reader)
            native_fps = float(reader.get_avg_fps())
    except decode_errors() as exc:
        raise VideoReadError(path,
                             f'unreadable or corrupt ({_first_line(exc)})')
    if num_native <= 0:
        raise VideoReadError(path, 'zero frames')
    if not (native_fps > 0 and math.isfinite(native_fps)):
        native_fps = DEFAULT_FPS_FALLBACK
    return reader, num_native, native_fps


def _probe(path: str, num_threads: int) -> Tuple[int, float]:
    """Return ``(num_native, native_fps)`` of a video file or frame folder."""
    _check_exists(path)
    if osp.isdir(path):
        num = len(list_frame_files(path))
        if num == 0:
            raise VideoReadError(path, 'zero frames (no image in folder)')
        return num, FRAME_FOLDER_FPS
    reader, num_native, native_fps = _open_decord(path, num_threads)
    del reader
    return num_native, native_fps


def video_length_1fps(path: str,
                      fps: float = 1.0,
                      num_threads: int = 1) -> int:
    """Number of frames a video has when sampled at ``fps`` (metadata only).

    Opens the container (or lists the frame folder) without decoding frames.

    Args:
        path (str): Video file or frame folder.
        fps (float): Sampling rate. Defaults to 1.0.
        num_threads (int): decord decoding threads (0 = auto). Defaults to 1.

    Returns:
        int: ``T >= 1``, the number of sampled frames.

    Raises:
        VideoReadError: Missing, empty, unreadable or zero-frame video.
    """
    num_native, native_fps = _probe(path, num_threads)
    return int(len(sample_frame_indices(num_native, native_fps, fps)))


def _selection(length: int, max_frames: Optional[int], start: Optional[int],
               num: Optional[int]) -> np.ndarray:
    """Positions (in the sampled sequence) to return."""
    for name, value, low in (('max_frames', max_frames, 1),
                             ('start', start, 0), ('num', num, 1)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, np.integer))
                                  or value < low):
            raise ValueError(
                f'{name} must be None or an int >= {low}, got {value!r}')
    if start is None and num is None:
        sel = np.arange(length, dtype=np.int64)
    else:
        start = 0 if start is None else int(start)
        num = max(length - start, 1) if num is None else int(num)
        sel = (start + np.arange(num, dtype=np.int64)) % length
    if max_frames is not None:
        sel = sel[:max_frames]
    return sel


def _is_identity(uniq: np.ndarray, native_idx: np.ndarray) -> bool:
    """Whether ``native_idx`` is already sorted without repeats."""
    return len(uniq) == len(native_idx) and bool(
        np.array_equal(uniq, native_idx))


def _read_folder(path: str, native_idx: np.ndarray) -> np.ndarray:
    # Each frame is converted straight into its slot of the output array
    # and a training segment (sorted, no repeats) is returned as read: no
    # np.stack and no re-ordering copy (2W frames of 640x360 are 39 MB per
    # copy; together 18 % of reading a segment, which made this slower
    # than mmaction2's RawFrameDecode, benchmarks/data_pipeline.py).
    files = list_frame_files(path)
    uniq, inverse = np.unique(native_idx, return_inverse=True)
    frames = None
    for n, i in enumerate(uniq):
        img = cv2.imread(files[int(i)], cv2.IMREAD_COLOR)
        if img is None:
            raise VideoReadError(
                path, f'unreadable or corrupt frame {files[int(i)]!r}')
        if frames is None:
            frames = np.empty((len(uniq), ) + img.shape, dtype=np.uint8)
        elif img.shape != frames.shape[1:]:
            shapes = sorted({img.shape, frames.shape[1:]})
            raise VideoReadError(path, f'frames of different sizes {shapes}')
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=frames[n])
    if frames is None:
        raise VideoReadError(path, 'no frame selected')
    if _is_identity(uniq, native_idx):
        return frames
    return frames[inverse.reshape(-1)]


class OpenedVideo:
    """An opened video file or frame folder, read at any frame rate.

    Opening reads the container's index (decord) or lists the folder, so
    that the length can be queried and frames decoded without opening the
    file twice. Use :func:`open_video` to create one.

    Args:
        path (str): Video file or frame folder.
        num_threads (int): decord decoding threads (0 = auto). Defaults to 1.

    Attributes:
        path (str): The path.
        num_native (int): Frames in the file / images in the folder (>= 1).
        native_fps (float): The file's frame rate (folders:
            :data:`FRAME_FOLDER_FPS`).

    Raises:
        VideoReadError: Missing, empty, unreadable or zero-frame video.
    """

    def __init__(self, path: str, num_threads: int = 1) -> None:
        path = str(path)
        _check_exists(path)
        self.path = path
        if osp.isdir(path):
            self._reader = None
            self.num_native, self.native_fps = _probe(path, num_threads)
        else:
            self._reader, self.num_native, self.native_fps = _open_decord(
                path, num_threads)

    def sampled_indices(self, fps: float = 1.0) -> np.ndarray:
        """Native indices of the frames sampled at ``fps``.

        Args:
            fps (float): Sampling rate. Defaults to 1.0.

        Returns:
            np.ndarray: int64 ``[T]``, see :func:`sample_frame_indices`.
        """
        return sample_frame_indices(self.num_native, self.native_fps, fps)

    def length(self, fps: float = 1.0) -> int:
        """Number ``T`` of frames at ``fps`` (>= 1).

        Args:
            fps (float): Sampling rate. Defaults to 1.0.

        Returns:
            int: ``T``.
        """
        return int(len(self.sampled_indices(fps)))

    def read(self,
             fps: float = 1.0,
             max_frames: Optional[int] = None,
             start: Optional[int] = None,
             num: Optional[int] = None) -> np.ndarray:
        """Decode frames; see :func:`read_video_frames` for the arguments.

        Returns:
            np.ndarray: uint8 RGB ``[T', H, W, 3]``.
        """
        if not (isinstance(fps,
                           (int, float)) and fps > 0 and math.isfinite(fps)):
            raise ValueError(f'fps must be a finite number > 0, got {fps!r}')
        idx = self.sampled_indices(fps)
        native_idx = idx[_selection(len(idx), max_frames, start, num)]
        if self._reader is None:
            return _read_folder(self.path, native_idx)
        uniq, inverse = np.unique(native_idx, return_inverse=True)
        try:
            with silence_native_stderr():
                batch = self._reader.get_batch(uniq.tolist()).asnumpy()
        except decode_errors() as exc:
            raise VideoReadError(
                self.path, f'corrupt: decoding failed ({_first_line(exc)})')
        if batch.ndim != 4 or batch.shape[0] != len(uniq) \
                or batch.shape[-1] != 3:
            raise VideoReadError(
                self.path, 'corrupt: decoder returned frames of shape '
                f'{batch.shape}, expected [{len(uniq)}, H, W, 3]')
        if _is_identity(uniq, native_idx) and batch.dtype == np.uint8 \
                and batch.flags.c_contiguous and batch.flags.writeable:
            return batch  # a sorted segment: no re-ordering copy
        return np.ascontiguousarray(batch[inverse.reshape(-1)], dtype=np.uint8)


def open_video(path: str, num_threads: int = 1) -> OpenedVideo:
    """Open a video file or frame folder once to query and decode it.

    Args:
        path (str): Video file or frame folder.
        num_threads (int): decord decoding threads (0 = auto). Defaults to 1.

    Returns:
        OpenedVideo: The opened video.

    Raises:
        VideoReadError: Missing, empty, unreadable or zero-frame video.
    """
    return OpenedVideo(path, num_threads)


def read_video_frames(path: str,
                      fps: float = 1.0,
                      max_frames: Optional[int] = None,
                      start: Optional[int] = None,
                      num: Optional[int] = None,
                      num_threads: int = 1) -> np.ndarray:
    """Decode a video (decord) or a frame folder (OpenCV) at ``fps``.

    With ``start`` / ``num`` left as None, all ``T`` sampled frames are
    returned. Otherwise the sampled positions ``(start + i) mod T`` for
    ``i < num`` are returned: a segment that runs past the end loops back to
    the beginning (``start`` defaults to 0, ``num`` to ``T - start``).
    ``max_frames`` then caps the number of returned frames. Only the frames
    needed are decoded.

    Args:
        path (str): Video file (any container decord/FFmpeg reads) or folder
            of frames ``00000.jpg, ...`` (taken as 1 fps).
        fps (float): Sampling rate in frames per second. Defaults to 1.0.
        max_frames (int, optional): Keep at most this many frames (the
            first ones). Defaults to None (no cap).
        start (int, optional): First sampled position, ``>= 0``.
        num (int, optional): Number of positions, ``>= 1``.
        num_threads (int): decord decoding threads (0 = auto). Defaults to 1
            (dataloader workers already run in parallel).

    Returns:
        np.ndarray: uint8 RGB frames ``[T', H, W, 3]`` (C-contiguous).

    Raises:
        VideoReadError: Missing, empty, unreadable/corrupt or zero-frame
            video, or a frame that fails to decode.
        ValueError: Bad ``fps`` / ``max_frames`` / ``start`` / ``num``.
    """
    if not (isinstance(fps, (int, float)) and fps > 0 and math.isfinite(fps)):
        raise ValueError(f'fps must be a finite number > 0, got {fps!r}')
    return OpenedVideo(path, num_threads).read(fps, max_frames, start, num)


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 \
            or frames.shape[-1] != 3:
        shape = getattr(frames, 'shape', type(frames).__name__)
        raise ValueError(
            f'frames must be an array [T, H, W, 3], got shape {shape}')


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Resize frames so that their shorter side is ``short_side`` pixels.

    The longer side becomes ``int(long * short_side / short)`` (truncated, as
    torchvision's ``Resize(int)`` does). Down-scaling uses ``cv2.INTER_AREA``
    (anti-aliased, close to PIL's bilinear with antialiasing), up-scaling
    ``cv2.INTER_LINEAR`` (bilinear). Frames already at the size are returned
    unchanged (no copy).

    Args:
        frames (np.ndarray): ``[T, H, W, 3]`` uint8 (or float) frames.
        short_side (int): Target length of the shorter side, ``>= 1``.

    Returns:
        np.ndarray: ``[T, H', W', 3]``, same dtype, ``min(H', W') ==
        short_side``.
    """
    _check_frames(frames)
    if not isinstance(short_side, (int, np.integer)) or short_side < 1:
        raise ValueError(f'short_side must be an int >= 1, got {short_side}')
    t, h, w = frames.shape[:3]
    if min(h, w) < 1:
        raise ValueError(f'frames must have H, W >= 1, got shape '
                         f'{frames.shape}')
    if h <= w:
        new_h, new_w = short_side, int(w * short_side / h)
    else:
        new_h, new_w = int(h * short_side / w), short_side
    if (new_h, new_w) == (h, w):
        return frames
    interp = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
    out = np.empty((t, new_h, new_w, 3), dtype=frames.dtype)
    for i in range(t):
        out[i] = cv2.resize(frames[i], (new_w, new_h), interpolation=interp)
    return out


def center_crop(frames: np.ndarray, crop: int) -> np.ndarray:
    """Crop the central ``crop x crop`` window of each frame.

    The offset is ``int(round((size - crop) / 2))`` per axis (torchvision's
    convention).

    Args:
        frames (np.ndarray): ``[T, H, W, 3]`` with ``H, W >= crop``.
        crop (int): Output side, ``>= 1``.

    Returns:
        np.ndarray: ``[T, crop, crop, 3]`` (a C-contiguous copy).
    """
    _check_frames(frames)
    if not isinstance(crop, (int, np.integer)) or crop < 1:
        raise ValueError(f'crop must be an int >= 1, got {crop}')
    h, w = frames.shape[1:3]
    if h < crop or w < crop:
        raise ValueError(f'frames of size {h}x{w} are smaller than the crop '
                         f'{crop}x{crop}')
    top = int(round((h - crop) / 2.0))
    left = int(round((w - crop) / 2.0))
    return np.ascontiguousarray(frames[:, top:top + crop, left:left + crop])


def resize_center_crop(frames: np.ndarray,
                       short_side: int = 256,
                       crop: int = 224) -> np.ndarray:
    """Evaluation preprocessing: resize the short side, then centre-crop.

    See :func:`resize_short_side` (INTER_AREA down, INTER_LINEAR up) and
    :func:`center_crop`.

    Args:
        frames (np.ndarray): ``[T, H, W, 3]`` uint8 RGB (``T`` may be 0).
        short_side (int): Short side after resizing. Defaults to 256.
        crop (int): Side of the centre crop, ``<= short_side``.
            Defaults to 224.

    Returns:
        np.ndarray: ``[T, crop, crop, 3]`` with the input's dtype.
    """
    _check_frames(frames)
    if not isinstance(crop, (int, np.integer)) or \
            not isinstance(short_side, (int, np.integer)) or \
            crop < 1 or short_side < crop:
        raise ValueError('expected ints with 1 <= crop <= short_side, got '
                         f'crop={crop!r}, short_side={short_side!r}')
    if frames.shape[0] == 0:
        return np.zeros((0, crop, crop, 3), dtype=frames.dtype)
    return center_crop(resize_short_side(frames, short_side), crop)
