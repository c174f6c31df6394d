"""Indexed features and global descriptors of a video (for search).

A search index stores, per video, what the retriever's retrieval path
(``test_step``, the one evaluation uses) returns, and the retriever's
``global_descriptor`` of it (``BaseRetriever.global_descriptor``; by
default the L2-normalised mean of all tokens, which for HAP-VR's indexed
features is the attention-weighted mean of the raw region features,
docs/search.md). One matrix product of these ``[N, D]`` vectors ranks a
whole index; the retriever's full similarity then re-ranks a shortlist
(see :mod:`.engine`).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['global_descriptor', 'index_with_descriptor']


def global_descriptor(features: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean of region features, L2-normalised.

    Args:
        features (Tensor): region features ``[T, R, D]``.
        weights (Tensor): their weights ``[T, R, 1]``.

    Returns:
        Tensor: ``[D]`` unit vector.
    """
    if features.dim() != 3 or weights.shape != (*features.shape[:2], 1):
        raise ValueError('expected features [T, R, D] and weights [T, R, 1],'
                         f' got {tuple(features.shape)} and '
                         f'{tuple(weights.shape)}')
    weights = weights.float()
    mean = (features.float() * weights).sum(
        (0, 1)) / weights.sum().clamp_min(1e-12)
    return F.normalize(mean, dim=0)


@torch.no_grad()
def index_with_descriptor(model: nn.Module,
                          features: Tensor,
                          mask: Optional[Tensor] = None
                          ) -> Tuple[Tensor, Tensor]:
    """Index pre-extracted features and compute their global descriptor.

    Args:
        model (nn.Module): a retriever (``BaseRetriever`` interface).
        features (Tensor): features ``[T, R, D]`` as the model's
            ``index_video`` takes them.
        mask (Tensor, optional): bool ``[T]`` valid frames.

    Returns:
        tuple: indexed features (``model.index_video``) and the descriptor
        ``[D]`` (``model.global_descriptor``).
    """
    indexed = model.index_video(features)
    return indexed, model.global_descriptor(indexed, mask)
