"""Packing transforms of the retrieval (evaluation) datasets.

:class:`PackRetrievalInputs` ends a raw-video pipeline (after
``DecodeRetrievalVideo``): it turns the decoded frames into the uint8
``[T, 3, H, W]`` tensor that ``HAPVRDataPreprocessor`` normalises, and packs
the video id into a data sample.
"""
from typing import Dict, Sequence

import numpy as np
import torch
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

__all__ = ['PackRetrievalInputs', 'frames_to_tensor']


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Convert decoded frames to the model's channel-first layout.

    Args:
        frames (np.ndarray): uint8 RGB frames ``[T, H, W, 3]``.

    Returns:
        Tensor: uint8 ``[T, 3, H, W]`` (contiguous).
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 \
            or frames.shape[-1] != 3:
        shape = getattr(frames, 'shape', type(frames).__name__)
        raise ValueError(f'expected frames [T, H, W, 3], got {shape}')
    if frames.dtype != np.uint8:
        raise ValueError(f'expected uint8 frames, got {frames.dtype}')
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


@TRANSFORMS.register_module()
class PackRetrievalInputs(BaseTransform):
    """Pack decoded frames and the video id for the retrieval test loop.

    Required keys: ``imgs`` (uint8 ``[T, H, W, 3]``), ``video_id``.

    Output: ``dict(inputs=uint8 Tensor [T, 3, H, W],
    data_samples=BaseDataElement)`` whose metainfo holds ``video_id``,
    ``num_frames`` and the ``meta_keys`` found in the results.

    Args:
        meta_keys (sequence[str]): extra result keys copied to the sample's
            metainfo when present. Defaults to ``('filename',
            'original_length', 'original_shape', 'img_shape')``.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('filename', 'original_length',
                                    'original_shape', 'img_shape')
    ) -> None:
        if isinstance(meta_keys, str):
            raise ValueError('meta_keys must be a sequence of keys, got the '
                             f'string {meta_keys!r}')
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: Dict) -> Dict:
        """Pack one video.

        Args:
            results (dict): needs ``imgs`` and ``video_id``.

        Returns:
            dict: ``inputs`` (uint8 ``[T, 3, H, W]``) and ``data_samples``.
        """
        for key in ('imgs', 'video_id'):
            if key not in results:
                raise ValueError(f'PackRetrievalInputs needs results[{key!r}]'
                                 f', got keys {sorted(results)}')
        inputs = frames_to_tensor(results['imgs'])
        sample = BaseDataElement()
        meta = {k: results[k] for k in self.meta_keys if k in results}
        meta['video_id'] = str(results['video_id'])
        meta['num_frames'] = int(inputs.shape[0])
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
