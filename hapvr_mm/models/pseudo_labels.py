"""Frame-level pseudo labels from teacher embeddings (docs/method.md s. 4).

``C[a, b, i, j]`` is the cosine similarity of frame ``i`` of video ``a`` and
frame ``j`` of video ``b`` (teacher embeddings, e.g. DINO CLS tokens). For
every ``(a, b, i)`` the ``max(round(T_b * top_rate), 1)`` most similar frames
``j`` are positives and the ``max(round(T_b * bottom_rate), 1)`` least
similar are negatives, ``T_b`` being the number of valid frames of ``b``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

from .precision import float32_region

__all__ = ['frame_pseudo_labels', 'FramePseudoLabeler']


def _ranks(scores: torch.Tensor, descending: bool) -> torch.Tensor:
    """Rank of every entry along the last dim (0 = first; stable ties)."""
    order = torch.sort(scores, dim=-1, descending=descending, stable=True)[1]
    ranks = torch.empty_like(order)
    arange = torch.arange(scores.shape[-1], device=scores.device)
    ranks.scatter_(-1, order, arange.expand_as(order).contiguous())
    return ranks


def _check_rate(name: str, rate: float) -> None:
    if not 0. < float(rate) <= 1.:
        raise ValueError(f'{name} must be in (0, 1], got {rate!r}')


def frame_pseudo_labels(embeddings: torch.Tensor,
                        top_rate: float = 0.35,
                        bottom_rate: float = 0.35,
                        mask: Optional[torch.Tensor] = None,
                        pairs: Optional[torch.Tensor] = None
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Positive / negative frame labels from teacher cosine similarities.

    For every pair ``(a, b)`` and query frame ``i`` of ``a``, the frames
    ``j`` of ``b`` are ranked by the cosine similarity of the embeddings;
    the top ``max(round(T_b * top_rate), 1)`` are positives and the bottom
    ``max(round(T_b * bottom_rate), 1)`` negatives (``round`` rounds half to
    even, as Python does). With ``mask``, ``T_b`` counts the valid frames of
    ``b``, padded frames ``j`` are neither and padded query frames ``i``
    get no labels. A frame that would be both (only when
    ``k_top + k_bottom > T_b``) is a positive only. Ties are broken by the
    lower frame index (stable sort).

    Args:
        embeddings (torch.Tensor): Frame embeddings ``[N, T, C]`` (any float
            dtype; compared in float32).
        top_rate (float): Fraction of frames that are positives, in
            ``(0, 1]``. Defaults to 0.35.
        bottom_rate (float): Fraction of frames that are negatives, in
            ``(0, 1]``. Defaults to 0.35.
        mask (torch.Tensor, optional): ``[N, T]`` bool, True for valid
            frames. Defaults to None (all valid).
        pairs (torch.LongTensor, optional): ``[P, 2]`` rows ``(a, b)``; when
            given, only those pairs are labelled. Defaults to None (all
            ``N x N`` pairs).

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Bool ``positives`` and
        ``negatives``, ``[N, N, T, T]`` indexed ``[a, b, i, j]``, or
        ``[P, T, T]`` indexed ``[p, i, j]`` when ``pairs`` is given.
    """
    _check_rate('top_rate', top_rate)
    _check_rate('bottom_rate', bottom_rate)
    if embeddings.dim() != 3:
        raise ValueError(f'embeddings must be [N, T, C], got '
                         f'{tuple(embeddings.shape)}')
    n, t, _ = embeddings.shape
    device = embeddings.device
    if mask is None:
        mask = torch.ones(n, t, dtype=torch.bool, device=device)
    elif mask.shape != (n, t):
        raise ValueError(f'mask must be [N, T] = [{n}, {t}], got '
                         f'{tuple(mask.shape)}')
    mask = mask.to(device=device, dtype=torch.bool)
    if pairs is None:
        idx = torch.arange(n, device=device)
        qa, qb = idx.repeat_interleave(n), idx.repeat(n)
    else:
        if (pairs.dim() != 2 or pairs.shape[-1] != 2
                or pairs.dtype.is_floating_point or pairs.dtype == torch.bool):
            raise ValueError(f'pairs must be an integer tensor [P, 2], got '
                             f'{pairs.dtype} {tuple(pairs.shape)}')
        pairs = pairs.to(device=device, dtype=torch.long)
        if pairs.numel() and (pairs.min() < 0 or pairs.max() >= n):
            raise ValueError(f'pairs must index videos in [0, {n}), got '
                             f'values in [{int(pairs.min())}, '
                             f'{int(pairs.max())}]')
        qa, qb = pairs[:, 0], pairs[:, 1]

    # float32 even under autocast: the top-k below ranks these values
    with float32_region(device.type):
        emb = F.normalize(embeddings.float(), p=2, dim=-1)
        sim = emb[qa] @ emb[qb].transpose(1, 2)  # [P, T, T]
    valid_j = mask[qb][:, None, :]  # [P, 1, T]
    valid_i = mask[qa][:, :, None]  # [P, T, 1]
    counts = mask.sum(dim=1).double()[qb]  # valid frames of b, [P]
    k_top = torch.round(counts * float(top_rate)).clamp(min=1)
    k_bottom = torch.round(counts * float(bottom_rate)).clamp(min=1)

    inf = torch.tensor(float('inf'), device=device)
    rank_desc = _ranks(torch.where(valid_j, sim, -inf), descending=True)
    rank_asc = _ranks(torch.where(valid_j, sim, inf), descending=False)
    positives = rank_desc < k_top.to(rank_desc.dtype)[:, None, None]
    negatives = rank_asc < k_bottom.to(rank_asc.dtype)[:, None, None]
    positives = positives & valid_j & valid_i
    negatives = negatives & valid_j & valid_i & ~positives
    if pairs is None:
        positives = positives.reshape(n, n, t, t)
        negatives = negatives.reshape(n, n, t, t)
    return positives, negatives


@MODELS.register_module()
class FramePseudoLabeler:
    """Callable wrapper of :func:`frame_pseudo_labels` with fixed rates.

    Args:
        top_rate (float): Fraction of frames that are positives. Defaults to
            0.35.
        bottom_rate (float): Fraction of frames that are negatives. Defaults
            to 0.35.
    """

    def __init__(self,
                 top_rate: float = 0.35,
                 bottom_rate: float = 0.35) -> None:
        _check_rate('top_rate', top_rate)
        _check_rate('bottom_rate', bottom_rate)
        self.top_rate = float(top_rate)
        self.bottom_rate = float(bottom_rate)

    def __call__(self,
                 embeddings: torch.Tensor,
                 mask: Optional[torch.Tensor] = None,
                 pairs: Optional[torch.Tensor] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Label frames; see :func:`frame_pseudo_labels`.

        Args:
            embeddings (torch.Tensor): ``[N, T, C]``.
            mask (torch.Tensor, optional): ``[N, T]`` bool valid frames.
                Defaults to None.
            pairs (torch.LongTensor, optional): ``[P, 2]`` pairs to label.
                Defaults to None (all pairs).

        Returns:
            tuple[torch.Tensor, torch.Tensor]: Bool positives and negatives,
            ``[N, N, T, T]`` or ``[P, T, T]``.
        """
        return frame_pseudo_labels(embeddings, self.top_rate, self.bottom_rate,
                                   mask, pairs)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(top_rate={self.top_rate}, '
                f'bottom_rate={self.bottom_rate})')
