"""The two views of a source clip and their packing (docs/method.md s. 1).

:class:`HAPVRViews` turns the ``2W`` loaded frames of one source video into a
weak and a strong view of ``W`` frames each by running two sub-pipelines on
the same frames; :class:`PackSSLInputs` packs them into a uint8 tensor and an
:class:`~mmaction.structures.ActionDataSample`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmaction.registry import TRANSFORMS
from mmaction.structures import ActionDataSample
from mmcv.transforms import BaseTransform, Compose

from . import frame as _frame  # noqa: F401 (registers the transforms)
from . import randaugment as _randaugment  # noqa: F401
from . import temporal as _temporal  # noqa: F401
from .temporal import _check_frames, materialize_frames

__all__ = [
    'default_weak_pipeline', 'default_strong_pipeline', 'HAPVRViews',
    'PackSSLInputs'
]

Size = Union[int, Tuple[int, int]]

#: Keys of a view's results copied into ``results['view_metas']``.
VIEW_META_KEYS = ('temporal_transform', 'crop_box', 'flip', 'randaugment',
                  'overlay_text', 'overlay_logo', 'blur_sigma')


def default_weak_pipeline(window: int = 28,
                          crop_size: Size = 224,
                          pad_mode: str = 'loop') -> List[dict]:
    """Transform configs of the weak view (docs/method.md section 1).

    Random temporal crop to ``W``, RandomResizedCrop (scale 0.8-1.0, ratio
    3/4-4/3), horizontal flip with p=0.5.

    Args:
        window (int): the window ``W``. Default: 28.
        crop_size (int | tuple[int, int]): output frame size. Default: 224.
        pad_mode (str): see :class:`RandomTemporalCrop`. Default: 'loop'.

    Returns:
        list[dict]: transform configs for ``TRANSFORMS.build``.
    """
    return [
        dict(type='RandomTemporalCrop', window=window, pad_mode=pad_mode),
        dict(
            type='VideoRandomResizedCrop',
            size=crop_size,
            scale=(0.8, 1.0),
            ratio=(3 / 4, 4 / 3)),
        dict(type='VideoFlip', flip_ratio=0.5),
    ]


def default_strong_pipeline(window: int = 28,
                            crop_size: Size = 224,
                            pad_mode: str = 'loop') -> List[dict]:
    """Transform configs of the strong view (docs/method.md section 1).

    A random temporal transformation (shuffle-dropout 0.5, fast-forward,
    slow-motion, reverse and pause 0.1 each, none 0.1), random temporal crop
    to ``W``, RandomResizedCrop (scale 0.5-1.0), flip p=0.5, RandAugment (2
    ops, magnitude 9), then the frame transforms, each drawn per frame: text
    overlay p=0.3 (font 0.2-0.5 of the short side), logo / emoji overlay
    p=0.3 (0.2-0.5 of the largest fit), both with opacity 0.7-1.0, and
    Gaussian blur p=0.5 with sigma in [0.1, 2.0].

    Args:
        window (int): the window ``W``. Default: 28.
        crop_size (int | tuple[int, int]): output frame size. Default: 224.
        pad_mode (str): see :class:`RandomTemporalCrop`. Default: 'loop'.

    Returns:
        list[dict]: transform configs for ``TRANSFORMS.build``.
    """
    return [
        dict(
            type='RandomTemporalTransform',
            window=window,
            probs=dict(
                shuffle_dropout=0.5,
                fast_forward=0.1,
                slow_motion=0.1,
                reverse=0.1,
                pause=0.1)),
        dict(type='RandomTemporalCrop', window=window, pad_mode=pad_mode),
        dict(
            type='VideoRandomResizedCrop',
            size=crop_size,
            scale=(0.5, 1.0),
            ratio=(3 / 4, 4 / 3)),
        dict(type='VideoFlip', flip_ratio=0.5),
        dict(type='VideoRandAugment', num_ops=2, magnitude=9),
        dict(
            type='VideoTextOverlay',
            prob=0.3,
            font_size_range=(0.2, 0.5),
            alpha_range=(0.7, 1.0)),
        dict(
            type='VideoLogoOverlay',
            prob=0.3,
            size_range=(0.2, 0.5),
            alpha_range=(0.7, 1.0)),
        dict(type='VideoGaussianBlur', prob=0.5, sigma_range=(0.1, 2.0)),
    ]


def _size_pair(size: Size) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'crop_size must be an int or (h, w), got {size}')
    return size


@TRANSFORMS.register_module()
class HAPVRViews(BaseTransform):
    """Make the weak and the strong view of a loaded segment.

    Both sub-pipelines run on (shallow copies of) the same ``results``, i.e.
    on the same ``2W`` source frames; their transforms never modify the
    frames in place.

    Args:
        window (int): the window ``W``, frames per view. Default: 28.
        crop_size (int | tuple[int, int]): frame size of the default
            pipelines, and the size every view must have. Default: 224.
        weak_pipeline (Sequence[dict | callable] | None): transforms of the
            weak view; None for :func:`default_weak_pipeline`. Default: None.
        strong_pipeline (Sequence[dict | callable] | None): transforms of the
            strong view; None for :func:`default_strong_pipeline`.
            Default: None.
        pad_mode (str): temporal crop padding of the default pipelines.
            Default: 'loop'.

    Reads ``imgs`` ``[T, H, W, 3]`` uint8 (``T = 2W`` normally). Writes
    ``imgs`` ``[2, W, crop_h, crop_w, 3]`` uint8 (view 0 weak, view 1
    strong), ``img_shape``, ``temporal_transform`` (that of the strong view)
    and ``view_metas`` (a dict per view with the random choices made).
    """

    def __init__(self,
                 window: int = 28,
                 crop_size: Size = 224,
                 weak_pipeline: Optional[Sequence] = None,
                 strong_pipeline: Optional[Sequence] = None,
                 pad_mode: str = 'loop') -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.window = int(window)
        self.crop_size = _size_pair(crop_size)
        if min(self.crop_size) < 1:
            raise ValueError(f'crop_size must be positive, got {crop_size}')
        if weak_pipeline is None:
            weak_pipeline = default_weak_pipeline(window, crop_size, pad_mode)
        if strong_pipeline is None:
            strong_pipeline = default_strong_pipeline(window, crop_size,
                                                      pad_mode)
        self.weak = Compose(list(weak_pipeline))
        self.strong = Compose(list(strong_pipeline))

    def _view(self, pipeline: Compose, results: dict,
              name: str) -> Tuple[np.ndarray, Dict]:
        try:
            out = pipeline(dict(results))
        except ValueError as err:
            raise ValueError(f'{err} (in the {name} view of '
                             f'{results.get("filename")!r})') from err
        if out is None:
            raise ValueError(f'the {name} pipeline dropped the sample '
                             f'{results.get("filename")!r}')
        imgs = materialize_frames(out)
        expected = (self.window, ) + self.crop_size + (3, )
        if imgs.shape != expected or imgs.dtype != np.uint8:
            raise ValueError(f'the {name} view of {results.get("filename")!r}'
                             f' must be uint8 of shape {expected}, got '
                             f'{imgs.dtype} {tuple(imgs.shape)}')
        meta = {k: out[k] for k in VIEW_META_KEYS if k in out}
        return imgs, meta

    def transform(self, results: dict) -> dict:
        """Make both views of ``results['imgs']``.

        Args:
            results (dict): with ``imgs`` ``[T, H, W, 3]`` uint8.

        Returns:
            dict: ``results`` with ``imgs`` ``[2, W, h, w, 3]`` uint8.
        """
        try:
            _check_frames(results['imgs'])
        except ValueError as err:
            raise ValueError(f'{err} (file {results.get("filename")!r})')
        if results['imgs'].shape[0] < 1:
            raise ValueError('HAPVRViews got an empty clip from '
                             f'{results.get("filename")!r}')
        weak, weak_meta = self._view(self.weak, results, 'weak')
        strong, strong_meta = self._view(self.strong, results, 'strong')
        results['imgs'] = np.stack([weak, strong])
        results['img_shape'] = self.crop_size
        results['temporal_transform'] = strong_meta.get(
            'temporal_transform', 'none')
        results['view_metas'] = [weak_meta, strong_meta]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(window={self.window}, '
                f'crop_size={self.crop_size},\n  weak={self.weak},\n  '
                f'strong={self.strong})')


@TRANSFORMS.register_module()
class PackSSLInputs(BaseTransform):
    """Pack the two views into a tensor and a data sample.

    Args:
        meta_keys (Sequence[str]): keys of ``results`` copied into the data
            sample's metainfo when present. Default: ``('filename',
            'temporal_transform')``.

    Reads ``imgs`` ``[2, W, h, w, 3]`` uint8. Returns
    ``dict(inputs=torch.uint8 tensor [2, W, 3, h, w],
    data_samples=ActionDataSample)``.
    """

    def __init__(
        self, meta_keys: Sequence[str] = ('filename', 'temporal_transform')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``.

        Args:
            results (dict): with ``imgs`` ``[2, W, h, w, 3]`` uint8.

        Returns:
            dict: ``inputs`` ``[2, W, 3, h, w]`` uint8 tensor and
            ``data_samples``.
        """
        imgs = np.asarray(results['imgs'])
        if imgs.ndim != 5 or imgs.shape[0] != 2 or imgs.shape[-1] != 3:
            raise ValueError('PackSSLInputs expects imgs of shape '
                             f'[2, W, h, w, 3], got {tuple(imgs.shape)} '
                             f'(file {results.get("filename")!r})')
        if imgs.dtype != np.uint8:
            raise ValueError(f'PackSSLInputs expects uint8 imgs, got '
                             f'{imgs.dtype} (file '
                             f'{results.get("filename")!r})')
        inputs = torch.from_numpy(
            np.ascontiguousarray(imgs.transpose(0, 1, 4, 2, 3)))
        sample = ActionDataSample()
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
