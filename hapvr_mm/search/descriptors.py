"""Indexed features and global descriptors of a video (for search).

The global descriptor of a video is the attention-weighted mean of its
region features, L2-normalised: with raw region features ``x_{t,r}`` and the
region attention weights ``w_{t,r}`` of the similarity head (docs/method.md
section 3, step 1),

    g = normalise( sum_{t,r} w_{t,r} x_{t,r} / sum_{t,r} w_{t,r} ).

One matrix product of these ``[N, D]`` vectors ranks a whole index; the full
HAP-VR similarity then re-ranks a shortlist (see :mod:`.engine`).
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['region_weights', 'global_descriptor', 'index_with_descriptor']


def region_weights(model: nn.Module, features: Tensor) -> Tensor:
    """Attention weight of every region of raw features.

    Uses ``model.head.attention.weights`` when the attention module has it;
    otherwise the weight is recovered from the attention's output (it scales
    every region vector by a positive weight). A head without attention
    weighs every region 1.

    Args:
        model (nn.Module): a ``HAPVR`` model.
        features (Tensor): raw region features ``[..., R, D]``.

    Returns:
        Tensor: ``[..., R, 1]`` weights.
    """
    attention = getattr(getattr(model, 'head', None), 'attention', None)
    if attention is None:
        return features.new_ones(*features.shape[:-1], 1)
    if hasattr(attention, 'weights'):
        return attention.weights(features)
    scaled = attention(features)
    return scaled.norm(dim=-1, keepdim=True) / features.norm(
        dim=-1, keepdim=True).clamp_min(1e-12)


def global_descriptor(features: Tensor, weights: Tensor) -> Tensor:
    """Attention-weighted mean of region features, L2-normalised.

    Args:
        features (Tensor): raw region features ``[T, R, D]``.
        weights (Tensor): their weights ``[T, R, 1]``.

    Returns:
        Tensor: ``[D]`` unit vector.
    """
    if features.dim() != 3 or weights.shape != (*features.shape[:2], 1):
        raise ValueError('expected features [T, R, D] and weights [T, R, 1],'
                         f' got {tuple(features.shape)} and '
                         f'{tuple(weights.shape)}')
    weights = weights.float()
    mean = (features.float() * weights).sum((0, 1)) / weights.sum().clamp_min(
        1e-12)
    return F.normalize(mean, dim=0)


@torch.no_grad()
def index_with_descriptor(model: nn.Module,
                          features: Tensor) -> Tuple[Tensor, Tensor]:
    """Index a video's raw features and compute its global descriptor.

    Args:
        model (nn.Module): a ``HAPVR`` model.
        features (Tensor): raw region features ``[T, R, D]`` (from
            ``model.extract_feat``).

    Returns:
        tuple: indexed features ``[T, R, D]`` (``model.index_video``) and
        the global descriptor ``[D]``.
    """
    indexed = model.index_video(features)
    weights = region_weights(model, features)
    return indexed, global_descriptor(features, weights)
