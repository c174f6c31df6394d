"""Batch preparation for HAP-VR: views, normalisation, padding, relevance."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmaction.models.data_preprocessors import ActionDataPreprocessor
from mmaction.registry import MODELS
from torch import Tensor

from .video_in_video import relevance_from_hosts, views_to_batch

__all__ = ['HAPVRDataPreprocessor', 'pad_videos']

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def pad_videos(videos: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
    """Stack videos of different lengths, padding the time axis with zeros.

    Args:
        videos (sequence[Tensor]): ``[T_i, ...]`` tensors with equal
            trailing shapes.

    Returns:
        tuple: ``[N, T_max, ...]`` padded tensor and its bool mask
        ``[N, T_max]`` (True = real frame).
    """
    if len(videos) == 0:
        raise ValueError('pad_videos got an empty list of videos')
    tail = videos[0].shape[1:]
    for i, v in enumerate(videos):
        if v.shape[1:] != tail:
            raise ValueError(f'video {i} has shape {tuple(v.shape)}, '
                             f'expected [T, {", ".join(map(str, tail))}]')
    t_max = max(v.shape[0] for v in videos)
    out = videos[0].new_zeros((len(videos), t_max) + tuple(tail))
    mask = torch.zeros(
        len(videos), t_max, dtype=torch.bool, device=videos[0].device)
    for i, v in enumerate(videos):
        out[i, :v.shape[0]] = v
        mask[i, :v.shape[0]] = True
    return out, mask


@MODELS.register_module()
class HAPVRDataPreprocessor(ActionDataPreprocessor):
    """Normalise frames, arrange the two views and build the relevance.

    Inputs from the dataloader are one of:

    * training pairs: uint8 ``[2, W, 3, H, W]`` per video (weak, strong);
      the batch becomes the ``B`` weak views then the ``B`` strong views,
      ``[2B, W, 3, H, W]``, normalised, with video-in-video on the strong
      views and the ``[2B, 2B]`` relevance matrix;
    * videos: uint8 ``[T, 3, H, W]`` per video (any ``T``), padded to
      ``[B, T_max, 3, H, W]`` with a frame mask;
    * features: float ``[T, R, D]`` (or ``[T, D]``) per video, passed through
      (padded, ``[B, T_max, R, D]``) with a frame mask.

    Args:
        mean (sequence[float]): per-channel mean on the 0-255 scale.
            Defaults to ImageNet's.
        std (sequence[float]): per-channel std. Defaults to ImageNet's.
        video_in_video (dict, optional): config of the ``VideoInVideo`` batch
            augment applied to the strong views in training. Defaults to
            None.
        to_rgb (bool): accepted for ``ActionDataPreprocessor``
            compatibility; must be False: frames are decoded as RGB already
            and are not flipped. Defaults to False.
        to_float32 (bool): must be True: frames are always normalised to
            float32 and features are passed through. Defaults to True.
        blending (dict, optional): must be None: batch blending is not
            applied (use ``video_in_video``). Defaults to None.
        format_shape (str): must be ``'NCHW'`` (frames ``[T, 3, H, W]``).
            Defaults to ``'NCHW'``.

    Raises:
        ValueError: an ``ActionDataPreprocessor`` option set to a value this
            preprocessor does not honour.

    Returns (of ``forward``):
        dict: ``inputs``, ``data_samples``, ``masks`` (bool ``[N, T]``) and,
        in training, ``relevance`` (``[N, N]``).
    """

    def __init__(self,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 video_in_video: Optional[dict] = None,
                 to_rgb: bool = False,
                 to_float32: bool = True,
                 blending: Optional[dict] = None,
                 format_shape: str = 'NCHW') -> None:
        unsupported = [
            f'{name}={value!r} (supported: {ok!r})'
            for name, value, ok in (('to_rgb', to_rgb,
                                     False), ('to_float32', to_float32, True),
                                    ('blending', blending, None),
                                    ('format_shape', format_shape, 'NCHW'))
            if value != ok
        ]
        if unsupported:
            raise ValueError(
                'HAPVRDataPreprocessor does not honour '
                f'{", ".join(unsupported)}: frames are decoded as RGB, '
                'normalised to float32 with mean/std, laid out [T, 3, H, W] '
                'and augmented by video_in_video only; remove these options')
        super().__init__(mean=mean, std=std, format_shape='NCHW')
        self.video_in_video = MODELS.build(
            video_in_video) if video_in_video else None

    def _normalize(self, frames: Tensor) -> Tensor:
        # one float32 copy, normalised in place: out of place, the two
        # temporaries cost twice the batch (4 GB at the paper's batch)
        out = frames.float()
        if out is frames:
            out = out.clone()
        return out.sub_(self.mean.view(-1, 1, 1)).div_(self.std.view(-1, 1, 1))

    def forward(self, data: dict, training: bool = False) -> dict:
        """Prepare one batch (see the class docstring).

        Args:
            data (dict): ``inputs`` (list or stacked tensor) and optional
                ``data_samples`` from the dataloader.
            training (bool): apply training-time arrangement/augments.

        Returns:
            dict: model inputs.
        """
        data = self.cast_data(data)
        inputs: Union[List[Tensor], Tensor] = data['inputs']
        samples = data.get('data_samples')
        if isinstance(inputs, Tensor):
            inputs = list(inputs)
        if len(inputs) == 0:
            raise ValueError('empty batch')
        first = inputs[0]
        out = dict(data_samples=samples)
        if first.is_floating_point() and first.dim() in (2, 3):
            feats = [x.unsqueeze(1) if x.dim() == 2 else x for x in inputs]
            out['inputs'], out['masks'] = pad_videos(feats)
            return out
        if first.dim() == 5:  # training pairs [2, W, 3, H, W]
            batch = torch.stack(inputs)
            if batch.shape[1] != 2:
                raise ValueError('training inputs must be [2, W, 3, H, W] '
                                 f'(weak, strong), got {tuple(first.shape)}')
            b = batch.shape[0]
            views = self._normalize(views_to_batch(batch))
            hosts = torch.full((b, ),
                               -1,
                               dtype=torch.long,
                               device=views.device)
            if training and self.video_in_video is not None:
                strong, hosts = self.video_in_video.apply_to_strong(views[b:])
                views[b:] = strong  # no second full-size batch
                del strong
            out['inputs'] = views
            out['masks'] = views.new_ones(views.shape[:2], dtype=torch.bool)
            out['relevance'] = relevance_from_hosts(b, hosts.to(views.device))
            return out
        if first.dim() == 4:  # videos [T, 3, H, W]
            frames, mask = pad_videos(inputs)
            out['inputs'] = self._normalize(frames)
            out['masks'] = mask
            return out
        raise ValueError('inputs must be [2, W, 3, H, W] training pairs, '
                         '[T, 3, H, W] videos or [T, R, D] features, got '
                         f'{tuple(first.shape)} ({first.dtype})')
