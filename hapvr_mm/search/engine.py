"""Exhaustive and shortlisted search of an index with a retriever.

Any model with the retrieval interface (``BaseRetriever``: HAP-VR,
``FrameRetriever`` with any backbone) can search. Exhaustive search scores
every query against every indexed video with the model's full similarity
(``model.video_similarity`` on indexed features, in blocks of targets;
"HAP-VR score" below means that score, whatever the model). A shortlist
of ``K`` first ranks the whole index by one matrix product of global
descriptors (``[Q, D] x [D, N]``, see :mod:`.descriptors`) and scores
only each query's top ``K`` with HAP-VR; the final ranking is those ``K``
re-ranked by their HAP-VR score, followed (with ``rank_all``) by the rest
of the index in global-descriptor order. The cost of a query is then ``N``
dot products plus ``K`` HAP-VR pairs instead of ``N`` HAP-VR pairs.

With a :class:`~.vector_index.GlobalIndex` (``global_index=``) the
shortlist candidates come from a faiss index instead of the dense product:
exact (``IndexFlatIP``, the same results) below its size threshold,
approximate (IVF, or IVF-PQ for millions of videos) above it; the
candidates' global similarities are then recomputed exactly from the
store's rows (``store.global_rows`` when it has it: a
:class:`~.VideoIndex` reads only those rows from its file), so only the
choice of candidates can differ and nothing loads all ``N`` descriptors.
"""
import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..models.similarity.fast_chamfer import region_product_dtype
from .model_io import model_device
from .vector_index import GlobalIndex

__all__ = [
    'FeatureStore', 'MemoryStore', 'QueryResult', 'resolve_shortlist',
    'hapvr_scores', 'search', 'global_rows', 'precision_context', 'PRECISIONS'
]


class FeatureStore(Protocol):
    """What search needs from an index (:class:`~.VideoIndex` has it)."""

    global_desc: Tensor  # [N, D]

    def __len__(self) -> int:
        ...

    def features(self, row: int) -> Tensor:
        """Indexed features ``[T, R, D]`` of a row."""
        ...


class MemoryStore:
    """A :class:`FeatureStore` held in memory.

    Args:
        features (sequence[Tensor]): indexed ``[T_i, R, D]`` per video (any
            sequence with ``__getitem__``, e.g. a lazy one).
        global_desc (Tensor): ``[N, D]`` global descriptors.
    """

    def __init__(self, features: Sequence[Tensor], global_desc: Tensor):
        if len(features) != global_desc.shape[0]:
            raise ValueError(f'{len(features)} feature tensors but '
                             f'{global_desc.shape[0]} global descriptors')
        self._features = features
        self.global_desc = global_desc

    def __len__(self) -> int:
        return len(self._features)

    def features(self, row: int) -> Tensor:
        return self._features[row]


@dataclass
class QueryResult:
    """Ranked results of one query.

    Attributes:
        rows (np.ndarray): int64 ``[k]`` rows of the store, best first.
        scores (np.ndarray): float ``[k]`` HAP-VR scores in [-1, 1] (NaN for
            rows ranked by the global descriptor only).
        global_scores (np.ndarray, optional): float ``[k]`` global
            descriptor similarities (None when not computed).
    """

    rows: np.ndarray
    scores: np.ndarray
    global_scores: Optional[np.ndarray] = None


def resolve_shortlist(value: Union[int, float, str, None], n: int) -> int:
    """Turn ``--shortlist`` into a count of videos.

    Args:
        value: None (no shortlist: ``n``), a count (``200`` or ``'200'``),
            a fraction in (0, 1) (``0.05`` or ``'0.05'``) or a percentage
            (``'5%'``).
        n (int): videos in the index.

    Returns:
        int: ``K`` in ``[min(1, n), n]`` (a fraction rounds up).

    Raises:
        ValueError: a value that is none of these.
    """
    if value is None:
        return n
    text = str(value).strip()
    try:
        if text.endswith('%'):
            frac = float(text[:-1]) / 100
        elif isinstance(value, int) or text.isdigit():
            count = int(text)
            if count < 1:
                raise ValueError
            return min(count, n)
        else:
            frac = float(text)
        if not 0 < frac <= 1:
            raise ValueError
    except ValueError:
        raise ValueError(f'shortlist must be a count >= 1, a fraction in '
                         f'(0, 1] or a percentage like 5%, got {value!r}')
    return min(n, max(1 if n else 0, math.ceil(frac * n - 1e-9)))


PRECISIONS = ('float32', 'bfloat16')


def precision_context(precision: Optional[str]):
    """The context of a ``precision`` argument (None: leave it as is).

    Args:
        precision (str, optional): ``'float32'`` (exact) or ``'bfloat16'``
            (region products in bfloat16, see
            :func:`~hapvr_mm.models.similarity.fast_chamfer.
            region_product_dtype`), or None.

    Returns:
        a context manager.

    Raises:
        ValueError: another value.
    """
    if precision is None:
        return contextlib.nullcontext()
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got '
                         f'{precision!r}')
    return region_product_dtype(getattr(torch, precision))


@torch.no_grad()
def hapvr_scores(model: nn.Module,
                 queries: Sequence[Tensor],
                 store: FeatureStore,
                 rows: Sequence[int],
                 block: int = 16,
                 precision: Optional[str] = None,
                 prefetch: bool = True) -> Tensor:
    """Full HAP-VR similarity of queries against some rows of a store.

    Args:
        model (nn.Module): a retriever.
        queries (sequence[Tensor]): indexed ``[T_i, R, D]`` query features.
        store (FeatureStore): the index.
        rows (sequence[int]): rows to score.
        block (int): targets per ``video_similarity`` call. Defaults to 16
            (1.2x faster than 64 on 100 candidates of 30 to 180 frames on a
            2-core CPU). With ``store.num_frames`` (``[N]`` frame counts)
            the rows are scored in order of length, so that a block pads
            little.
        precision (str, optional): ``'float32'`` or ``'bfloat16'`` region
            products (:func:`precision_context`); None: as set around the
            call (float32 by default).
        prefetch (bool): read the next block's features in a helper thread
            while a block is scored. Defaults to True.

    Returns:
        Tensor: float32 ``[Q, len(rows)]`` scores in [-1, 1], in the order
        of ``rows``.
    """
    device = model_device(model)
    rows = [int(r) for r in rows]
    qs = [q.to(device) for q in queries]
    out = torch.empty(len(qs), len(rows))
    # a block is padded to its longest video: with the frame counts known
    # (VideoIndex.num_frames), blocks of similar lengths (twice as fast for
    # 30 to 180 frames at block 64 on a CPU)
    order = np.arange(len(rows))
    lengths = getattr(store, 'num_frames', None)
    if lengths is not None and len(rows) > 1:
        lengths = np.asarray(lengths)
        order = np.argsort(lengths[np.asarray(rows)], kind='stable')
    blocks = [order[s:s + block] for s in range(0, len(rows), block)]

    def read(pos: np.ndarray) -> List[Tensor]:
        return [store.features(rows[i]) for i in pos]

    # the next block's features are read (from disk, for an index file)
    # by a helper thread while this block is scored: the matrix products
    # release the GIL, so reading and scoring overlap
    with ThreadPoolExecutor(1) as pool, precision_context(precision):
        pending = pool.submit(read, blocks[0]) if prefetch and blocks \
            else None
        for bi, pos in enumerate(blocks):
            feats = pending.result() if prefetch else read(pos)
            if prefetch and bi + 1 < len(blocks):
                pending = pool.submit(read, blocks[bi + 1])
            targets = [f.to(device) for f in feats]
            sim = model.video_similarity(qs, targets, indexed=True)
            out[:, torch.from_numpy(pos)] = sim.float().cpu()
    return out


def _ranked(rows: np.ndarray, scores: Tensor,
            glob: Optional[Tensor]) -> QueryResult:
    order = torch.sort(scores, descending=True, stable=True).indices
    return QueryResult(
        rows=rows[order.numpy()],
        scores=scores[order].numpy(),
        global_scores=None if glob is None else glob[order].numpy())


@torch.no_grad()
def search(model: nn.Module,
           queries: Sequence[Tensor],
           store: FeatureStore,
           topk: Optional[int] = 10,
           shortlist: Union[int, float, str, None] = None,
           query_globals: Optional[Tensor] = None,
           rows: Optional[Sequence[int]] = None,
           exclude: Optional[Sequence[Optional[int]]] = None,
           rank_all: bool = False,
           block: int = 16,
           global_index: Optional[GlobalIndex] = None,
           precision: Optional[str] = None) -> List[QueryResult]:
    """Rank (a subset of) an index for each query.

    Args:
        model (nn.Module): a retriever (the index's).
        queries (sequence[Tensor]): indexed ``[T_i, R, D]`` per query.
        store (FeatureStore): the index.
        topk (int, optional): results kept per query (None: all scored).
            Defaults to 10.
        shortlist: None for exhaustive search, else a count, fraction or
            percentage of the searched rows (:func:`resolve_shortlist`);
            it is raised to ``topk`` when smaller.
        query_globals (Tensor, optional): ``[Q, D]`` query descriptors;
            needed with a shortlist.
        rows (sequence[int], optional): search only these rows of the store
            (e.g. a benchmark's database). Defaults to all rows.
        exclude (sequence, optional): per query, a row never returned
            (the query itself when it is in the index), or None.
        rank_all (bool): return every searched row: exhaustive search ranks
            all by HAP-VR score; a shortlist appends the rows outside it in
            global-descriptor order with NaN scores. Defaults to False.
        block (int): targets per ``video_similarity`` call.
        global_index (GlobalIndex, optional): a vector index of
            ``store.global_desc`` choosing the shortlist candidates (not
            used by exhaustive search or ``rank_all``, which need the whole
            global ranking). Defaults to None: one dense matrix product.
        precision (str, optional): HAP-VR region products in
            ``'float32'`` (exact) or ``'bfloat16'`` (2-3x faster on CPUs
            with native bfloat16, scores within a few 1e-3; see
            docs/search.md). None: float32 unless set around the call.

    Returns:
        list[QueryResult]: one per query, best first.

    Raises:
        ValueError: ``global_index`` does not have the store's rows.
    """
    with precision_context(precision):
        return _search(model, queries, store, topk, shortlist, query_globals,
                       rows, exclude, rank_all, block, global_index)


def _search(model: nn.Module, queries: Sequence[Tensor], store: FeatureStore,
            topk: Optional[int], shortlist: Union[int, float, str, None],
            query_globals: Optional[Tensor], rows: Optional[Sequence[int]],
            exclude: Optional[Sequence[Optional[int]]], rank_all: bool,
            block: int,
            global_index: Optional[GlobalIndex]) -> List[QueryResult]:
    """:func:`search` in the precision set around it."""
    searched = np.arange(len(store), dtype=np.int64) if rows is None else \
        np.asarray(rows, dtype=np.int64)
    exclude = list(exclude) if exclude is not None else [None] * len(queries)
    if len(exclude) != len(queries):
        raise ValueError(f'exclude has {len(exclude)} entries for '
                         f'{len(queries)} queries')
    keep_n = None if topk is None or rank_all else int(topk)
    results = []
    if shortlist is None:
        scores = hapvr_scores(model, queries, store, searched, block)
        glob = None
        if query_globals is not None:
            glob = query_globals.float().cpu() @ store.global_desc[
                torch.from_numpy(searched)].float().t()
        for qi in range(len(queries)):
            valid = searched != (-1 if exclude[qi] is None else exclude[qi])
            res = _ranked(
                searched[valid], scores[qi][torch.from_numpy(valid)],
                None if glob is None else glob[qi][torch.from_numpy(valid)])
            results.append(_cut(res, keep_n))
        return results
    if query_globals is None:
        raise ValueError('a shortlist needs the global descriptors of the '
                         'queries (query_globals)')
    if query_globals.shape[0] != len(queries):
        raise ValueError(f'query_globals has {query_globals.shape[0]} rows '
                         f'for {len(queries)} queries')
    k = resolve_shortlist(shortlist, len(searched))
    if topk is not None:
        k = min(max(k, int(topk)), len(searched))
    if global_index is not None and not rank_all:
        return _search_with_index(model, queries, store, k, keep_n,
                                  query_globals, searched, rows is not None,
                                  exclude, block, global_index)
    # the whole (searched) index in one matrix product
    glob = query_globals.float().cpu() @ store.global_desc[torch.from_numpy(
        searched)].float().t()
    for qi in range(len(queries)):
        g = glob[qi].clone()
        if exclude[qi] is not None:
            g[torch.from_numpy(searched == exclude[qi])] = -math.inf
        kq = min(k, int(torch.isfinite(g).sum()))
        order = torch.sort(g, descending=True, stable=True).indices
        top, rest = order[:kq], order[kq:]
        cand = searched[top.numpy()]
        full = hapvr_scores(model, [queries[qi]], store, cand, block)[0]
        res = _ranked(cand, full, g[top])
        if rank_all:
            rest = rest[torch.isfinite(g[rest])]
            res = QueryResult(
                rows=np.concatenate([res.rows, searched[rest.numpy()]]),
                scores=np.concatenate(
                    [res.scores,
                     np.full(len(rest), np.nan, np.float32)]),
                global_scores=np.concatenate(
                    [res.global_scores, g[rest].numpy()]))
        results.append(_cut(res, keep_n))
    return results


def _search_with_index(model: nn.Module, queries: Sequence[Tensor],
                       store: FeatureStore, k: int, keep_n: Optional[int],
                       query_globals: Tensor, searched: np.ndarray,
                       subset: bool, exclude: List[Optional[int]], block: int,
                       global_index: GlobalIndex) -> List[QueryResult]:
    """The shortlist stage of :func:`search` through a vector index."""
    shape = _global_shape(store)
    if (len(global_index), global_index.d) != shape:
        raise ValueError(f'the global index holds {len(global_index)} x '
                         f'{global_index.d} descriptors, the store '
                         f'{shape}; rebuild it')
    qglob = query_globals.float().cpu()
    extra = int(any(e is not None for e in exclude))
    _, found = global_index.search(
        qglob, k + extra, rows=searched if subset else None)
    # position of a row in the searched order breaks ties as the dense
    # product's stable sort does
    position = {int(r): i for i, r in enumerate(searched)} if subset \
        else None
    results = []
    for qi in range(len(queries)):
        cand = found[qi]
        cand = cand[cand >= 0]
        if exclude[qi] is not None:
            cand = cand[cand != exclude[qi]]
        pos = cand if position is None else \
            np.array([position[int(r)] for r in cand], dtype=np.int64)
        cand = cand[np.argsort(pos, kind='stable')]
        g = qglob[qi] @ global_rows(store, cand).float().t()
        order = torch.sort(g, descending=True, stable=True).indices[:k]
        cand, g = cand[order.numpy()], g[order]
        full = hapvr_scores(model, [queries[qi]], store, cand, block)[0]
        results.append(_cut(_ranked(cand, full, g), keep_n))
    return results


def _global_shape(store: FeatureStore) -> tuple:
    shape = getattr(store, 'global_shape', None)
    if shape is None:
        shape = store.global_desc.shape
    return tuple(int(v) for v in shape)


def global_rows(store: FeatureStore, rows: Sequence[int]) -> Tensor:
    """Global descriptors of some rows of a store, without loading all.

    Uses ``store.global_rows`` when the store has it (:class:`~.VideoIndex`
    reads only those rows from its file), else ``store.global_desc``.

    Args:
        store (FeatureStore): the index.
        rows (sequence[int]): rows.

    Returns:
        Tensor: ``[len(rows), D]`` descriptors in the order of ``rows``.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if hasattr(store, 'global_rows'):
        return store.global_rows(rows)
    return store.global_desc[torch.from_numpy(rows)]


def _cut(res: QueryResult, n: Optional[int]) -> QueryResult:
    if n is None:
        return res
    return QueryResult(
        res.rows[:n], res.scores[:n],
        None if res.global_scores is None else res.global_scores[:n])
