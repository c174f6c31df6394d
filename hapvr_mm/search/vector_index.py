"""A vector index of global descriptors for the shortlist stage of search.

:class:`GlobalIndex` answers "which ``K`` indexed videos have the highest
global-descriptor similarity to this query?" with faiss. Three kinds:

* ``'flat'``: exact inner product (``faiss.IndexFlatIP``), the same
  candidates as the dense matrix product of :func:`~.engine.search`;
  ``4 * D`` bytes a video in memory;
* ``'ivf'``: approximate inverted file (``faiss.IndexIVFFlat``, inner
  product, ``nlist = 4 * sqrt(N)`` lists trained by spherical k-means on a
  sample of at most ``64 * nlist`` descriptors, ``nprobe`` lists visited per
  query, by default ``ceil(nlist / 8)``); still ``4 * D`` bytes a video;
* ``'ivfpq'``: the memory-bounded kind for millions of videos. The
  descriptors are rotated (and reduced) by OPQ (``faiss.OPQMatrix``, to
  ``4 m`` dims: 256 of 512), split into ``nlist = N / 150`` inverted lists
  (at most 65,536, spherical k-means on ``20 * nlist`` rotated rows, on
  two levels from 4,096 lists: ``sqrt(nlist)`` groups, then lists within
  each), and each stored as its residual product-quantised into ``m``
  bytes (``m = D / 8`` by default: 64 bytes instead of 2,048 for
  ``D = 512``) of ``2 m`` 4-bit fast-scan codes
  (``faiss.IndexIVFPQFastScan``, SIMD look-ups). Vectors are assigned to
  lists through an HNSW graph of the centroids (a walk of 16, not 65,536
  dot products); a query chooses its ``nprobe`` lists (one in eight by
  default) exactly, by one product with the centroids. A query takes
  ``refine * K`` candidates (16 by default) from the
  compressed index and re-scores them exactly from a float16 copy of the
  descriptors kept on disk next to the index (``INDEX.faiss.f16``, read
  through a memory map, all mapped at once by :meth:`GlobalIndex.preload`),
  so only the choice of candidates is approximate.

``kind='auto'`` chooses by size and memory budget: ``'flat'`` below
``exact_below`` videos (100,000), ``'ivf'`` while ``N * (4 D + 8)`` bytes
fit ``memory_budget`` (2 GiB by default: up to 1,044,000 videos of
``D = 512``), ``'ivfpq'`` above.

Why these choices (``benchmarks/search_scale.py``, docs/benchmarks.md
"Search at 1M and 10M videos", synthetic clustered ``D = 512``
descriptors with a decaying spectrum, 2 CPU threads): the flat product
costs ~143 ms a query and 2 GiB per million videos, and IVF-Flat keeps the
2 GiB per million. With 4,096 lists, no rotation and 8-bit codes, IVF-PQ
reached recall@1000 0.56 at 10M: the top 1000 of a query spreads over
many lists and the codes were too coarse around rank 1000. The OPQ
rotation (0.82 -> 0.93 at 1M with the same lists), 16 times more lists
(finer residuals) chosen exactly rather than by the graph (0.95 -> 0.99 at
1M), fast-scan codes (the same recall as 8-bit codes of the same bytes,
so that an eighth of the lists can be scanned) and a re-score of 16 K
candidates are what reach 0.95 at 10M (figures in docs/benchmarks.md).
The rotation keeps 4 dims per code byte, which suits descriptors whose
variance decays over their dimensions; for descriptors spread evenly
over all of them pass ``opq_dims=D``.

Why IVF and not HNSW for the lists themselves: on 50,000 synthetic
clustered unit descriptors (``D = 256``, 500 clusters, 200 queries, 2 CPU
threads) recall@1000 was 0.962 for IVF (nlist 894, nprobe 128) at 0.53 ms
a query and 1.3 s to build, and 0.962 for HNSW (``IndexHNSWFlat``, M 32,
efConstruction 80, efSearch 2048) at 2.8 ms a query and 4.9 s to build: a
shortlist asks for hundreds to thousands of candidates, where HNSW needs a
very large ``efSearch``, while IVF's cost grows only with the lists it
visits (and HNSW stores every full vector in memory). Check the recall on
your own collection with :func:`global_recall`.

Descriptors are read in chunks (:func:`iter_chunks`) from anything with a
``shape`` and row slicing (a tensor, an array, a ``np.memmap``, an h5py
dataset, :meth:`~.VideoIndex.global_view`): the approximate kinds are
trained on a sample and filled chunk by chunk, so 10,000,000 descriptors
are never all in memory.

An index is saved next to the search index file: ``INDEX.faiss``
(``faiss.write_index``), ``INDEX.faiss.f16`` (``'ivfpq'`` only: raw
float16 ``[N, D]``) and ``INDEX.faiss.json`` (written last: ``n``, ``d``,
``kind``, ``nprobe``, ``refine`` and a cheap fingerprint). The fingerprint
does not hash all descriptors: it is the SHA-1 of ``N``, ``D`` and the rows
at :func:`probe_rows` positions (at most 72 rows), plus optionally a digest
of the ids and a caller's tag (the model fingerprint). A search index only
grows by appending committed rows, so :meth:`GlobalIndex.load_or_build`
accepts a saved index whose fingerprint matches the first ``n`` rows of a
larger index and adds the new rows (and appends them to the float16 copy);
when the index has more than doubled, or the kind ``'auto'`` resolves to
has changed, it is rebuilt. A replaced row that is not among the probed
rows goes unnoticed: rebuild with ``--global-index`` of another kind, or
delete the files, after rewriting rows in place (the writers never do).

Without faiss installed (``pip install faiss-cpu``, see
``requirements/optional.txt``) :class:`GlobalIndex` falls back to exact
search with a torch matrix product (``kind='torch'``, nothing saved) and
warns once when an approximate index was wanted.
"""
import hashlib
import json
import math
import mmap
import os
import os.path as osp
import warnings
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'GlobalIndex', 'descriptor_fingerprint', 'faiss_available', 'recall_at_k',
    'global_recall', 'iter_chunks', 'probe_rows', 'ids_digest', 'parse_bytes',
    'choose_kind', 'exact_top_k'
]

SIDECAR_VERSION = 2
DEFAULT_EXACT_BELOW = 100_000
DEFAULT_MEMORY_BUDGET = 2 << 30
DEFAULT_REFINE = 16
CHUNK_ROWS = 65536
MAX_PQ_NLIST = 65536  # 'ivfpq' lists: at most
PQ_ROWS_PER_LIST = 150  # 'ivfpq' lists: N / 150 by default
PQ_MIN_PER_LIST = 39  # 'ivfpq' lists: at least this many rows each
PQ_TRAIN_PER_LIST = 20  # k-means sample: rows per list
OPQ_TRAIN = 65536  # rows the OPQ rotation is trained on
OPQ_NITER = 20
PQ_TRAIN = 131072  # residuals the product quantizer is trained on
TWO_LEVEL_FROM = 4096  # lists from which k-means runs on two levels
ADD_EF = 16  # HNSW candidates walked to assign an added vector
KINDS = ('flat', 'ivf', 'ivfpq', 'torch')
Descriptors = Union[Tensor, np.ndarray, object]


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    """Whether faiss can be imported.

    Returns:
        bool: True when ``import faiss`` works.
    """
    return _faiss() is not None


def _to_f32(arr, name: str) -> np.ndarray:
    arr = arr.detach().cpu().numpy() if isinstance(arr, Tensor) else \
        np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f'{name} must be [N, D], got shape '
                         f'{tuple(arr.shape)}')
    return np.ascontiguousarray(arr, dtype=np.float32)


def _shape(desc: Descriptors, name: str) -> Tuple[int, int]:
    shape = tuple(getattr(desc, 'shape', ()))
    if len(shape) != 2:
        raise ValueError(f'{name} must be [N, D], got shape {shape}')
    return int(shape[0]), int(shape[1])


def _rows(desc: Descriptors, rows: np.ndarray) -> np.ndarray:
    """float32 ``[k, D]`` rows of ``desc`` in the order of ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(desc, Tensor):
        return _to_f32(desc[torch.from_numpy(rows)], 'descriptors')
    if isinstance(desc, np.ndarray):
        return _to_f32(desc[rows], 'descriptors')
    # h5py datasets and lazy views want increasing, unique positions
    uniq, inverse = np.unique(rows, return_inverse=True)
    if not len(uniq):
        return np.zeros((0, _shape(desc, 'descriptors')[1]), np.float32)
    return _to_f32(desc[uniq], 'descriptors')[inverse]


def iter_chunks(desc: Descriptors,
                start: int = 0,
                stop: Optional[int] = None,
                size: int = CHUNK_ROWS) -> Iterator[Tuple[int, np.ndarray]]:
    """Rows ``[start, stop)`` of descriptors in float32 chunks.

    Args:
        desc: ``[N, D]`` descriptors: a tensor, an array (``np.memmap``
            too), an h5py dataset or any object with ``shape`` and slicing.
        start (int): first row. Defaults to 0.
        stop (int, optional): end row (default ``N``).
        size (int): rows per chunk. Defaults to 65,536.

    Yields:
        tuple[int, np.ndarray]: the first row of the chunk and its float32
        ``[<= size, D]`` rows.
    """
    n, _ = _shape(desc, 'descriptors')
    stop = n if stop is None else min(int(stop), n)
    for s in range(int(start), stop, size):
        yield s, _to_f32(desc[s:min(s + size, stop)], 'descriptors')


def probe_rows(n: int, count: int = 64, tail: int = 8) -> np.ndarray:
    """Rows a cheap fingerprint of ``n`` descriptors reads.

    ``count`` evenly spaced rows and the last ``tail`` rows; the positions
    depend only on ``n``, so the fingerprint of the first ``n`` rows of a
    grown index can be checked against a saved one.

    Args:
        n (int): rows.
        count (int): evenly spaced rows. Defaults to 64.
        tail (int): last rows. Defaults to 8.

    Returns:
        np.ndarray: sorted unique int64 rows (empty for ``n == 0``).
    """
    if n <= 0:
        return np.zeros(0, np.int64)
    spaced = np.linspace(0, n - 1, min(count, n)).round().astype(np.int64)
    return np.unique(np.concatenate([spaced, np.arange(max(0, n - tail), n)]))


def descriptor_fingerprint(desc: Descriptors, n: Optional[int] = None) -> str:
    """Cheap SHA-1 fingerprint of the first ``n`` descriptors.

    Hashes ``n``, ``D`` and the float32 values of the :func:`probe_rows`
    rows (at most 72 rows are read, whatever ``N``).

    Args:
        desc: ``[N, D]`` descriptors (see :func:`iter_chunks`).
        n (int, optional): rows to cover (default all).

    Returns:
        str: 40 hex digits.
    """
    total, d = _shape(desc, 'descriptors')
    n = total if n is None else int(n)
    if not 0 <= n <= total:
        raise ValueError(f'cannot fingerprint {n} of {total} descriptors')
    sha = hashlib.sha1(f'{n}x{d}:'.encode())
    sha.update(memoryview(_rows(desc, probe_rows(n))).cast('B'))
    return sha.hexdigest()


def ids_digest(ids: Optional[Sequence[str]],
               n: Optional[int] = None) -> Optional[str]:
    """SHA-1 of the first ``n`` ids (None without ids).

    Args:
        ids (sequence[str], optional): video ids in row order.
        n (int, optional): how many (default all).

    Returns:
        str | None: 40 hex digits.
    """
    if ids is None:
        return None
    sha = hashlib.sha1()
    for vid in ids[:len(ids) if n is None else n]:
        sha.update(str(vid).encode('utf-8') + b'\n')
    return sha.hexdigest()


def parse_bytes(value: Union[int, str]) -> int:
    """Read a memory size such as ``2GiB``, ``512MiB``, ``1.5GB`` or bytes.

    Args:
        value (int | str): the size.

    Returns:
        int: bytes.

    Raises:
        ValueError: not a size.
    """
    text = str(value).strip().lower().replace(' ', '')
    units = dict(
        k=1 << 10,
        m=1 << 20,
        g=1 << 30,
        t=1 << 40,
        kb=1e3,
        mb=1e6,
        gb=1e9,
        tb=1e12,
        kib=1 << 10,
        mib=1 << 20,
        gib=1 << 30,
        tib=1 << 40,
        b=1)
    num = text.rstrip('kmgtib')
    unit = text[len(num):] or 'b'
    try:
        out = int(float(num) * units[unit])
    except (ValueError, KeyError):
        raise ValueError(f'not a memory size: {value!r} (e.g. 2GiB, 512MiB)')
    if out <= 0:
        raise ValueError(f'memory size must be positive, got {value!r}')
    return out


def choose_kind(n: int,
                d: int,
                exact_below: int = DEFAULT_EXACT_BELOW,
                memory_budget: Union[int, str] = DEFAULT_MEMORY_BUDGET) -> str:
    """The kind ``'auto'`` resolves to for ``n`` descriptors of width ``d``.

    Args:
        n (int): descriptors.
        d (int): their width.
        exact_below (int): below this many, exact ``'flat'``.
        memory_budget (int | str): bytes (or ``'2GiB'``) the index may hold
            in memory; ``'ivf'`` while its ``n * (4 d + 8)`` bytes
            (vectors and ids) fit, else ``'ivfpq'``.

    Returns:
        str: ``'flat'``, ``'ivf'`` or ``'ivfpq'``.
    """
    if n < exact_below:
        return 'flat'
    if n * (d * 4 + 8) <= parse_bytes(memory_budget):
        return 'ivf'
    return 'ivfpq'


def default_pq_nlist(n: int) -> int:
    """``'ivfpq'`` lists for ``n`` rows: ``n / 150``, in ``[1, 65536]``.

    Args:
        n (int): rows.

    Returns:
        int: lists.
    """
    return max(1, min(MAX_PQ_NLIST, int(round(n / PQ_ROWS_PER_LIST))))


def _lists_and_sample(n: int, nlist: int, train_size: Optional[int],
                      per_list: int, seed: int):
    """IVF lists for ``n`` rows (at most ``n // 39``, at least 1) and the
    sorted rows k-means trains on (``per_list * nlist`` by default, at
    least ``nlist``, at most ``n``), with the generator that drew them."""
    nlist = max(1, min(int(nlist), n // PQ_MIN_PER_LIST or 1))
    if train_size is None:
        train_size = per_list * nlist
    train_size = max(nlist, min(int(train_size), n))
    rng = np.random.default_rng(seed)
    sample = np.arange(n) if n <= train_size else \
        np.sort(rng.choice(n, train_size, replace=False))
    return nlist, sample, rng


def _opq_dims(d: int, m: int, want: Optional[int] = None) -> int:
    """Width the OPQ rotation keeps: ``want`` or ``4 m`` (4 dims a code
    byte), at most ``d``, a multiple of ``m``."""
    want = 4 * m if want is None else int(want)
    return max(m, min(d, want) // m * m)


def _pq_bytes(d: int, m: Optional[int]) -> int:
    if m is None:
        m = max(1, d // 8)
    m = int(m)
    while m > 1 and d % m:
        m -= 1
    return m


class GlobalIndex:
    """Nearest global descriptors by inner product (faiss or torch).

    Args:
        desc: ``[N, D]`` float L2-normalised descriptors (a tensor, an
            array, a ``np.memmap``, an h5py dataset or any object with
            ``shape`` and row slicing); row ``i`` of the index is row ``i``
            here. Read in chunks; the approximate kinds never hold them
            all. ``'ivfpq'`` keeps a reference to ``desc`` for its exact
            re-scoring until :meth:`save` moves it to the float16 file.
        kind (str): ``'auto'`` (:func:`choose_kind`), ``'flat'``,
            ``'ivf'``, ``'ivfpq'`` or ``'torch'`` (exact, without faiss).
            Without faiss every kind becomes ``'torch'``. Defaults to
            ``'auto'``.
        exact_below (int): rows under which ``'auto'`` stays exact.
            Defaults to 100,000.
        nlist (int, optional): IVF lists (default ``4 * sqrt(N)`` for
            ``'ivf'``, ``N / 150`` but at most 65,536 for ``'ivfpq'``
            (:func:`default_pq_nlist`); at most ``N // 39``, at least 1).
        nprobe (int, optional): IVF lists visited per query (default
            ``ceil(nlist / 8)``).
        seed (int): seed of the training sample and k-means. Defaults to 0.
        memory_budget (int | str): see :func:`choose_kind`. Defaults to
            2 GiB.
        pq_m (int, optional): ``'ivfpq'`` bytes per descriptor (a divisor
            of ``D``; default ``D / 8``).
        refine (int): ``'ivfpq'`` re-scores ``refine * K`` candidates
            exactly. Defaults to 16.
        train_size (int, optional): training sample (default ``64 * nlist``
            for ``'ivf'``, ``20 * nlist`` for ``'ivfpq'``).
        ids (sequence[str], optional): video ids, fingerprinted with the
            descriptors.
        tag (str, optional): e.g. the model fingerprint; a saved index with
            another tag is rebuilt.
        opq_dims (int, optional): ``'ivfpq'``: width the OPQ rotation
            keeps (default ``4 * pq_m``: 256 of 512; give ``D`` for
            descriptors whose variance is spread evenly over all
            dimensions).
        fast_scan (bool): ``'ivfpq'``: codes of ``2 m`` 4-bit
            sub-quantizers scanned with SIMD lookups
            (``faiss.IndexIVFPQFastScan``) instead of ``m`` 8-bit ones.
            Defaults to True.

    Raises:
        ValueError: an unknown kind or descriptors that are not ``[N, D]``.
    """

    def __init__(self,
                 desc: Descriptors,
                 kind: str = 'auto',
                 exact_below: int = DEFAULT_EXACT_BELOW,
                 nlist: Optional[int] = None,
                 nprobe: Optional[int] = None,
                 seed: int = 0,
                 memory_budget: Union[int, str] = DEFAULT_MEMORY_BUDGET,
                 pq_m: Optional[int] = None,
                 refine: int = DEFAULT_REFINE,
                 train_size: Optional[int] = None,
                 ids: Optional[Sequence[str]] = None,
                 tag: Optional[str] = None,
                 opq_dims: Optional[int] = None,
                 fast_scan: bool = True) -> None:
        if isinstance(desc, (Tensor, np.ndarray)) and \
                not isinstance(desc, np.memmap):
            desc = _to_f32(desc, 'global descriptors')
        n, d = _shape(desc, 'global descriptors')
        if kind not in KINDS + ('auto', ):
            raise ValueError(f'unknown global index kind {kind!r}; use one '
                             f"of {('auto', ) + KINDS}")
        if kind == 'auto':
            kind = choose_kind(n, d, exact_below, memory_budget)
        if kind in ('ivf', 'ivfpq') and n < 2:
            kind = 'flat'
        faiss = _faiss()
        if faiss is None and kind != 'torch':
            if kind in ('ivf', 'ivfpq'):
                warnings.warn(f'faiss is not installed: searching {n} global '
                              'descriptors exactly with torch instead of an '
                              'approximate index (pip install faiss-cpu)')
            kind = 'torch'
        self.kind = kind
        self.n, self.d = n, d
        self.fingerprint = descriptor_fingerprint(desc)
        self.ids_digest = ids_digest(ids, n)
        self.tag = tag
        self.nprobe = None
        self._centroids = None
        self._rotation = None
        self.refine = max(1, int(refine))
        self._torch = None
        self._faiss = None
        self._vectors = None  # 'ivfpq': rows for the exact re-score
        self._vectors_file = None  # their file once preloaded
        if kind == 'torch':
            self._torch = torch.from_numpy(_to_f32(desc[:n], 'descriptors'))
            return
        if kind == 'flat':
            self._faiss = faiss.IndexFlatIP(d)
        else:
            self._faiss = self._train(desc, kind, nlist, seed, pq_m,
                                      train_size, opq_dims, fast_scan)
        for _, chunk in iter_chunks(desc):
            self._faiss.add(chunk)
        if kind == 'ivfpq':
            self._vectors = desc
        self.set_nprobe(nprobe)

    def _train(self,
               desc,
               kind,
               nlist,
               seed,
               pq_m,
               train_size,
               opq_dims=None,
               fast_scan=True):
        faiss = _faiss()
        n, d = self.n, self.d
        if kind == 'ivfpq':
            return self._train_pq(desc, nlist, seed, pq_m, train_size,
                                  opq_dims, fast_scan)
        nlist, sample, _ = _lists_and_sample(
            n,
            int(round(4 * math.sqrt(n))) if nlist is None else nlist,
            train_size, 64, seed)
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(_rows(desc, sample))
        return index

    def _train_pq(self,
                  desc,
                  nlist,
                  seed,
                  pq_m,
                  train_size,
                  opq_dims=None,
                  fast_scan=True):
        """Train the ``'ivfpq'`` pipeline: OPQ rotation to ``opq_dims``
        (default ``4 m``) dims,
        spherical (two-level) k-means lists, HNSW coarse quantizer and the
        residual product quantizer; nothing added yet."""
        faiss = _faiss()
        from faiss.contrib.clustering import two_level_clustering
        n, d = self.n, self.d
        m = _pq_bytes(d, pq_m)
        d_out = _opq_dims(d, m, opq_dims)
        nlist, sample, rng = _lists_and_sample(
            n,
            default_pq_nlist(n) if nlist is None else nlist, train_size,
            PQ_TRAIN_PER_LIST, seed)
        # the rotation learns from a subsample; the lists and codes from
        # the rotated sample, read and rotated chunk by chunk (1,000,000
        # rows of 256 floats: 1 GiB, never the D-wide sample)
        opq = faiss.OPQMatrix(d, m, d_out)
        opq.niter = OPQ_NITER
        opq.verbose = False
        sub = np.sort(
            rng.choice(
                len(sample), min(len(sample), OPQ_TRAIN), replace=False))
        opq.train(_rows(desc, sample[sub]))
        xt = np.empty((len(sample), d_out), np.float32)
        for s in range(0, len(sample), CHUNK_ROWS):
            part = sample[s:s + CHUNK_ROWS]
            xt[s:s + len(part)] = opq.apply_py(_rows(desc, part))
        if nlist >= TWO_LEVEL_FROM:
            # two-level k-means: sqrt(nlist) groups, then lists within
            # each group (minutes for 65,536 lists on 2 cores, where one
            # level would take hours)
            cen, _ = two_level_clustering(
                xt,
                max(2, int(round(math.sqrt(nlist)))),
                nlist,
                spherical=True,
                seed=seed,
                min_points_per_centroid=1)
        else:
            km = faiss.Kmeans(
                d_out,
                nlist,
                spherical=True,
                seed=seed,
                niter=20,
                min_points_per_centroid=1)
            km.train(xt)
            cen = km.centroids
        cen = np.ascontiguousarray(cen, dtype=np.float32)
        faiss.normalize_L2(cen)
        quantizer = faiss.IndexHNSWFlat(d_out, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efConstruction = 80
        quantizer.add(cen)
        # adding a vector walks ADD_EF candidates of the graph; a search
        # chooses its lists exactly (see _choose_lists)
        quantizer.hnsw.efSearch = ADD_EF
        if fast_scan:
            # 2 m sub-quantizers of 4 bits: m bytes as well, scanned with
            # SIMD lookups (several times faster a code than 8 bits)
            ivf = faiss.IndexIVFPQFastScan(quantizer, d_out, nlist, 2 * m, 4,
                                           faiss.METRIC_INNER_PRODUCT)
            ivf.by_residual = True
        else:
            ivf = faiss.IndexIVFPQ(quantizer, d_out, nlist, m, 8,
                                   faiss.METRIC_INNER_PRODUCT)
        ivf.pq.cp.seed = seed
        # the quantizer already holds nlist centroids: train() fits only
        # the product quantizer, on the residuals of a subsample
        sub = np.sort(
            rng.choice(len(xt), min(len(xt), PQ_TRAIN), replace=False))
        ivf.train(xt[sub])
        del xt
        index = faiss.IndexPreTransform(opq, ivf)
        # swig does not keep the python parts alive for the C++ index
        self._parts = (opq, ivf, quantizer)
        return index

    @property
    def exact(self) -> bool:
        """Whether searches return the exact ranking."""
        return self.kind in ('flat', 'torch')

    @property
    def memory_bytes(self) -> int:
        """Bytes of the in-memory structure (faiss: its serialised size)."""
        if self._torch is not None:
            return self._torch.numel() * 4
        faiss = _faiss()
        return int(faiss.serialize_index(self._faiss).nbytes)

    @property
    def _ivf(self):
        """The inverted file inside the faiss index (None if not IVF)."""
        if self._faiss is None or self.kind not in ('ivf', 'ivfpq'):
            return None
        faiss = _faiss()
        return faiss.downcast_index(faiss.extract_index_ivf(self._faiss))

    @property
    def nlist(self) -> Optional[int]:
        """IVF lists (None for an exact index)."""
        ivf = self._ivf
        return None if ivf is None else int(ivf.nlist)

    @property
    def pq_bytes(self) -> Optional[int]:
        """``'ivfpq'`` bytes of code a descriptor (None for other kinds)."""
        if self.kind != 'ivfpq':
            return None
        pq = self._ivf.pq
        return int(pq.M * pq.nbits // 8)

    @property
    def fast_scan(self) -> bool:
        """Whether the codes are 4-bit fast-scan codes."""
        return self.kind == 'ivfpq' and isinstance(self._ivf,
                                                   _faiss().IndexIVFFastScan)

    @property
    def opq_dims(self) -> Optional[int]:
        """Width after the OPQ rotation (None without one)."""
        if self.kind != 'ivfpq' or self._faiss.d == self._ivf.d and \
                not isinstance(self._faiss, _faiss().IndexPreTransform):
            return None
        return int(self._ivf.d)

    def set_nprobe(self, nprobe: Optional[int]) -> None:
        """Set the IVF lists visited per query.

        Args:
            nprobe (int, optional): lists, clipped to ``[1, nlist]``. None:
                ``ceil(nlist / 8)``.
        """
        if self.kind not in ('ivf', 'ivfpq'):
            return
        nlist = self.nlist
        if nprobe is None:
            nprobe = math.ceil(nlist / 8)
        self.nprobe = max(1, min(int(nprobe), nlist))
        self._ivf.nprobe = self.nprobe

    def _search_params(self, sel):
        """faiss search parameters: the row selector and nprobe."""
        faiss = _faiss()
        if self.kind == 'flat':
            return None if sel is None else faiss.SearchParameters(sel=sel)
        kw = dict(nprobe=self.nprobe)
        if sel is not None:
            kw['sel'] = sel
        params = faiss.SearchParametersIVF(**kw)
        # swig does not keep the selector alive through the parameters
        params.keep_alive = sel
        return params

    def _graph_quantizer(self) -> bool:
        """Whether the lists are found through an HNSW graph (``'ivfpq'``),
        whose walk a search replaces by the exact product."""
        faiss = _faiss()
        return self._ivf is not None and isinstance(
            faiss.downcast_index(self._ivf.quantizer), faiss.IndexHNSW)

    def _choose_lists(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` lists of each (transformed) query, exactly: one
        ``[Q, d] x [d, nlist]`` product with the centroids (0.3 ms for
        65,536 lists of 256 dims), where the HNSW graph would need a walk
        of several times ``nprobe`` candidates to find the same lists.

        Args:
            x (np.ndarray): ``[Q, d]`` queries in the lists' space.

        Returns:
            tuple[np.ndarray, np.ndarray]: int64 ``[Q, nprobe]`` lists and
            float32 ``[Q, nprobe]`` inner products with their centroids.
        """
        if self._centroids is None:
            faiss = _faiss()
            graph = faiss.downcast_index(self._ivf.quantizer)
            # [d, nlist], contiguous: a query's product streams it once
            # (2 ms for 65,536 x 256; 8 ms through a transposed view)
            self._centroids = np.ascontiguousarray(
                faiss.downcast_index(graph.storage).reconstruct_n(
                    0, self._ivf.nlist).T)
        # the small products of a query run in torch: numpy's threaded
        # BLAS would spin its threads against faiss's (1.6x slower)
        sim = (torch.from_numpy(x) @ torch.from_numpy(self._centroids)).numpy()
        p = min(self.nprobe, sim.shape[1])
        lists = np.argpartition(-sim, p - 1, axis=1)[:, :p] \
            if p < sim.shape[1] else np.broadcast_to(
                np.arange(sim.shape[1]), sim.shape).copy()
        return lists.astype(np.int64), np.take_along_axis(sim, lists, 1)

    def _transform(self, q: np.ndarray) -> np.ndarray:
        """Queries in the inverted file's space (after the rotation)."""
        faiss = _faiss()
        if isinstance(self._faiss, faiss.IndexPreTransform):
            if self._rotation is None:
                lt = faiss.downcast_VectorTransform(self._faiss.chain.at(0))
                a = faiss.vector_to_array(lt.A).reshape(lt.d_out, lt.d_in)
                b = faiss.vector_to_array(lt.b) if lt.have_bias else None
                self._rotation = (torch.from_numpy(np.ascontiguousarray(a.T)),
                                  None if b is None else torch.from_numpy(b))
            a, b = self._rotation
            y = torch.from_numpy(np.ascontiguousarray(q, np.float32)) @ a
            q = (y if b is None else y + b).numpy()
        return np.ascontiguousarray(q, dtype=np.float32)

    def __len__(self) -> int:
        return self.n

    def search(self,
               queries: Union[Tensor, np.ndarray],
               k: int,
               rows: Optional[Sequence[int]] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by inner product for each query.

        ``'ivfpq'`` takes ``refine * k`` candidates from the compressed
        index and returns the best ``k`` of them by their exact inner
        product with the float16 descriptors on disk.

        Args:
            queries (Tensor | np.ndarray): ``[Q, D]`` query descriptors.
            k (int): rows per query.
            rows (sequence[int], optional): search only these rows.

        Returns:
            tuple[np.ndarray, np.ndarray]: float32 ``[Q, k']`` similarities
            and int64 ``[Q, k']`` rows, best first, with
            ``k' = min(k, rows searched)``; an approximate index may leave
            some places empty (row -1, similarity -inf).

        Raises:
            ValueError: queries whose width is not the index's ``D``.
        """
        q = _to_f32(queries, 'query descriptors')
        if q.shape[1] != self.d:
            raise ValueError(f'query descriptors have D={q.shape[1]}, the '
                             f'global index has D={self.d}')
        subset = None if rows is None else np.asarray(rows, dtype=np.int64)
        avail = self.n if subset is None else len(subset)
        k = max(0, min(int(k), avail))
        if k == 0:
            return (np.zeros((len(q), 0),
                             np.float32), np.zeros((len(q), 0), np.int64))
        if self.kind == 'torch':
            base = self._torch if subset is None else \
                self._torch[torch.from_numpy(subset)]
            sim = torch.from_numpy(q) @ base.t()
            order = torch.sort(
                sim, dim=1, descending=True, stable=True).indices[:, :k]
            scores = torch.gather(sim, 1, order).numpy()
            found = order.numpy().astype(np.int64)
            if subset is not None:
                found = subset[found]
            return scores.astype(np.float32), found
        faiss = _faiss()
        sel = None if subset is None else faiss.IDSelectorBatch(subset)
        params = self._search_params(sel)
        kk = k if self.kind != 'ivfpq' else min(avail, self.refine * k)
        if self.fast_scan and subset is not None:
            # fast-scan codes take no row selector: the subset's rows are
            # scored exactly from the float16 copy instead
            return self._rescore(
                q, np.broadcast_to(subset, (len(q), len(subset))), k)
        if self._graph_quantizer():
            x = self._transform(q)
            lists, dis = self._choose_lists(x)
            self._ivf.nprobe = lists.shape[1]
            # one query: its lists split over the threads (20 % faster at
            # 8,192 lists); several: the queries
            self._ivf.parallel_mode = 1 if len(x) == 1 else 0
            scores, found = self._ivf.search_preassigned(
                x, kk, lists, dis, params=None if sel is None else params)
        else:
            scores, found = self._faiss.search(q, kk, params=params)
        found = found.astype(np.int64)
        if self.kind == 'ivfpq':
            return self._rescore(q, found, k)
        scores = np.where(found < 0, -np.inf, scores).astype(np.float32)
        return scores, found

    def _rescore(self, q: np.ndarray, found: np.ndarray,
                 k: int) -> Tuple[np.ndarray, np.ndarray]:
        """Exact inner products of the candidates, best ``k`` kept."""
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_r = np.full((len(q), k), -1, np.int64)
        for qi in range(len(q)):
            # sorted, without the -1 of empty places and repeats (an IVF
            # returns a row once; a subset may repeat one)
            cand = np.sort(found[qi][found[qi] >= 0])
            if len(cand) > 1:
                cand = cand[np.r_[True, cand[1:] != cand[:-1]]]
            if not len(cand):
                continue
            if isinstance(self._vectors, np.ndarray):
                # float16 -> float32 and the product in torch: 2.3x
                # numpy's speed for 16,000 rows
                block = torch.from_numpy(
                    np.ascontiguousarray(self._vectors[cand]))
                sim = (block.float() @ torch.from_numpy(q[qi])).numpy()
            else:
                sim = _rows(self._vectors, cand) @ q[qi]
            if len(sim) > k:
                # the best k (ties at the cut all kept), then ordered
                cut = np.partition(-sim, k - 1)[k - 1]
                keep = np.flatnonzero(-sim <= cut)
                top = keep[np.lexsort((cand[keep], -sim[keep]))][:k]
            else:
                top = np.lexsort((cand, -sim))[:k]
            out_s[qi, :len(top)] = sim[top]
            out_r[qi, :len(top)] = cand[top]
        return out_s, out_r

    def preload(self) -> bool:
        """Map every page of the float16 copy now (``'ivfpq'``, saved).

        A re-score reads ``refine * K`` scattered rows of the float16 copy;
        through a plain memory map each first touch of a page is a page
        fault (about 2 us: 30 ms for 16,000 candidates). After this call
        (``mmap`` with ``MAP_POPULATE``, Linux) the whole file is mapped:
        the re-score reads memory (2 ms for 8,000 rows). It costs 0.5 s for
        10 GB already in the page cache, and reads the whole file from disk
        when it is not; the pages belong to the page cache (file-backed,
        reclaimable), not to the process's own memory.

        Returns:
            bool: whether the copy was mapped (False for other kinds, an
            unsaved index or a system without ``MAP_POPULATE``).
        """
        vec = self._vectors
        if self.kind != 'ivfpq' or not isinstance(vec, np.memmap) or \
                not hasattr(mmap, 'MAP_POPULATE'):
            return False
        fd = os.open(vec.filename, os.O_RDONLY)
        try:
            mapped = mmap.mmap(
                fd,
                0,
                flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._vectors = np.frombuffer(
            mapped, np.float16, count=self.n * self.d).reshape(self.n, self.d)
        self._vectors_file = vec.filename
        return True

    # saving next to the search index file
    @staticmethod
    def paths_for(index_path: str) -> Tuple[str, str]:
        """The faiss file and JSON sidecar kept next to an index file.

        Args:
            index_path (str): the search index (``.h5``).

        Returns:
            tuple[str, str]: ``INDEX.faiss`` and ``INDEX.faiss.json``
            (``'ivfpq'`` adds ``INDEX.faiss.f16``).
        """
        return index_path + '.faiss', index_path + '.faiss.json'

    def _meta(self) -> dict:
        return dict(
            version=SIDECAR_VERSION,
            n=self.n,
            d=self.d,
            kind=self.kind,
            nprobe=self.nprobe,
            refine=self.refine,
            fingerprint=self.fingerprint,
            ids=self.ids_digest,
            tag=self.tag)

    def save(self, index_path: str, desc: Descriptors = None) -> None:
        """Write the index next to ``index_path`` (nothing for ``torch``).

        The sidecar is removed first and written last (after the faiss file
        and, for ``'ivfpq'``, the float16 descriptors), each through a
        temporary name, so a reader never pairs new files with an old
        sidecar. ``'ivfpq'`` then re-scores from the float16 file.

        Args:
            index_path (str): the search index file it was built from.
            desc (optional): the descriptors, when the index was loaded
                (``'ivfpq'`` writes its float16 copy from them; default:
                those it was built from).
        """
        if self.kind == 'torch':
            return
        faiss = _faiss()
        fpath, jpath = self.paths_for(index_path)
        if osp.exists(jpath):
            os.remove(jpath)
        faiss.write_index(self._faiss, fpath + '.tmp')
        os.replace(fpath + '.tmp', fpath)
        if self.kind == 'ivfpq':
            src = self._vectors if desc is None else desc
            vpath = fpath + '.f16'
            src_file = getattr(src, 'filename', None) or \
                getattr(src, 'path', None) or (
                    self._vectors_file if src is self._vectors else None)
            if not (isinstance(src_file, str)
                    and osp.abspath(src_file) == osp.abspath(vpath)):
                with open(vpath + '.tmp', 'wb') as f:
                    for _, chunk in iter_chunks(src, 0, self.n):
                        f.write(chunk.astype(np.float16).tobytes())
                os.replace(vpath + '.tmp', vpath)
            self._vectors = np.memmap(
                vpath, np.float16, 'r', shape=(self.n, self.d))
        with open(jpath + '.tmp', 'w') as f:
            json.dump(self._meta(), f, indent=1)
        os.replace(jpath + '.tmp', jpath)

    @classmethod
    def _read(cls, index_path: str) -> Optional['GlobalIndex']:
        """The saved index and its sidecar, unchecked (None if unreadable)."""
        faiss = _faiss()
        fpath, jpath = cls.paths_for(index_path)
        if faiss is None or not (osp.isfile(fpath) and osp.isfile(jpath)):
            return None
        try:
            with open(jpath) as f:
                meta = json.load(f)
            if meta.get('version') != SIDECAR_VERSION or \
                    meta.get('kind') not in ('flat', 'ivf', 'ivfpq'):
                return None
            n, d = int(meta['n']), int(meta['d'])
            index = faiss.read_index(fpath)
            vectors = None
            if meta['kind'] == 'ivfpq':
                vpath = fpath + '.f16'
                if os.path.getsize(vpath) < n * d * 2:
                    return None
                vectors = np.memmap(vpath, np.float16, 'r', shape=(n, d))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        if index.ntotal != n or index.d != d:
            return None
        self = cls.__new__(cls)
        self.kind, self.n, self.d = meta['kind'], n, d
        self.fingerprint = meta.get('fingerprint')
        self.ids_digest, self.tag = meta.get('ids'), meta.get('tag')
        self.refine = max(1, int(meta.get('refine') or DEFAULT_REFINE))
        self._torch, self._faiss, self.nprobe = None, index, None
        self._centroids = self._rotation = None
        self._vectors = vectors
        self._vectors_file = None
        self.set_nprobe(meta.get('nprobe'))
        return self

    def _matches(self, desc: Descriptors, ids: Optional[Sequence[str]],
                 tag: Optional[str], n: int) -> bool:
        """Whether this index holds the first ``n`` rows of ``desc``."""
        if _shape(desc, 'global descriptors')[1] != self.d or \
                tag != self.tag:
            return False
        if (ids is None) != (self.ids_digest is None) or \
                ids_digest(ids, n) != self.ids_digest:
            return False
        return descriptor_fingerprint(desc, n) == self.fingerprint

    @classmethod
    def load(cls,
             index_path: str,
             desc: Descriptors = None,
             ids: Optional[Sequence[str]] = None,
             tag: Optional[str] = None) -> Optional['GlobalIndex']:
        """Read the index saved next to ``index_path`` if it is valid.

        Args:
            index_path (str): the search index file.
            desc (optional): ``[N, D]`` descriptors the saved index must
                hold (checked by count, width and the cheap fingerprint).
            ids (sequence[str], optional): their ids (checked when given).
            tag (str, optional): the tag the index was saved with.

        Returns:
            GlobalIndex | None: None when faiss is missing, nothing is
            saved, the files are unreadable or they do not match.
        """
        index = cls._read(index_path)
        if index is None or desc is None:
            return index
        if _shape(desc, 'global descriptors')[0] != index.n or \
                not index._matches(desc, ids, tag, index.n):
            return None
        return index

    def add(self, desc: Descriptors, start: int) -> None:
        """Append rows ``[start, N)`` of ``desc`` (an index grown by
        appending).

        Args:
            desc: the grown ``[N, D]`` descriptors.
            start (int): rows the index holds now (must be ``len(self)``).

        Raises:
            ValueError: ``start`` is not ``len(self)``, or a torch index.
        """
        if start != self.n or self.kind == 'torch':
            raise ValueError(f'cannot add rows from {start} to a {self.kind} '
                             f'index of {self.n} rows')
        n, _ = _shape(desc, 'global descriptors')
        for _, chunk in iter_chunks(desc, start, n):
            self._faiss.add(chunk)
        self.n = n
        self.fingerprint = descriptor_fingerprint(desc)

    @classmethod
    def load_or_build(cls,
                      index_path: str,
                      desc: Descriptors,
                      kind: str = 'auto',
                      exact_below: int = DEFAULT_EXACT_BELOW,
                      nprobe: Optional[int] = None,
                      save: bool = True,
                      memory_budget: Union[int, str] = DEFAULT_MEMORY_BUDGET,
                      ids: Optional[Sequence[str]] = None,
                      tag: Optional[str] = None,
                      **kwargs) -> 'GlobalIndex':
        """The saved index of ``index_path``, grown or rebuilt as needed.

        The saved index is used as is when it holds exactly ``desc``
        (count, width, cheap fingerprint, ids digest and tag); when it
        holds the first ``n`` rows of ``desc`` and ``len(desc) <= 2 n``,
        the new rows are added to it (and saved); otherwise, or when the
        kind ``kind`` resolves to differs from the saved one, it is
        rebuilt.

        Args:
            index_path (str): the search index file.
            desc: its ``[N, D]`` global descriptors (see :class:`GlobalIndex`).
            kind, exact_below, memory_budget: as :class:`GlobalIndex`.
            nprobe (int, optional): IVF lists per query (None: the saved
                value, else ``ceil(nlist / 8)``).
            save (bool): write a rebuilt or grown index (an unwritable
                folder only warns). Defaults to True.
            ids (sequence[str], optional): the video ids of the rows.
            tag (str, optional): e.g. the model fingerprint.
            **kwargs: other :class:`GlobalIndex` arguments for a rebuild.

        Returns:
            GlobalIndex: the index.
        """
        if isinstance(desc, (Tensor, np.ndarray)) and \
                not isinstance(desc, np.memmap):
            desc = _to_f32(desc, 'global descriptors')
        n, d = _shape(desc, 'global descriptors')
        want = kind if kind != 'auto' else \
            choose_kind(n, d, exact_below, memory_budget)
        if not faiss_available():
            want = 'torch'
        index = cls._read(index_path)
        grown = False
        if index is not None and (index.kind != want or n < index.n
                                  or n > 2 * index.n or
                                  not index._matches(desc, ids, tag, index.n)):
            index = None
        if index is not None and n > index.n:
            start = index.n
            if index.kind == 'ivfpq':
                index._append_vectors(index_path, desc, start)
            index.add(desc, start)
            index.ids_digest = ids_digest(ids, n)
            grown = True
        if index is not None:
            if nprobe is not None:
                index.set_nprobe(nprobe)
            if grown and save:
                index._save_quietly(index_path, desc)
            return index
        index = cls(
            desc,
            kind=want,
            exact_below=exact_below,
            nprobe=nprobe,
            memory_budget=memory_budget,
            ids=ids,
            tag=tag,
            **kwargs)
        if save:
            index._save_quietly(index_path, desc)
        return index

    def _append_vectors(self, index_path: str, desc: Descriptors,
                        start: int) -> None:
        """Append rows from ``start`` on to the float16 file."""
        vpath = self.paths_for(index_path)[0] + '.f16'
        self._vectors = None
        with open(vpath, 'r+b') as f:
            f.truncate(start * self.d * 2)
            f.seek(0, os.SEEK_END)
            for _, chunk in iter_chunks(desc, start):
                f.write(chunk.astype(np.float16).tobytes())
        n = _shape(desc, 'global descriptors')[0]
        self._vectors = np.memmap(vpath, np.float16, 'r', shape=(n, self.d))

    def _save_quietly(self, index_path: str, desc: Descriptors) -> None:
        try:
            self.save(index_path, desc)
        except (OSError, RuntimeError) as err:
            warnings.warn(f'could not save the global index next to '
                          f'{index_path}: {err}')


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top ``k`` that was found.

    Args:
        found (np.ndarray): int ``[Q, >= k]`` rows returned (approximate).
        exact (np.ndarray): int ``[Q, >= k]`` rows of the exact ranking.
        k (int): cut-off.

    Returns:
        float: recall@k in [0, 1] (1.0 for no query).

    Raises:
        ValueError: different numbers of approximate and exact rankings.
    """
    found, exact = np.asarray(found), np.asarray(exact)
    if len(found) != len(exact):
        raise ValueError(f'{len(found)} approximate rankings but '
                         f'{len(exact)} exact ones')
    if not len(exact) or k <= 0:
        return 1.0
    hits = [
        len(set(f[:k].tolist()) & set(e[:k].tolist())) /
        max(1, min(k, len(e))) for f, e in zip(found, exact)
    ]
    return float(np.mean(hits))


def exact_top_k(desc: Descriptors,
                queries: Union[Tensor, np.ndarray],
                k: int,
                chunk: int = CHUNK_ROWS) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` by inner product, streaming ``desc`` in chunks.

    Args:
        desc: ``[N, D]`` descriptors (see :func:`iter_chunks`).
        queries (Tensor | np.ndarray): ``[Q, D]`` queries.
        k (int): rows per query.
        chunk (int): rows read at a time. Defaults to 65,536.

    Returns:
        tuple[np.ndarray, np.ndarray]: float32 ``[Q, k']`` similarities and
        int64 ``[Q, k']`` rows, best first (ties: lower row first),
        ``k' = min(k, N)``.
    """
    q = _to_f32(queries, 'query descriptors')
    best_s = np.zeros((len(q), 0), np.float32)
    best_r = np.zeros((len(q), 0), np.int64)
    for start, block in iter_chunks(desc, size=chunk):
        sim = q @ block.T
        rows = np.broadcast_to(
            np.arange(start, start + len(block), dtype=np.int64), sim.shape)
        best_s = np.concatenate([best_s, sim], axis=1)
        best_r = np.concatenate([best_r, rows], axis=1)
        if best_s.shape[1] > k:
            part = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, part, 1)
            best_r = np.take_along_axis(best_r, part, 1)
    order = np.lexsort((best_r, -best_s), axis=1) if best_s.size else \
        np.zeros(best_s.shape, np.int64)
    return (np.take_along_axis(best_s, order,
                               1), np.take_along_axis(best_r, order, 1))


def global_recall(index: GlobalIndex, desc: Descriptors,
                  queries: Union[Tensor, np.ndarray], k: int) -> float:
    """Recall@k of an index's candidates against the exact global ranking.

    Args:
        index (GlobalIndex): the index to check (built from ``desc``).
        desc: its ``[N, D]`` descriptors (streamed, see :func:`iter_chunks`).
        queries (Tensor | np.ndarray): ``[Q, D]`` query descriptors.
        k (int): cut-off (e.g. the shortlist size).

    Returns:
        float: recall@k in [0, 1].
    """
    _, truth = exact_top_k(desc, queries, k)
    _, found = index.search(queries, k)
    return recall_at_k(found, truth, k)
