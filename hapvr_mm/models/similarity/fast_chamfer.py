"""Fast, memory-lean region-level TopK-Chamfer (docs/method.md s. 3, step 3).

``F[a, b, i, j] = mean_o mean_topk_p <q[a, i, o], t[b, j, p]>`` computed
block by block: each block is one matrix product of all query regions
against the regions of a few target videos, immediately reduced to frame
level, so the region-level tensor ``[A, Tq, R, B, Tt, R']`` never exists.

Layout. Query rows are ordered ``(a, o, i)`` and target columns
``(p, b, j)``, so the top-k over regions and the mean over query regions
are reductions over outer dimensions of contiguous slabs (vectorised).
For ``k = 1`` the winners come from ``amax`` and one comparison
(:func:`_first_argmax`), 3-4x faster than ``torch.max``'s index kernel.

Backward. Only the winning region indices are kept, as ``uint8``
(``k`` bytes per region row and target frame instead of ``4 R'`` bytes
per value plus ``int64`` indices), or nothing at all with ``recompute``
(the block's product is recomputed in backward: activation checkpointing).
The gradient of a block is a sparse matrix (one value per winner),
scattered into a block-sized buffer and multiplied back with two matrix
products, as autograd would, without keeping any all-pairs tensor.

Self-similarity (``query is target``, the training batch against itself):
the region-level matrix ``X X^T`` is symmetric, so only blocks on and above
the diagonal are computed; an off-diagonal block yields ``F[a, b]`` (top-k
over its columns) and ``F[b, a]`` (top-k over its rows), which halves the
matrix products of both forward and backward.
"""
import contextlib
import threading
from typing import Iterator, List, Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    'topk_chamfer_frame_similarity', 'self_topk_chamfer_frame_similarity',
    'auto_chunk', 'check_region_features', 'region_product_dtype',
    'native_bfloat16'
]

_STATE = threading.local()


@contextlib.contextmanager
def region_product_dtype(dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Run the region products of inference in ``dtype`` (this thread).

    Inside the block, :func:`topk_chamfer_frame_similarity` calls that need
    no gradient multiply the region features in ``dtype`` (e.g.
    ``torch.bfloat16``: 2-3x the float32 speed on CPUs with native bfloat16
    dot products); the top-k over target regions is taken on those values
    and everything after it (means, the comparator) stays float32. Calls
    that need gradients, and the symmetric self-similarity, are unchanged.

    Args:
        dtype (torch.dtype, optional): ``torch.bfloat16``,
            ``torch.float16`` or None / ``torch.float32`` (unchanged).

    Raises:
        ValueError: another dtype.
    """
    if dtype not in (None, torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f'region products run in float32, bfloat16 or '
                         f'float16, not {dtype}')
    before = getattr(_STATE, 'dtype', None)
    _STATE.dtype = None if dtype == torch.float32 else dtype
    try:
        yield
    finally:
        _STATE.dtype = before


def native_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 dot products (``avx512_bf16``
    or ``amx_bf16`` in ``/proc/cpuinfo``; False where it cannot be read).

    Returns:
        bool: True when bfloat16 region products are faster than float32.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    return bool(flags & {'avx512_bf16', 'amx_bf16'})
    except OSError:
        pass
    return False


#: default number of region-level values per block (1 M floats = 4 MB: a
#: block stays in cache between the matrix product and its reduction)
BLOCK_BUDGET = 1 << 20


def auto_chunk(rows: int,
               cols_per_video: int,
               budget: int = BLOCK_BUDGET) -> int:
    """Videos per block so that a block holds at most ``budget`` values.

    Args:
        rows (int): region rows of the block (``A * R * Tq``).
        cols_per_video (int): region columns of one video (``R' * Tt``).
        budget (int): values per block. Defaults to :data:`BLOCK_BUDGET`.

    Returns:
        int: at least 1.
    """
    return max(int(budget // max(rows * cols_per_video, 1)), 1)


def check_region_features(query: Tensor, target: Tensor) -> None:
    """Raise ``ValueError`` unless both are ``[N, T, R, D]`` with equal D.

    Args:
        query (Tensor): ``[A, Tq, R, D]``.
        target (Tensor): ``[B, Tt, R', D]``.
    """
    if query.dim() != 4 or target.dim() != 4:
        raise ValueError('query and target must be [N, T, R, D], got '
                         f'{tuple(query.shape)} and {tuple(target.shape)}')
    if query.shape[-1] != target.shape[-1]:
        raise ValueError(f'feature dims differ: query {tuple(query.shape)} '
                         f'vs target {tuple(target.shape)}')


def _check(query: Tensor, target: Tensor, k: int) -> None:
    check_region_features(query, target)
    if not 1 <= k <= target.shape[2]:
        raise ValueError(f'k must be in [1, {target.shape[2]}] (target '
                         f'regions), got {k}')
    if target.shape[2] > 256:
        raise ValueError('at most 256 target regions are supported, got '
                         f'{target.shape[2]}')


def _first_argmax(m: Tensor, top: Tensor, dim: int) -> Tensor:
    """Index (``uint8``) of the first maximum of ``m`` along ``dim``.

    ``top`` is ``m.amax(dim, keepdim=True)``. ``torch.max(dim)`` returns the
    same index but its index-tracking kernel is 3-4x slower than ``amax``
    on these block shapes (the reduced dimension is never the innermost);
    here the index is the largest of ``(n - 1 - p) * (m_p == max)``, two
    vectorised passes. Exact ties resolve to the first ``p``, as
    ``torch.max``.
    """
    n = m.shape[dim]
    shape = [1] * m.dim()
    shape[dim] = n
    rank = torch.arange(
        n - 1, -1, -1, dtype=torch.uint8, device=m.device).view(shape)
    return (n - 1) - (torch.eq(m, top) * rank).amax(dim=dim, keepdim=True)


def _topk_values(m: Tensor, k: int, dim: int,
                 need_index: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """Sum of the top-k values over ``dim`` (kept) and their indices."""
    if k == 1:
        vals = m.amax(dim=dim, keepdim=True)
        if need_index:
            return vals, _first_argmax(m, vals, dim)
        return vals, None
    vals, idx = m.topk(k, dim=dim)
    low = m.dtype in (torch.bfloat16, torch.float16)
    vals = vals.sum(
        dim=dim, keepdim=True, dtype=torch.float32 if low else m.dtype)
    return vals, (idx.to(torch.uint8) if need_index else None)


class _TopkChamfer(torch.autograd.Function):
    """Autograd function of :func:`topk_chamfer_frame_similarity`."""

    @staticmethod
    def forward(ctx, query: Tensor, target: Tensor, k: int, chunk: int,
                recompute: bool) -> Tensor:
        a, tq, r, d = query.shape
        b, tt, r2, _ = target.shape
        need = any(ctx.needs_input_grad[:2])
        low = None if need else getattr(_STATE, 'dtype', None)
        rows = query.permute(0, 2, 1, 3).reshape(a * r * tq, d)
        cols_all = target.permute(2, 0, 1, 3)  # [R', B, Tt, D]
        if low is not None:
            rows, cols_all = rows.to(low), cols_all.to(low)
        out = query.new_empty(a, b, tq, tt)
        buf = rows.new_empty(rows.shape[0] * r2 * min(chunk, b) * tt)
        saved: List[Tensor] = []
        for s in range(0, b, chunk):
            e = min(s + chunk, b)
            n = e - s
            cols = cols_all[:, s:e].reshape(r2 * n * tt, d)
            m = torch.mm(
                rows,
                cols.t(),
                out=buf[:rows.shape[0] * r2 * n *
                        tt].view(rows.shape[0],
                                 r2 * n * tt)).view(a * r, tq, r2, n * tt)
            vals, idx = _topk_values(m, k, 2, need and not recompute)
            if idx is not None:
                saved.append(idx)
            # [a * r, tq, 1, n * tt] -> mean over o, top-k mean
            frame = vals.to(out.dtype).view(a, r, tq, n, tt).sum(dim=1)
            out[:, s:e] = (frame / (r * k)).permute(0, 2, 1, 3)
        ctx.k, ctx.chunk, ctx.recompute = k, chunk, recompute
        if need:
            ctx.save_for_backward(query, target, *saved)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        query, target, *saved = ctx.saved_tensors
        k, chunk = ctx.k, ctx.chunk
        a, tq, r, d = query.shape
        b, tt, r2, _ = target.shape
        rows = query.permute(0, 2, 1, 3).reshape(a * r * tq, d)
        cols_all = target.permute(2, 0, 1, 3)
        g_rows = torch.zeros_like(rows)
        g_cols = target.new_empty(r2, b, tt, d)
        grad = grad / (r * k)
        n_max = min(chunk, b)
        gbuf = query.new_empty(a * r * tq * r2 * n_max * tt)
        mbuf = gbuf.new_empty(gbuf.shape) if ctx.recompute else None
        for c, s in enumerate(range(0, b, chunk)):
            e = min(s + chunk, b)
            n = e - s
            size = a * r * tq * r2 * n * tt
            cols = cols_all[:, s:e].reshape(r2 * n * tt, d)
            if ctx.recompute:
                m = torch.mm(
                    rows,
                    cols.t(),
                    out=mbuf[:size].view(a * r * tq, r2 * n * tt))
                idx = _topk_values(m.view(a * r, tq, r2, n * tt), k, 2,
                                   True)[1]
            else:
                idx = saved[c]
            # grad of frame [a, n, tq, tt] -> [a, 1, tq, 1, n * tt]
            w = grad[:, s:e].permute(0, 2, 1, 3).reshape(a, 1, tq, 1, n * tt)
            w = w.expand(a, r, tq, k, n * tt).reshape(a * r, tq, k, n * tt)
            g = gbuf[:size].view(a * r, tq, r2, n * tt).zero_()
            g.scatter_(2, idx.long(), w)
            g2 = g.view(a * r * tq, r2 * n * tt)
            g_rows.addmm_(g2, cols)
            g_cols[:, s:e] = torch.mm(g2.t(), rows).view(r2, n, tt, d)
        g_query = g_rows.view(a, r, tq, d).permute(0, 2, 1, 3)
        g_target = g_cols.permute(1, 2, 0, 3)
        return g_query, g_target, None, None, None


def topk_chamfer_frame_similarity(query: Tensor,
                                  target: Tensor,
                                  k: int = 1,
                                  chunk_size: Optional[int] = None,
                                  recompute: bool = False) -> Tensor:
    """TopK-Chamfer frame similarity of every query/target pair, blockwise.

    ``F[a, b, i, j] = mean_o (mean of the top-k over p of
    <query[a, i, o], target[b, j, p]>)``: equal to
    :func:`hapvr_mm.models.similarity.chamfer.frame_similarity_dense` in
    value and gradient, without its ``[A, B, Tq, R, Tt, R']`` tensor.

    Args:
        query (Tensor): ``[A, Tq, R, D]`` region features.
        target (Tensor): ``[B, Tt, R', D]`` region features.
        k (int): top values averaged over target regions, in
            ``[1, R']``. Defaults to 1 (Chamfer).
        chunk_size (int, optional): target videos per block. Defaults to
            None (as many as fit :data:`BLOCK_BUDGET` values).
        recompute (bool): keep nothing for backward but the inputs and
            recompute each block's product there (less memory, one more
            matrix product). Defaults to False (keep ``uint8`` indices).

    Returns:
        Tensor: ``[A, B, Tq, Tt]``.
    """
    _check(query, target, k)
    a, tq, r, _ = query.shape
    b, tt, r2, _ = target.shape
    chunk = (
        int(chunk_size) if chunk_size else auto_chunk(a * r * tq, r2 * tt))
    if chunk < 1:
        raise ValueError(f'chunk_size must be positive, got {chunk_size}')
    return _TopkChamfer.apply(query, target, int(k), chunk, bool(recompute))


def _video_chunks(n: int, chunk: int) -> List[Tuple[int, int]]:
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def _column_blocks(x: Tensor, spans: List[Tuple[int, int]]) -> List[Tensor]:
    """Each span's region rows in ``(p, b, j)`` order, ``[R * n * T, D]``.

    One contiguous copy per block (a copy of ``x`` in all): with the target
    region ``p`` outermost in the columns, the top-k over ``p`` reduces
    over an outer dimension, like the mean over the query regions ``o``.
    """
    return [
        x[s:e].permute(2, 0, 1, 3).reshape(-1, x.shape[-1]) for s, e in spans
    ]


class _SelfTopkChamfer(torch.autograd.Function):
    """Autograd function of :func:`self_topk_chamfer_frame_similarity`.

    A block ``(A, B)`` is ``m = X_A X_B^T`` with rows ``(a, o, i)`` and
    columns ``(p, b, j)``, viewed as ``[nA, R, T, R, nB, T]``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, k: int, chunk: int, recompute: bool) -> Tensor:
        n, t, r, d = x.shape
        need = ctx.needs_input_grad[0]
        rows = x.permute(0, 2, 1, 3).reshape(n * r * t, d)  # (v, o, i)
        out = x.new_empty(n, n, t, t)
        spans = _video_chunks(n, chunk)
        cols = _column_blocks(x, spans)
        saved: List[Tensor] = []
        buf = x.new_empty((min(chunk, n) * r * t)**2)
        keep = need and not recompute
        for ia, (sa, ea) in enumerate(spans):
            xa = rows[sa * r * t:ea * r * t]
            na = ea - sa
            for ib, (sb, eb) in enumerate(spans[ia:], ia):
                nb = eb - sb
                m = torch.mm(
                    xa,
                    cols[ib].t(),
                    out=buf[:na * nb *
                            (r * t)**2].view(na * r * t, nb * r * t))
                m = m.view(na, r, t, r, nb, t)
                # F[a, b, i, j]: top-k over p (dim 3), mean over o (dim 1)
                vals, idx = _topk_values(m, k, 3, keep)
                out[sa:ea, sb:eb] = (vals.sum(dim=1) /
                                     (r * k)).squeeze(2).permute(0, 2, 1, 3)
                if idx is not None:
                    saved.append(idx)
                if sb != sa:
                    # F[b, a, j, i]: top-k over o (dim 1), mean over p
                    vals, idx = _topk_values(m, k, 1, keep)
                    out[sb:eb,
                        sa:ea] = (vals.sum(dim=3) /
                                  (r * k)).squeeze(1).permute(2, 0, 3, 1)
                    if idx is not None:
                        saved.append(idx)
        ctx.k, ctx.chunk, ctx.recompute = k, chunk, recompute
        if need:
            ctx.save_for_backward(x, *saved)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, *saved = ctx.saved_tensors
        k, chunk = ctx.k, ctx.chunk
        n, t, r, d = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(n * r * t, d)
        spans = _video_chunks(n, chunk)
        cols = _column_blocks(x, spans)
        # gradients of the rows (v, o, i) and of the column copies (p, v, j)
        g_rows = torch.zeros_like(rows)
        g_cols = x.new_zeros(r, n, t, d)
        grad = grad / (r * k)
        gbuf = x.new_empty((min(chunk, n) * r * t)**2)
        mbuf = gbuf.new_empty(gbuf.shape) if ctx.recompute else None
        pos = 0
        for ia, (sa, ea) in enumerate(spans):
            xa = rows[sa * r * t:ea * r * t]
            na = ea - sa
            for ib, (sb, eb) in enumerate(spans[ia:], ia):
                nb = eb - sb
                size = na * nb * (r * t)**2
                xb = cols[ib]
                if ctx.recompute:
                    m = torch.mm(
                        xa,
                        xb.t(),
                        out=mbuf[:size].view(na * r * t, nb * r * t))
                    m = m.view(na, r, t, r, nb, t)
                    idx_row = _topk_values(m, k, 3, True)[1]
                    idx_col = (
                        _topk_values(m, k, 1, True)[1] if sb != sa else None)
                else:
                    idx_row = saved[pos]
                    idx_col = saved[pos + 1] if sb != sa else None
                    pos += 2 if sb != sa else 1
                g = gbuf[:size].view(na, r, t, r, nb, t).zero_()
                # F[a, b, i, j] = grad[a, b, i, j] -> (a, o, i, k, b, j)
                w = grad[sa:ea, sb:eb].permute(0, 2, 1, 3).reshape(
                    na, 1, t, 1, nb, t).expand(na, r, t, k, nb, t)
                g.scatter_add_(3, idx_row.long(), w)
                if idx_col is not None:
                    # F[b, a, j, i] = grad[b, a, j, i] -> (a, k, i, p, b, j)
                    w = grad[sb:eb, sa:ea].permute(1, 3, 0, 2).reshape(
                        na, 1, t, 1, nb, t).expand(na, k, t, r, nb, t)
                    g.scatter_add_(1, idx_col.long(), w)
                g2 = g.view(na * r * t, nb * r * t)
                g_rows[sa * r * t:ea * r * t].addmm_(g2, xb)
                g_cols[:, sb:eb] += torch.mm(g2.t(), xa).view(r, nb, t, d)
        g_x = g_rows.view(n, r, t, d).permute(0, 2, 1, 3) + g_cols.permute(
            1, 2, 0, 3)
        return g_x, None, None, None


def self_topk_chamfer_frame_similarity(x: Tensor,
                                       k: int = 1,
                                       chunk_size: Optional[int] = None,
                                       recompute: bool = False) -> Tensor:
    """TopK-Chamfer frame similarity of every pair of one batch of videos.

    Same as ``topk_chamfer_frame_similarity(x, x, k)`` (values and
    gradients) with half the matrix products: the region-level matrix of a
    batch against itself is symmetric, so only blocks on and above the
    diagonal are computed and each serves both ``F[a, b]`` and ``F[b, a]``.

    Args:
        x (Tensor): ``[N, T, R, D]`` region features.
        k (int): top values averaged over the other video's regions.
            Defaults to 1.
        chunk_size (int, optional): videos per block side. Defaults to None
            (blocks of at most :data:`BLOCK_BUDGET` values).
        recompute (bool): recompute blocks in backward instead of keeping
            ``uint8`` indices. Defaults to False.

    Returns:
        Tensor: ``[N, N, T, T]``.
    """
    _check(x, x, k)
    n, t, r, _ = x.shape
    if chunk_size:
        chunk = int(chunk_size)
    else:
        chunk = max(int((BLOCK_BUDGET**0.5) // (r * t)), 1)
    if chunk < 1:
        raise ValueError(f'chunk_size must be positive, got {chunk_size}')
    return _SelfTopkChamfer.apply(x, int(k), chunk, bool(recompute))
