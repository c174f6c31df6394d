"""Common abstraction of a retrieval benchmark's annotation.

A :class:`RetrievalAnnotation` knows which videos are queries, which videos
each query must be scored against (``targets``), and how to turn the scores
into the benchmark's metrics (:meth:`RetrievalAnnotation.evaluate`).

``scores`` passed to ``evaluate`` map a query id to a pair
``(target_ids, target_scores)`` of 1-D arrays of equal length that hold only
the targets that were actually scored (missing or corrupt videos are simply
absent). Shared rules, applied by every protocol:

* ids of ``scores`` that are not queries of the annotation are ignored, and
  target ids unknown to the annotation are dropped;
* a query absent from ``scores`` cannot be ranked and is skipped;
* a target listed twice for a query keeps its first occurrence;
* ties are broken by the order of ``target_ids`` (stable sort, see
  :mod:`hapvr_mm.evaluation.functional.average_precision`); pooled (uAP)
  rankings concatenate the queries in the annotation's query order.
"""
import logging
import os.path as osp
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple)

import numpy as np
from mmengine.logging import print_log

from hapvr_mm.utils.safe_io import (PICKLE_EXTENSIONS, UnsafePickleError,
                                    data_format, safe_pickle_load)
from ..functional.average_precision import (average_precision_from_ranks,
                                            check_scores, pooled_ranks,
                                            stable_descending_order)

__all__ = [
    'RetrievalAnnotation', 'ScoresDict', 'ScoreMatrix', 'load_pickle',
    'read_id_list', 'check_file', 'evaluate_restricted', 'warn_nan_metrics',
    'nan_reason'
]

ScoresDict = Mapping[str, Tuple[Sequence[str], Sequence[float]]]


def check_file(path: str, what: str) -> str:
    """Raise ``FileNotFoundError`` naming ``path`` if it does not exist.

    Args:
        path (str): File path.
        what (str): Description used in the message (e.g. ``'FIVR
            annotation'``).

    Returns:
        str: ``path`` unchanged.
    """
    if not isinstance(path, (str, bytes)) and not hasattr(path, '__fspath__'):
        raise ValueError(f'{what} path must be a str, got {type(path)}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {path}')
    return str(path)


def load_pickle(path: str, what: str) -> Any:
    """Load a pickle of plain data, raising ``ValueError`` naming the file.

    The file is read with :func:`~hapvr_mm.utils.safe_io.safe_pickle_load`:
    only containers, numbers, strings and NumPy arrays are built, and a
    pickle asking for any other global is refused before it runs anything.

    Args:
        path (str): Pickle file.
        what (str): Description of the expected content for messages.

    Returns:
        Any: The unpickled object.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unreadable pickle, or one naming a refused global
            (:class:`~hapvr_mm.utils.safe_io.UnsafePickleError`).
    """
    check_file(path, what)
    try:
        return safe_pickle_load(path)
    except UnsafePickleError as err:
        raise UnsafePickleError(f'{err}; expected {what}') from err
    except Exception as err:  # noqa: BLE001 - any unpickling failure
        raise ValueError(f'{path} is not a readable pickle; expected {what} '
                         f'({type(err).__name__}: {err})') from err


def read_id_list(path: str, what: str) -> List[str]:
    """Read ids from a text file (one per line) or a pickled list/set.

    The format is chosen by the extension: ``.pkl`` / ``.pickle`` / ``.pk``
    is a pickle (read without running code, see :func:`load_pickle`),
    anything else a text file. Blank lines are skipped; a text line must
    hold exactly one token.

    Args:
        path (str): Text file or pickle of a list / tuple / set of ids.
        what (str): Description used in messages.

    Returns:
        list[str]: The ids in file order (a pickled set is sorted).
    """
    check_file(path, what)
    if data_format(path) == 'pickle':
        obj = load_pickle(path, what)
        if isinstance(obj, (set, frozenset)):
            obj = sorted(obj)
        if not isinstance(obj, (list, tuple)):
            raise ValueError(f'{path}: expected a pickled list/set of ids '
                             f'for {what}, got {type(obj).__name__}')
        return [str(i) for i in obj]
    ids = []
    try:
        with open(path, 'r', encoding='utf-8') as f:
            for line_no, line in enumerate(f, 1):
                tokens = line.split()
                if not tokens:
                    continue
                if len(tokens) != 1:
                    raise ValueError(f'{path}:{line_no}: expected one id per '
                                     f'line for {what}, got {line.strip()!r}')
                ids.append(tokens[0])
    except UnicodeDecodeError as err:
        raise ValueError(
            f'{path} is not a text file of ids (one per line) for {what}; a '
            f'pickled list must be named {"/".join(PICKLE_EXTENSIONS)}'
        ) from err
    return ids


class ScoreMatrix(Mapping):
    """Scores of ``Q`` queries against the same ``T`` targets, as arrays.

    The compact form of similarities (what ``tools/test.py
    --save-similarities`` writes as ``.npz``). It is a read-only mapping
    query id -> ``(target_ids, scores)`` holding only the scored pairs, so
    every annotation accepts it in place of a dict; an annotation also reads
    it without looking the target ids up once per query.

    Args:
        query_ids (array-like of str): Query ids, shape ``[Q]`` (distinct).
        target_ids (array-like of str): Target ids, shape ``[T]``.
        scores (array-like): float32 ``[Q, T]``; NaN marks a pair that was
            not scored (a skipped video, a target outside the query's list).
    """

    def __init__(self, query_ids: Sequence[str], target_ids: Sequence[str],
                 scores: Any) -> None:
        self.query_ids = np.asarray(query_ids).astype(str)
        self.target_ids = np.asarray(target_ids).astype(str)
        self.scores = np.asarray(scores, dtype=np.float32)
        q, t = self.query_ids.size, self.target_ids.size
        if (self.query_ids.ndim != 1 or self.target_ids.ndim != 1
                or self.scores.shape != (q, t)):
            raise ValueError(f'a score matrix needs query_ids [Q], '
                             f'target_ids [T] and scores [Q, T], got shapes '
                             f'{self.query_ids.shape}, '
                             f'{self.target_ids.shape} and '
                             f'{self.scores.shape}')
        if np.isinf(self.scores).any():
            raise ValueError('scores of a score matrix must be finite or '
                             'NaN (not scored), got inf')
        self.row = {str(vid): i for i, vid in enumerate(self.query_ids)}
        if len(self.row) != q:
            raise ValueError('query_ids of a score matrix must be distinct')

    def __getitem__(self, query: str) -> Tuple[np.ndarray, np.ndarray]:
        row = self.scores[self.row[query]]
        scored = ~np.isnan(row)
        if scored.all():
            return self.target_ids, row
        return self.target_ids[scored], row[scored]

    def __iter__(self) -> Iterator[str]:
        return iter(self.row)

    def __len__(self) -> int:
        return len(self.row)


class _TargetIndexer:
    """Map target id arrays to integer codes, caching the last array.

    Retrieval usually scores every query against the same database in the
    same order, so the (costly) string lookup is done once and reused when
    the next array is the same object or equal.

    Args:
        id_to_code (dict[str, int]): Code of every known id.
    """

    def __init__(self, id_to_code: Dict[str, int]) -> None:
        self.id_to_code = id_to_code
        self._last_ids: Any = None
        self._last: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None

    def _same_as_last(self, ids: Any) -> bool:
        last = self._last_ids
        if last is None:
            return False
        if ids is last:
            return True
        if len(ids) != len(last):
            return False
        if isinstance(ids, np.ndarray) and isinstance(last, np.ndarray):
            return ids.dtype == last.dtype and bool(np.array_equal(ids, last))
        if isinstance(ids, list) and isinstance(last, list):
            return ids == last
        return False

    def __call__(self, ids: Any) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Codes of ``ids`` and the positions to keep.

        Args:
            ids (array-like of str): Target ids, shape ``[n]``.

        Returns:
            tuple: ``codes`` (int64 ``[n]``, -1 for unknown ids) and ``keep``
            (positions of known, first-occurrence ids, int64 ``[m]``; ``None``
            when every position is kept).
        """
        if self._same_as_last(ids):
            return self._last
        get = self.id_to_code.get
        seq = ids.tolist() if isinstance(ids, np.ndarray) else ids
        codes = np.fromiter((get(str(t), -1) for t in seq),
                            dtype=np.int64,
                            count=len(seq))
        known = codes >= 0
        keep = None
        if not known.all():
            keep = np.flatnonzero(known)
        kept_codes = codes if keep is None else codes[keep]
        if kept_codes.size and np.bincount(kept_codes).max() > 1:
            _, first = np.unique(kept_codes, return_index=True)
            first.sort()
            keep = first if keep is None else keep[first]
        self._last_ids = ids
        self._last = (codes, keep)
        return self._last


class RetrievalAnnotation:
    """Base class of a retrieval benchmark's annotation.

    Subclasses fill ``name``, ``queries``, ``database`` and ``targets`` and
    implement :meth:`evaluate`.

    Attributes:
        name (str): Benchmark name (e.g. ``'FIVR-5K'``).
        queries (list[str]): Query ids, in evaluation order.
        database (list[str]): Database ids.
        targets (list[str]): Ids every query must be scored against (the
            database; SVD restricts each query further, see
            :meth:`targets_of`).
        all_ids (list[str]): ``queries`` followed by the targets that are not
            queries: every video a dataset must load.
    """

    name: str = 'retrieval'

    def __init__(self,
                 name: str,
                 queries: Sequence[str],
                 database: Sequence[str],
                 targets: Optional[Sequence[str]] = None) -> None:
        self.name = name
        self.queries = _unique_str(queries, 'queries')
        self.database = _unique_str(database, 'database')
        self.targets = (
            list(self.database) if targets is None else _unique_str(
                targets, 'targets'))
        query_set = set(self.queries)
        self.all_ids = self.queries + [
            t for t in self.targets if t not in query_set
        ]
        self.id_to_code = {vid: i for i, vid in enumerate(self.all_ids)}
        self._indexer = _TargetIndexer(self.id_to_code)

    def __deepcopy__(self, memo: dict) -> 'RetrievalAnnotation':
        """An annotation is read-only once loaded: copies share it.

        Configs holding a loaded annotation (the retrieval loops put it in
        both splits' dataset configs) are deep-copied by mmengine; sharing
        the object keeps it loaded, and held in memory, once.
        """
        return self

    def targets_of(self, query: str) -> List[str]:
        """Ids that ``query`` must be scored against.

        Args:
            query (str): A query id.

        Returns:
            list[str]: Defaults to :attr:`targets` for every query.
        """
        return self.targets

    def code(self, vid: str) -> int:
        """Integer code of an id in :attr:`all_ids` (-1 when unknown)."""
        return self.id_to_code.get(str(vid), -1)

    def codes(self, ids: Iterable[str]) -> np.ndarray:
        """Codes of the known ids among ``ids`` (unknown ids dropped).

        Args:
            ids (Iterable[str]): Ids.

        Returns:
            np.ndarray: int64 codes, shape ``[m]``.
        """
        out = [self.id_to_code.get(str(i), -1) for i in ids]
        arr = np.asarray(out, dtype=np.int64)
        return arr[arr >= 0]

    def prepared_scores(self, scores: ScoresDict
                        ) -> Iterator[Tuple[int, str, np.ndarray, np.ndarray]]:
        """Validate ``scores`` and yield them per query as codes.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Yields:
            tuple: ``(query_index, query_id, codes, values)`` in annotation
            order for the queries present in ``scores``; ``codes`` (int64
            ``[m]``) and ``values`` (float ``[m]``) hold the known targets,
            first occurrences only, in the order given.
        """
        if not isinstance(scores, Mapping):
            raise ValueError(f'scores must be a dict query id -> (target_ids,'
                             f' scores), got {type(scores).__name__}')
        if isinstance(scores, ScoreMatrix):
            yield from self._prepared_matrix(scores)
            return
        for qi, query in enumerate(self.queries):
            if query not in scores:
                continue
            codes, values = self._prepare_one(query, scores[query])
            yield qi, query, codes, values

    def _prepared_matrix(
        self, matrix: ScoreMatrix
    ) -> Iterator[Tuple[int, str, np.ndarray, np.ndarray]]:
        """:meth:`prepared_scores` of a matrix: ids looked up once."""
        codes, keep = self._indexer(matrix.target_ids)
        if keep is not None:
            codes = codes[keep]
        for qi, query in enumerate(self.queries):
            if query not in matrix.row:
                continue
            values = matrix.scores[matrix.row[query]]
            if keep is not None:
                values = values[keep]
            scored = ~np.isnan(values)
            if scored.all():
                yield qi, query, codes, values
            else:
                yield qi, query, codes[scored], values[scored]

    def _prepare_one(self, query: str,
                     item: Any) -> Tuple[np.ndarray, np.ndarray]:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f'scores[{query!r}] must be a pair (target_ids, '
                             f'scores), got {type(item).__name__}')
        ids, values = item
        if isinstance(ids, np.ndarray) and ids.ndim != 1:
            raise ValueError(f'target_ids of query {query!r} must be 1-D, got '
                             f'shape {ids.shape}')
        values = check_scores(values, f'scores of query {query!r}')
        if len(ids) != values.shape[0]:
            raise ValueError(f'query {query!r}: target_ids has {len(ids)} '
                             f'entries but scores has shape {values.shape}')
        codes, keep = self._indexer(ids)
        if keep is not None:
            codes, values = codes[keep], values[keep]
        return codes, values

    def evaluate(self, scores: ScoresDict) -> Dict[str, float]:
        """Compute the benchmark's metrics.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Returns:
            dict[str, float]: Metric name -> value.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self.name!r}, '
                f'queries={len(self.queries)}, targets={len(self.targets)})')


def _unique_str(ids: Sequence[Any], what: str) -> List[str]:
    """Ids as str in first-occurrence order (duplicates dropped)."""
    if isinstance(ids, (str, bytes)):
        raise ValueError(f'{what} must be a sequence of ids, got a string')
    seen = dict.fromkeys(str(i) for i in ids)
    return list(seen)


def warn_nan_metrics(name: str, metrics: Mapping[str, float],
                     reasons: Mapping[str, str]) -> None:
    """Log a warning for every metric that is NaN, with its reason.

    Args:
        name (str): Benchmark name, used as the metrics' prefix.
        metrics (dict[str, float]): The metrics.
        reasons (dict[str, str]): Reason of a NaN, by metric name; a NaN
            metric without an entry is reported with a generic reason.
    """
    for key, value in metrics.items():
        if isinstance(value, float) and np.isnan(value):
            reason = reasons.get(key, 'no query could be evaluated')
            print_log(
                f'{name}/{key} is NaN: {reason}',
                logger='current',
                level=logging.WARNING)


def nan_reason(n_scored: int, n_queries: int, n_pairs: int,
               n_evaluated: int) -> str:
    """Why a mean AP over queries (or a pooled AP) has no value.

    Args:
        n_scored (int): Queries of the annotation present in the scores.
        n_queries (int): Queries of the annotation.
        n_pairs (int): (query, target) pairs left in the ranked lists.
        n_evaluated (int): Queries with at least one relevant item.

    Returns:
        str: The reason (empty when the metric has a value).
    """
    if n_scored == 0:
        return (f'no query could be evaluated (none of the {n_queries} '
                'queries has scores)')
    if n_pairs == 0:
        return (f'empty database (no scored target of the {n_scored} '
                'scored queries is a database video)')
    if n_evaluated == 0:
        return (f'no positive for any query (none of the {n_scored} scored '
                'queries has a relevant video among its scored targets)')
    return ''


def evaluate_restricted(
    annotation: RetrievalAnnotation,
    scores: ScoresDict,
    relevance: Mapping[str, Tuple[np.ndarray, np.ndarray]],
    database_mask: np.ndarray,
    tasks: Mapping[str, int],
    detection_tasks: Optional[Mapping[str, int]] = None,
    excluded_mask: Optional[np.ndarray] = None,
    hard_suffix: str = '_hard',
) -> Dict[str, float]:
    """Step-wise mAP / uAP with relevance restricted to the scored database.

    The protocol of FIVR (and of our JSON format): for each query, the ranked
    list holds the scored targets that are database videos, minus the query
    itself, in stable descending order of score; a task with level ``L``
    counts as relevant the annotated ids of level ``1..L``; the relevant set
    (hence ``G``) is restricted to the ranked list. A query with an empty
    relevant set is skipped for mAP; uAP pools every (query, target) pair of
    the ranked lists of all scored queries (in annotation order), including
    queries without relevant items. A NaN metric is logged with its reason.

    Args:
        annotation (RetrievalAnnotation): Gives queries and id codes.
        scores (dict): query id -> ``(target_ids, scores)``.
        relevance (dict): query id -> ``(codes, levels)``: int64 ``[r]``
            codes of annotated ids and their level (``>= 1``, lower = more
            relevant).
        database_mask (np.ndarray): bool ``[len(all_ids)]``, True for
            database videos.
        tasks (dict[str, int]): mAP metric name -> maximal level.
        detection_tasks (dict[str, int], optional): uAP metric name ->
            maximal level.
        excluded_mask (np.ndarray, optional): bool ``[len(all_ids)]``; when
            given, every metric is also computed with these videos removed
            from the database, named ``<metric><hard_suffix>``.
        hard_suffix (str): Suffix of the excluded variant. Defaults to
            ``'_hard'``.

    Returns:
        dict[str, float]: Metrics (NaN when no query could be evaluated).
    """
    detection_tasks = detection_tasks or {}
    variants = [('', None)]
    if excluded_mask is not None:
        variants.append((hard_suffix, excluded_mask))
    scratch = np.zeros(len(annotation.all_ids), dtype=np.int16)
    # per variant: sorted scores, relevant ranks and their levels per query
    ranked: List[Tuple[List[np.ndarray], List[np.ndarray],
                       List[np.ndarray]]] = [([], [], []) for _ in variants]
    n_scored = 0
    for _, query, codes, values in annotation.prepared_scores(scores):
        n_scored += 1
        keep = database_mask[codes] & (codes != annotation.code(query))
        codes, values = codes[keep], values[keep]
        rel_codes, rel_levels = relevance.get(query, (np.zeros(
            0, np.int64), np.zeros(0, np.int16)))
        scratch[rel_codes] = rel_levels
        levels = scratch[codes]
        scratch[rel_codes] = 0
        order = stable_descending_order(values)
        for (_, removed), (lists, ranks, lvls) in zip(variants, ranked):
            kept = order if removed is None else order[~removed[codes[order]]]
            sorted_levels = levels[kept]
            relevant = np.flatnonzero(sorted_levels)
            lists.append(values[kept])
            ranks.append(relevant + 1)
            lvls.append(sorted_levels[relevant])
    metrics: Dict[str, float] = {}
    reasons: Dict[str, str] = {}
    n_queries = len(annotation.queries)
    for (suffix, _), (lists, ranks, lvls) in zip(variants, ranked):
        n_pairs = sum(v.size for v in lists)
        for name, level in tasks.items():
            aps = []
            for r, lv in zip(ranks, lvls):
                r = r[lv <= level]
                if r.size:
                    aps.append(average_precision_from_ranks(r, r.size))
            metrics[name + suffix] = (
                float(np.mean(aps)) if aps else float('nan'))
            reasons[name + suffix] = nan_reason(n_scored, n_queries, n_pairs,
                                                len(aps))
        if not detection_tasks:
            continue
        pooled = pooled_ranks(lists, ranks)
        for name, level in detection_tasks.items():
            sel = [p[lv <= level] for p, lv in zip(pooled, lvls)]
            r = np.concatenate(sel) if sel else np.zeros(0)
            metrics[name + suffix] = average_precision_from_ranks(r, r.size)
            reasons[name +
                    suffix] = nan_reason(n_scored, n_queries, n_pairs,
                                         sum(int(s.size > 0) for s in sel))
    warn_nan_metrics(annotation.name, metrics, reasons)
    return metrics
