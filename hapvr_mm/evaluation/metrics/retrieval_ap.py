"""mmengine metrics of the retrieval loop's scores.

Two forms of data sample are accepted:

* a **per-query piece** ``{'query_id': str, 'target_ids': [n] str,
  'scores': [n] float}`` (a query may come in several pieces);
* a **score-matrix piece** ``{'query_ids': [Q] str, 'target_ids': [T] str,
  'scores': float32 [Q, T]}``, NaN for a pair that was not scored: what
  each rank of :class:`~hapvr_mm.engine.runner.VideoRetrievalTestLoop`
  hands over (one per rank, its database shard as columns), so the gather
  moves one float matrix and one id list per rank instead of an id array
  per query. :func:`merge_score_pieces` joins them on the main rank.
"""
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from mmaction.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.evaluator.metric import DumpResults
from mmengine.fileio import dump
from mmengine.logging import print_log

from ..annotations import RetrievalAnnotation, ScoreMatrix, load_annotation

__all__ = [
    'RetrievalAPMetric', 'DumpRetrievalResults', 'merge_score_pieces',
    'is_matrix_piece', 'matrix_to_query_pieces'
]


def is_matrix_piece(sample: Any) -> bool:
    """Whether a data sample is a score-matrix piece (has ``query_ids``)."""
    if isinstance(sample, Mapping):
        return 'query_ids' in sample
    return hasattr(sample, 'query_ids')


def merge_score_pieces(pieces: Sequence[Mapping[str, Any]]) -> ScoreMatrix:
    """Join score-matrix pieces (e.g. one per rank) into one matrix.

    Queries keep the order of their first appearance, targets too; a pair
    scored by several pieces keeps its first score; pairs never scored are
    NaN. Pieces sharing one query list (the retrieval loop's ranks) are
    joined side by side without any id lookup.

    Args:
        pieces (sequence[dict]): ``query_ids`` ``[Q_i]``, ``target_ids``
            ``[T_i]``, ``scores`` float ``[Q_i, T_i]``.

    Returns:
        ScoreMatrix: query ids ``[Q]``, target ids ``[T]``, scores float32
        ``[Q, T]``.
    """
    parts = []
    for piece in pieces:
        q = np.asarray(piece['query_ids']).astype(str).reshape(-1)
        t = np.asarray(piece['target_ids']).astype(str).reshape(-1)
        v = np.asarray(piece['scores'], dtype=np.float32)
        if v.shape != (q.size, t.size):
            raise ValueError(f'a score-matrix piece needs scores [Q, T] = '
                             f'[{q.size}, {t.size}], got {v.shape}')
        parts.append((q, t, v))
    if not parts:
        return ScoreMatrix([], [], np.zeros((0, 0), np.float32))
    queries = parts[0][0]
    targets = np.concatenate([t for _, t, _ in parts])
    same_rows = all(np.array_equal(q, queries) for q, _, _ in parts)
    if same_rows and np.unique(targets).size == targets.size \
            and np.unique(queries).size == queries.size:
        return ScoreMatrix(queries, targets,
                           np.concatenate([v for _, _, v in parts], axis=1))
    rows: Dict[str, int] = {}
    columns: Dict[str, int] = {}
    placed = []
    for q, t, v in parts:
        r = np.fromiter((rows.setdefault(x, len(rows)) for x in q.tolist()),
                        dtype=np.int64,
                        count=q.size)
        c = np.fromiter(
            (columns.setdefault(x, len(columns)) for x in t.tolist()),
            dtype=np.int64,
            count=t.size)
        placed.append((r, c, v))
    scores = np.full((len(rows), len(columns)), np.nan, dtype=np.float32)
    for r, c, v in reversed(placed):  # first score wins
        # within a piece, the first of repeated ids wins as well
        for i in range(r.size - 1, -1, -1):
            row = v[i]
            keep = ~np.isnan(row)
            scores[r[i], c[keep][::-1]] = row[keep][::-1]
    return ScoreMatrix(list(rows), list(columns), scores)


def matrix_to_query_pieces(matrix: ScoreMatrix) -> List[Dict[str, Any]]:
    """One per-query piece per row of a matrix (its scored pairs).

    Args:
        matrix (ScoreMatrix): the scores.

    Returns:
        list[dict]: ``query_id``, ``target_ids`` ``[n]`` and float32
        ``scores`` ``[n]`` in the matrix's target order; rows without NaN
        share the matrix's target id array.
    """
    return [
        dict(query_id=q, target_ids=ids, scores=values)
        for q, (ids, values) in matrix.items()
    ]


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, 'detach'):  # torch.Tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _field(sample: Any, key: str) -> Any:
    if isinstance(sample, Mapping):
        if key not in sample:
            raise ValueError(f'data sample must have key {key!r}, got keys '
                             f'{sorted(sample)}')
        return sample[key]
    if not hasattr(sample, key):
        raise ValueError(f'data sample must have field {key!r}, got '
                         f'{type(sample).__name__}')
    return getattr(sample, key)


@METRICS.register_module()
class RetrievalAPMetric(BaseMetric):
    """mAP / uAP of a retrieval benchmark (FIVR, EVVE, SVD, CC_WEB, JSON).

    Each data sample holds the scores of one query against some targets:
    ``{'query_id': str, 'target_ids': [n] str, 'scores': [n] float}``, or
    of several queries against the same targets: ``{'query_ids': [Q] str,
    'target_ids': [T] str, 'scores': [Q, T] float}`` (NaN: not scored). A
    query may arrive in several pieces (e.g. one per database shard); the
    pieces are joined in the order of the gathered results (matrix pieces
    by :func:`merge_score_pieces`) and the annotation's :meth:`evaluate`
    computes the metrics.

    The annotation is normally not written here: the benchmark's config
    gives it once, to the dataset, and ``VideoRetrievalTestLoop`` /
    ``VideoRetrievalValLoop`` hand the dataset's loaded annotation to the
    metric (:meth:`set_annotation`) before evaluating, so it is read once
    and a ``--cfg-options`` change of the dataset's ``ann_file`` reaches
    the metric. A metric used without a dataset (e.g.
    ``tools/eval_similarities.py``) takes its own.

    Args:
        annotation (dict | RetrievalAnnotation, optional): Annotation config
            for :func:`~hapvr_mm.evaluation.annotations.load_annotation`,
            e.g. ``dict(type='FIVR', ann_file=..., version='5k')``, or a
            loaded annotation. Defaults to None: set by the retrieval loop
            from its dataset.
        prefix (str, optional): Metric name prefix; defaults to the
            annotation's name (e.g. ``'FIVR-5K'``).
        collect_device (str): Device used to gather results, ``'cpu'`` or
            ``'gpu'``. Defaults to ``'cpu'``.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 annotation: Optional[Union[Dict[str, Any],
                                            RetrievalAnnotation]] = None,
                 prefix: Optional[str] = None,
                 collect_device: str = 'cpu') -> None:
        self.annotation: Optional[RetrievalAnnotation] = (
            None if annotation is None else load_annotation(annotation))
        self._prefix_from_annotation = prefix is None
        if prefix is None:
            prefix = (
                self.annotation.name
                if self.annotation is not None else RetrievalAnnotation.name)
        super().__init__(collect_device=collect_device, prefix=prefix)

    def set_annotation(self, annotation: RetrievalAnnotation) -> None:
        """Use ``annotation`` (the dataset's, already loaded) to evaluate.

        Called by the retrieval loops when the metric was built without an
        annotation; the prefix becomes the annotation's name unless one was
        given.

        Args:
            annotation (RetrievalAnnotation): The loaded annotation.
        """
        if not isinstance(annotation, RetrievalAnnotation):
            raise TypeError(f'set_annotation needs a RetrievalAnnotation, '
                            f'got {type(annotation).__name__}')
        self.annotation = annotation
        if self._prefix_from_annotation:
            self.prefix = annotation.name

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store the score pieces of a batch.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict]): Samples with ``query_id`` (str),
                ``target_ids`` (``[n]`` str) and ``scores`` (``[n]`` float,
                array or tensor).
        """
        for sample in data_samples:
            if is_matrix_piece(sample):
                self.results.append(self._matrix_piece(sample))
                continue
            query = str(_field(sample, 'query_id'))
            ids = np.asarray(_field(sample, 'target_ids'))
            scores = _to_numpy(_field(sample, 'scores'))
            if ids.ndim != 1 or scores.ndim != 1 or ids.shape != scores.shape:
                raise ValueError(f'query {query!r}: target_ids and scores '
                                 f'must be 1-D of equal shape [n], got '
                                 f'{ids.shape} and {scores.shape}')
            if scores.dtype.kind not in 'fiu':
                raise ValueError(f'query {query!r}: scores must be numeric, '
                                 f'got dtype {scores.dtype}')
            self.results.append(
                dict(query_id=query, target_ids=ids, scores=scores))

    @staticmethod
    def _matrix_piece(sample: Any) -> Dict[str, Any]:
        queries = np.asarray(_field(sample, 'query_ids')).astype(str)
        ids = np.asarray(_field(sample, 'target_ids'))
        scores = _to_numpy(_field(sample, 'scores'))
        if queries.ndim != 1 or ids.ndim != 1 or \
                scores.shape != (queries.size, ids.size):
            raise ValueError(f'a score-matrix sample needs query_ids [Q], '
                             f'target_ids [T] and scores [Q, T], got shapes '
                             f'{queries.shape}, {ids.shape} and '
                             f'{scores.shape}')
        if scores.dtype.kind not in 'fiu':
            raise ValueError(f'scores must be numeric, got dtype '
                             f'{scores.dtype}')
        return dict(query_ids=queries, target_ids=ids, scores=scores)

    def compute_metrics(self, results: List[Dict[str,
                                                 Any]]) -> Dict[str, float]:
        """Merge the pieces per query and evaluate.

        Args:
            results (list[dict]): Gathered outputs of :meth:`process`.

        Returns:
            dict[str, float]: The annotation's metrics.
        """
        if self.annotation is None:
            raise ValueError(
                'RetrievalAPMetric has no annotation: give it one '
                '(annotation=dict(type=..., ann_file=...)) or evaluate '
                'through VideoRetrievalTestLoop / VideoRetrievalValLoop, '
                "which hand it the dataset's")
        if any(is_matrix_piece(r) for r in results):
            return self.annotation.evaluate(
                merge_score_pieces([
                    r if is_matrix_piece(r) else dict(
                        query_ids=[r['query_id']],
                        target_ids=r['target_ids'],
                        scores=np.asarray(r['scores'], dtype=np.float32)[None])
                    for r in results
                ]))
        pieces: Dict[str, List[Dict[str, Any]]] = OrderedDict()
        for item in results:
            pieces.setdefault(item['query_id'], []).append(item)
        scores = {}
        for query, parts in pieces.items():
            if len(parts) == 1:
                scores[query] = (parts[0]['target_ids'], parts[0]['scores'])
            else:
                scores[query] = (np.concatenate([
                    np.asarray(p['target_ids']).astype(str) for p in parts
                ]), np.concatenate([p['scores'] for p in parts]))
        return self.annotation.evaluate(scores)


@METRICS.register_module()
class DumpRetrievalResults(DumpResults):
    """mmengine's ``DumpResults`` writing one entry per query.

    Score-matrix pieces (see the module docstring) are joined and dumped as
    the list of per-query pieces ``{'query_id', 'target_ids', 'scores'}``
    (scored pairs only, in the database order); per-query pieces are dumped
    as they are. ``tools/test.py --dump`` uses it.

    Args:
        out_file_path (str): the ``.pkl`` / ``.pickle`` file.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        collect_dir (str, optional): see ``DumpResults``.
    """

    def compute_metrics(self, results: list) -> dict:
        """Dump the per-query predictions.

        Args:
            results (list[dict]): the gathered samples.

        Returns:
            dict: empty (no metric).
        """
        matrices = [r for r in results if is_matrix_piece(r)]
        out = [r for r in results if not is_matrix_piece(r)]
        if matrices:
            out += matrix_to_query_pieces(merge_score_pieces(matrices))
        dump(out, self.out_file_path)
        print_log(
            f'Results has been saved to {self.out_file_path}.',
            logger='current')
        return {}
