"""A vector index of global descriptors for the shortlist stage of search.

:class:`GlobalIndex` answers "which ``K`` indexed videos have the highest
global-descriptor similarity to this query?" with faiss:

* below ``exact_below`` videos (100,000 by default) an exact inner-product
  index (``faiss.IndexFlatIP``): the same candidates as the dense matrix
  product of :func:`~.engine.search`;
* from ``exact_below`` on an approximate inverted-file index
  (``faiss.IndexIVFFlat``, inner product, ``nlist = 4 * sqrt(N)`` lists
  trained by k-means on a sample of at most ``64 * nlist`` descriptors,
  ``nprobe`` lists visited per query, by default ``ceil(nlist / 8)``).

Why IVF and not HNSW: on 50,000 synthetic clustered unit descriptors
(``D = 256``, 500 clusters, 200 queries, 2 CPU threads) recall@1000 against
the exact ranking was 0.962 for IVF (nlist 894, nprobe 128) at 0.53 ms a
query and 1.3 s to build, and 0.962 for HNSW (``IndexHNSWFlat``, M 32,
efConstruction 80, efSearch 2048) at 2.8 ms a query and 4.9 s to build;
the exact flat index took 1.5 ms a query. A shortlist asks for hundreds
to thousands of candidates, where HNSW needs a very large ``efSearch`` and
loses its speed, while IVF's cost grows only with the lists it visits.
Check the recall on your own collection with :func:`global_recall`.

An index is saved next to the search index file (``INDEX.h5.faiss`` with
``faiss.write_index`` and ``INDEX.h5.faiss.json``: ``n``, ``d``, ``kind``,
``nprobe`` and a SHA-1 fingerprint of the descriptors it holds) and loaded
by :meth:`GlobalIndex.load_or_build` when it still matches the index's
descriptors; after the index has grown or changed it is rebuilt.

Without faiss installed (``pip install faiss-cpu``, see
``requirements/optional.txt``) :class:`GlobalIndex` falls back to exact
search with a torch matrix product (``kind='torch'``, nothing saved) and
warns once when an approximate index was wanted.
"""
import hashlib
import json
import math
import os
import os.path as osp
import warnings
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'GlobalIndex', 'descriptor_fingerprint', 'faiss_available', 'recall_at_k',
    'global_recall'
]

SIDECAR_VERSION = 1
DEFAULT_EXACT_BELOW = 100_000
KINDS = ('flat', 'ivf', 'torch')


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


def _as_array(desc: Union[Tensor, np.ndarray], name: str) -> np.ndarray:
    arr = desc.detach().cpu().numpy() if isinstance(desc, Tensor) else \
        np.asarray(desc)
    if arr.ndim != 2:
        raise ValueError(f'{name} must be [N, D], got shape '
                         f'{tuple(arr.shape)}')
    return np.ascontiguousarray(arr, dtype=np.float32)


def descriptor_fingerprint(desc: Union[Tensor, np.ndarray]) -> str:
    """SHA-1 fingerprint of descriptors (shape and float32 values).

    Args:
        desc (Tensor | np.ndarray): ``[N, D]`` descriptors.

    Returns:
        str: 40 hex digits.
    """
    arr = _as_array(desc, 'descriptors')
    sha = hashlib.sha1(f'{arr.shape[0]}x{arr.shape[1]}:'.encode())
    sha.update(memoryview(arr).cast('B'))
    return sha.hexdigest()


class GlobalIndex:
    """Nearest global descriptors by inner product (faiss or torch).

    Args:
        desc (Tensor | np.ndarray): ``[N, D]`` float32 L2-normalised
            descriptors; row ``i`` of the index is row ``i`` here.
        kind (str): ``'auto'`` (exact ``'flat'`` below ``exact_below``
            rows, approximate ``'ivf'`` from there on), ``'flat'``,
            ``'ivf'`` or ``'torch'`` (exact, without faiss). Without faiss
            every kind becomes ``'torch'``. Defaults to ``'auto'``.
        exact_below (int): rows under which ``'auto'`` stays exact.
            Defaults to 100,000.
        nlist (int, optional): IVF lists (default ``4 * sqrt(N)``, at most
            ``N // 39``, at least 1).
        nprobe (int, optional): IVF lists visited per query (default
            ``ceil(nlist / 8)``).
        seed (int): seed of the training sample and k-means. Defaults to 0.

    Raises:
        ValueError: an unknown kind or descriptors that are not ``[N, D]``.
    """

    def __init__(self,
                 desc: Union[Tensor, np.ndarray],
                 kind: str = 'auto',
                 exact_below: int = DEFAULT_EXACT_BELOW,
                 nlist: Optional[int] = None,
                 nprobe: Optional[int] = None,
                 seed: int = 0) -> None:
        arr = _as_array(desc, 'global descriptors')
        if kind not in KINDS + ('auto', ):
            raise ValueError(f'unknown global index kind {kind!r}; use one '
                             f"of {('auto', ) + KINDS}")
        n, d = arr.shape
        if kind == 'auto':
            kind = 'flat' if n < exact_below else 'ivf'
        if kind == 'ivf' and n < 2:
            kind = 'flat'
        faiss = _faiss()
        if faiss is None and kind != 'torch':
            if kind == 'ivf':
                warnings.warn(f'faiss is not installed: searching {n} global '
                              'descriptors exactly with torch instead of an '
                              'approximate index (pip install faiss-cpu)')
            kind = 'torch'
        self.kind = kind
        self.n, self.d = n, d
        self.fingerprint = descriptor_fingerprint(arr)
        self.nprobe = None
        self._torch = None
        self._faiss = None
        if kind == 'torch':
            self._torch = torch.from_numpy(arr)
        elif kind == 'flat':
            self._faiss = faiss.IndexFlatIP(d)
            self._faiss.add(arr)
        else:
            if nlist is None:
                nlist = int(round(4 * math.sqrt(n)))
            nlist = max(1, min(int(nlist), n // 39 or 1))
            rng = np.random.default_rng(seed)
            sample = arr if n <= 64 * nlist else \
                arr[np.sort(rng.choice(n, 64 * nlist, replace=False))]
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist,
                                       faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(sample)
            index.add(arr)
            self._faiss = index
            self.set_nprobe(nprobe)

    @property
    def exact(self) -> bool:
        """Whether searches return the exact ranking."""
        return self.kind in ('flat', 'torch')

    def set_nprobe(self, nprobe: Optional[int]) -> None:
        """Set the IVF lists visited per query (None: ``ceil(nlist / 8)``).

        Args:
            nprobe (int, optional): lists, clipped to ``[1, nlist]``.
        """
        if self.kind != 'ivf':
            return
        nlist = self._faiss.nlist
        if nprobe is None:
            nprobe = math.ceil(nlist / 8)
        self.nprobe = max(1, min(int(nprobe), nlist))
        self._faiss.nprobe = self.nprobe

    def __len__(self) -> int:
        return self.n

    def search(self,
               queries: Union[Tensor, np.ndarray],
               k: int,
               rows: Optional[Sequence[int]] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows by inner product for each query.

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
        q = _as_array(queries, 'query descriptors')
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
        params = None
        if subset is not None:
            sel = faiss.IDSelectorBatch(subset)
            if self.kind == 'ivf':
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)
            else:
                params = faiss.SearchParameters(sel=sel)
        scores, found = self._faiss.search(q, k, params=params)
        scores = np.where(found < 0, -np.inf, scores).astype(np.float32)
        return scores, found.astype(np.int64)

    # saving next to the search index file
    @staticmethod
    def paths_for(index_path: str) -> Tuple[str, str]:
        """The faiss file and JSON sidecar kept next to an index file.

        Args:
            index_path (str): the search index (``.h5``).

        Returns:
            tuple[str, str]: ``INDEX.faiss`` and ``INDEX.faiss.json``.
        """
        return index_path + '.faiss', index_path + '.faiss.json'

    def save(self, index_path: str) -> None:
        """Write the index next to ``index_path`` (nothing for ``torch``).

        Both files are written to temporary names and renamed, the sidecar
        last, so a reader never pairs a new index with an old sidecar.

        Args:
            index_path (str): the search index file it was built from.
        """
        if self.kind == 'torch':
            return
        faiss = _faiss()
        fpath, jpath = self.paths_for(index_path)
        meta = dict(
            version=SIDECAR_VERSION,
            n=self.n,
            d=self.d,
            kind=self.kind,
            nprobe=self.nprobe,
            fingerprint=self.fingerprint)
        if osp.exists(jpath):
            os.remove(jpath)
        faiss.write_index(self._faiss, fpath + '.tmp')
        os.replace(fpath + '.tmp', fpath)
        with open(jpath + '.tmp', 'w') as f:
            json.dump(meta, f, indent=1)
        os.replace(jpath + '.tmp', jpath)

    @classmethod
    def load(cls,
             index_path: str,
             desc: Union[Tensor, np.ndarray, None] = None,
             fingerprint: Optional[str] = None) -> Optional['GlobalIndex']:
        """Read the index saved next to ``index_path`` if it is valid.

        Args:
            index_path (str): the search index file.
            desc (Tensor | np.ndarray, optional): ``[N, D]`` descriptors the
                saved index must hold (checked by count, width and
                fingerprint).
            fingerprint (str, optional): their fingerprint, when known.

        Returns:
            GlobalIndex | None: None when faiss is missing, nothing is
            saved, the files are unreadable or they do not match ``desc``.
        """
        faiss = _faiss()
        fpath, jpath = cls.paths_for(index_path)
        if faiss is None or not (osp.isfile(fpath) and osp.isfile(jpath)):
            return None
        try:
            with open(jpath) as f:
                meta = json.load(f)
            if meta.get('version') != SIDECAR_VERSION or \
                    meta.get('kind') not in ('flat', 'ivf'):
                return None
            if desc is not None:
                arr = _as_array(desc, 'global descriptors')
                if tuple(arr.shape) != (meta['n'], meta['d']):
                    return None
                if fingerprint is None:
                    fingerprint = descriptor_fingerprint(arr)
            if fingerprint is not None and \
                    fingerprint != meta['fingerprint']:
                return None
            index = faiss.read_index(fpath)
        except (OSError, ValueError, KeyError, RuntimeError):
            return None
        if index.ntotal != meta['n'] or index.d != meta['d']:
            return None
        self = cls.__new__(cls)
        self.kind, self.n, self.d = meta['kind'], meta['n'], meta['d']
        self.fingerprint = meta['fingerprint']
        self._torch, self._faiss, self.nprobe = None, index, None
        if self.kind == 'ivf':
            self.set_nprobe(meta.get('nprobe'))
        return self

    @classmethod
    def load_or_build(cls,
                      index_path: str,
                      desc: Union[Tensor, np.ndarray],
                      kind: str = 'auto',
                      exact_below: int = DEFAULT_EXACT_BELOW,
                      nprobe: Optional[int] = None,
                      save: bool = True) -> 'GlobalIndex':
        """The saved index of ``index_path`` if it matches, else a new one.

        A saved index of another kind than ``kind`` asks for (``'auto'``
        resolved by ``exact_below``) is rebuilt too.

        Args:
            index_path (str): the search index file.
            desc (Tensor | np.ndarray): its ``[N, D]`` global descriptors.
            kind, exact_below: as :class:`GlobalIndex`.
            nprobe (int, optional): IVF lists per query (None: the saved
                value, else ``ceil(nlist / 8)``).
            save (bool): write a rebuilt index (an unwritable folder only
                warns). Defaults to True.

        Returns:
            GlobalIndex: the index.
        """
        arr = _as_array(desc, 'global descriptors')
        want = kind if kind != 'auto' else \
            ('flat' if len(arr) < exact_below else 'ivf')
        fp = descriptor_fingerprint(arr)
        index = cls.load(index_path, arr, fp)
        if index is not None and index.kind == want:
            if nprobe is not None:
                index.set_nprobe(nprobe)
            return index
        index = cls(arr, kind=want, exact_below=exact_below, nprobe=nprobe)
        if save:
            try:
                index.save(index_path)
            except (OSError, RuntimeError) as err:
                warnings.warn(f'could not save the global index next to '
                              f'{index_path}: {err}')
        return index


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top ``k`` that was found.

    Args:
        found (np.ndarray): int ``[Q, >= k]`` rows returned (approximate).
        exact (np.ndarray): int ``[Q, >= k]`` rows of the exact ranking.
        k (int): cut-off.

    Returns:
        float: recall@k in [0, 1] (1.0 for no query).
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


def global_recall(index: GlobalIndex, desc: Union[Tensor, np.ndarray],
                  queries: Union[Tensor, np.ndarray], k: int) -> float:
    """Recall@k of an index's candidates against the exact global ranking.

    Args:
        index (GlobalIndex): the index to check (built from ``desc``).
        desc (Tensor | np.ndarray): its ``[N, D]`` descriptors.
        queries (Tensor | np.ndarray): ``[Q, D]`` query descriptors.
        k (int): cut-off (e.g. the shortlist size).

    Returns:
        float: recall@k in [0, 1].
    """
    exact = GlobalIndex(desc, kind='torch')
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    return recall_at_k(found, truth, k)
