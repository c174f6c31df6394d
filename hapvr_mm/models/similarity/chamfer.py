"""Similarity aggregations of HAP-VR (docs/method.md s. 3), as plain functions.

Every function takes tensors and knows nothing of mmengine, so the exact
formulas stay easy to test and to reuse. Masks are boolean with ``True`` for
valid (not padded) entries.

Aggregation modes, used both frame-to-frame (over regions) and
video-to-video (over time):

* ``'topk_chamfer'``: mean over rows of the mean of the top ``k`` values of
  each row, ``k = max(round(n * topk_rate), 1)`` with ``n`` the number of
  valid columns (Python's ``round``: halves go to the even integer).
* ``'chamfer'``: the same with ``k = 1`` (max, then mean).
* ``'max'``: the maximum over rows and columns.
* ``'average'``: the mean over rows and columns.
"""
from typing import Optional

import torch
from torch import Tensor

from .fast_chamfer import (check_region_features,
                           self_topk_chamfer_frame_similarity,
                           topk_chamfer_frame_similarity)

__all__ = [
    'AGGREGATIONS', 'num_topk', 'topk_mean', 'aggregate', 'frame_similarity',
    'frame_similarity_dense'
]

AGGREGATIONS = ('topk_chamfer', 'chamfer', 'max', 'average')


def check_mode(mode: str) -> None:
    """Raise ``ValueError`` unless ``mode`` is one of :data:`AGGREGATIONS`."""
    if mode not in AGGREGATIONS:
        raise ValueError(f'aggregation must be one of {AGGREGATIONS}, '
                         f'got {mode!r}')


def num_topk(n: int, topk_rate: float) -> int:
    """Return ``k = max(round(n * topk_rate), 1)``.

    Args:
        n (int): number of candidates.
        topk_rate (float): fraction of candidates kept.

    Returns:
        int: the number of top values averaged.
    """
    return max(int(round(n * topk_rate)), 1)


def topk_mean(x: Tensor,
              topk_rate: Optional[float] = None,
              k: Optional[int] = None,
              mask: Optional[Tensor] = None) -> Tensor:
    """Mean of the top-``k`` values along the last dimension.

    Args:
        x (Tensor): values ``[..., n]``.
        topk_rate (float, optional): ``k = max(round(n_valid * rate), 1)``
            per row, ``n_valid`` counting the valid entries of ``mask``.
        k (int, optional): a fixed ``k`` (used when ``topk_rate`` is None).
        mask (Tensor, optional): bool ``[..., n]`` (broadcastable to ``x``),
            True for valid entries; invalid entries are never selected.

    Returns:
        Tensor: ``[...]``. Rows without any valid entry give 0.
    """
    n = x.shape[-1]
    if mask is None:
        kk = num_topk(n, topk_rate) if topk_rate is not None else int(k)
        kk = min(kk, n)
        if kk == 1:
            return x.max(dim=-1).values
        return x.topk(kk, dim=-1).values.mean(dim=-1)
    mask = mask.expand_as(x)
    n_valid = mask.sum(dim=-1)
    if topk_rate is not None:
        k_row = torch.round(n_valid.to(torch.float64) * topk_rate)
        k_row = k_row.clamp(min=1).to(torch.long)
    else:
        k_row = torch.full_like(n_valid, int(k))
    k_row = torch.minimum(k_row, n_valid.clamp(min=1))
    k_max = int(k_row.max()) if k_row.numel() else 1
    k_max = min(max(k_max, 1), n)
    filled = x.masked_fill(~mask, float('-inf'))
    values = filled.topk(k_max, dim=-1).values
    pos = torch.arange(k_max, device=x.device)
    keep = (pos < k_row.unsqueeze(-1)) & torch.isfinite(values)
    values = torch.where(keep, values, torch.zeros_like(values))
    return values.sum(dim=-1) / k_row.to(x.dtype)


def aggregate(sim: Tensor,
              mode: str = 'topk_chamfer',
              topk_rate: float = 0.1,
              row_mask: Optional[Tensor] = None,
              col_mask: Optional[Tensor] = None) -> Tensor:
    """Aggregate a batch of similarity maps into one score each.

    Args:
        sim (Tensor): ``[..., rows, cols]`` similarity maps.
        mode (str): one of :data:`AGGREGATIONS`. Defaults to
            ``'topk_chamfer'``.
        topk_rate (float): rate of ``'topk_chamfer'``. Defaults to 0.1.
        row_mask (Tensor, optional): bool ``[..., rows]``, True = valid.
        col_mask (Tensor, optional): bool ``[..., cols]``, True = valid.

    Returns:
        Tensor: ``[...]`` scores.
    """
    check_mode(mode)
    rows, cols = sim.shape[-2:]
    if row_mask is None and col_mask is None:
        if mode == 'max':
            return sim.flatten(-2).max(dim=-1).values
        if mode == 'average':
            return sim.mean(dim=(-2, -1))
        rate = topk_rate if mode == 'topk_chamfer' else None
        return topk_mean(sim, rate, k=1).mean(dim=-1)
    lead = sim.shape[:-2]
    if row_mask is None:
        row_mask = sim.new_ones(lead + (rows, ), dtype=torch.bool)
    if col_mask is None:
        col_mask = sim.new_ones(lead + (cols, ), dtype=torch.bool)
    cell = row_mask.unsqueeze(-1) & col_mask.unsqueeze(-2)
    n_rows = row_mask.sum(dim=-1).clamp(min=1).to(sim.dtype)
    if mode == 'max':
        return sim.masked_fill(~cell,
                               float('-inf')).flatten(-2).max(dim=-1).values
    if mode == 'average':
        n_cells = cell.sum(dim=(-2, -1)).clamp(min=1).to(sim.dtype)
        return (sim * cell).sum(dim=(-2, -1)) / n_cells
    rate = topk_rate if mode == 'topk_chamfer' else None
    per_row = topk_mean(sim, rate, k=1, mask=col_mask.unsqueeze(-2))
    return (per_row * row_mask).sum(dim=-1) / n_rows


def _region_reduce(sim: Tensor, mode: str, topk_rate: float) -> Tensor:
    """Reduce region-level similarities ``[A, Tq, R, B, Tt, R']`` to frames.

    Returns:
        Tensor: ``[A, Tq, B, Tt]``.
    """
    if mode == 'max':
        return sim.amax(dim=(2, 5))
    if mode == 'average':
        return sim.mean(dim=(2, 5))
    rate = topk_rate if mode == 'topk_chamfer' else None
    return topk_mean(sim, rate, k=1).mean(dim=2)


def frame_similarity(query: Tensor,
                     target: Tensor,
                     mode: str = 'topk_chamfer',
                     topk_rate: float = 0.1,
                     chunk_size: Optional[int] = None,
                     recompute: bool = False) -> Tensor:
    """Frame-to-frame similarity of every query/target video pair.

    ``F[a, b, i, j] = aggregate_o,p <query[a, i, o], target[b, j, p]>``
    (TopK-Chamfer: mean over query regions ``o`` of the mean of the top-k
    values over target regions ``p``).

    Args:
        query (Tensor): ``[A, Tq, R, D]`` region features.
        target (Tensor): ``[B, Tt, R', D]`` region features.
        mode (str): one of :data:`AGGREGATIONS`.
        topk_rate (float): rate of ``'topk_chamfer'`` over ``R'`` regions.
        chunk_size (int, optional): target videos per matrix product, which
            bounds the region-level tensor to ``A * Tq * R * chunk * Tt * R'``
            values. None: all targets at once for ``'max'``/``'average'``,
            blocks of at most ``fast_chamfer.BLOCK_BUDGET`` values for the
            Chamfer modes.
        recompute (bool): Chamfer modes only: recompute each block in
            backward instead of keeping its ``uint8`` winner indices.
            Defaults to False.

    Returns:
        Tensor: ``[A, B, Tq, Tt]``.

    The Chamfer modes (``'topk_chamfer'``, ``'chamfer'``) run
    :func:`hapvr_mm.models.similarity.fast_chamfer.
    topk_chamfer_frame_similarity` (blockwise, lean backward); when
    ``target is query`` the symmetric form (half the products) is used.
    """
    check_mode(mode)
    check_region_features(query, target)
    if mode in ('topk_chamfer', 'chamfer'):
        k = num_topk(target.shape[2],
                     topk_rate) if mode == 'topk_chamfer' else 1
        k = min(k, target.shape[2])
        if target is query:
            return self_topk_chamfer_frame_similarity(query, k, chunk_size,
                                                      recompute)
        return topk_chamfer_frame_similarity(query, target, k, chunk_size,
                                             recompute)
    a, tq, r, d = query.shape
    b, tt, r2, _ = target.shape
    flat_q = query.reshape(a * tq * r, d)
    step = b if not chunk_size else max(int(chunk_size), 1)
    outs = []
    for start in range(0, b, step):
        tgt = target[start:start + step]
        n = tgt.shape[0]
        sim = (flat_q @ tgt.reshape(n * tt * r2, d).t()).view(
            a, tq, r, n, tt, r2)
        outs.append(_region_reduce(sim, mode, topk_rate))
    return torch.cat(outs, dim=2).permute(0, 2, 1, 3)


def frame_similarity_dense(query: Tensor,
                           target: Tensor,
                           mode: str = 'topk_chamfer',
                           topk_rate: float = 0.1) -> Tensor:
    """Reference all-pairs formulation of :func:`frame_similarity`.

    One region-level einsum over every pair (``[A, B, Tq, R, Tt, R']``),
    then the region aggregation. Kept as the baseline for benchmarks and
    tests.

    Args:
        query (Tensor): ``[A, Tq, R, D]``.
        target (Tensor): ``[B, Tt, R', D]``.
        mode (str): one of :data:`AGGREGATIONS`.
        topk_rate (float): rate of ``'topk_chamfer'``.

    Returns:
        Tensor: ``[A, B, Tq, Tt]``.
    """
    check_mode(mode)
    sim = torch.einsum('aiod,bjpd->abiojp', query, target)
    if mode == 'max':
        return sim.amax(dim=(3, 5))
    if mode == 'average':
        return sim.mean(dim=(3, 5))
    r2 = sim.shape[-1]
    k = num_topk(r2, topk_rate) if mode == 'topk_chamfer' else 1
    return sim.topk(k, dim=-1).values.mean(dim=-1).mean(dim=3)
