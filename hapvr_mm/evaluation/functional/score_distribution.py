"""Score distributions of relevant and irrelevant (query, target) pairs.

:func:`split_pair_scores` sorts the scored pairs of a retrieval annotation
into relevant and irrelevant ones the way the annotation's protocol ranks
them (its database, its positives, the query itself left out), and
:func:`separation_summary` measures how far apart the two score
distributions are: counts, means and standard deviations, the margin
between the means, the overlap of the two normalised histograms, the
fraction of irrelevant scores above the median relevant score, the ROC
AUC (the probability that a relevant pair outscores an irrelevant one) and
the margin in units of the two spreads (d').

The statistics are pure NumPy; :func:`split_pair_scores` reads the
annotation objects of :mod:`hapvr_mm.evaluation.annotations`.
"""
import math
from typing import (Any, Dict, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np

__all__ = [
    'PairScores', 'split_pair_scores', 'distribution_tasks', 'check_score_ids',
    'histogram_edges', 'histogram_overlap', 'separation_summary'
]

#: CC_WEB_VIDEO variants: (count every video, drop the excluded ones).
_CC_WEB_VARIANTS = {
    'mAP': (False, False),
    'mAP*': (True, False),
    'mAP_clean': (False, True),
    'mAP*_clean': (True, True),
}


class PairScores(NamedTuple):
    """Scores of the relevant and irrelevant pairs of an annotation.

    Attributes:
        relevant (np.ndarray): float64 ``[R]`` scores of relevant pairs.
        irrelevant (np.ndarray): float64 ``[I]`` scores of irrelevant pairs.
        num_queries (int): Queries of the annotation whose pairs were used.
        task (str): The protocol variant the pairs follow (e.g.
            ``'DSVR'``), ``''`` for a single-variant annotation.
    """

    relevant: np.ndarray
    irrelevant: np.ndarray
    num_queries: int
    task: str


def distribution_tasks(annotation: Any) -> List[str]:
    """Protocol variants :func:`split_pair_scores` accepts, default first.

    Args:
        annotation (RetrievalAnnotation): The annotation.

    Returns:
        list[str]: FIVR: its retrieval tasks ``DSVR``, ``CSVR``, ``ISVR``
        (plus ``<task>_hard`` with easy duplicates); CC_WEB_VIDEO:
        ``mAP``, ``mAP*``, ``mAP_clean``, ``mAP*_clean``; ``['']`` for the
        others.
    """
    from ..annotations import CCWebAnnotation, FIVRAnnotation
    from ..annotations.fivr import FIVR_TASKS
    if isinstance(annotation, FIVRAnnotation):
        tasks = [k for k, (kind, _) in FIVR_TASKS.items() if kind == 'mAP']
        if annotation.easy_mask is not None:
            tasks += [f'{t}_hard' for t in tasks]
        return tasks
    if isinstance(annotation, CCWebAnnotation):
        return list(_CC_WEB_VARIANTS)
    return ['']


def check_score_ids(annotation: Any,
                    scores: Mapping[str, Any],
                    source: str = 'scores') -> List[str]:
    """Check that scores belong to an annotation.

    Args:
        annotation (RetrievalAnnotation): The annotation.
        scores (ScoreMatrix | dict): query id -> ``(target_ids, scores)``.
        source (str): Name of the scores in messages (e.g. the file).

    Returns:
        list[str]: Ids of ``scores`` (queries, then targets) unknown to the
        annotation; empty when all are known.

    Raises:
        ValueError: No query of ``scores`` is a query of the annotation, or
            no scored target is one of its videos.
    """
    from ..annotations import ScoreMatrix
    queries = set(annotation.queries)
    query_ids = [str(q) for q in scores]
    if isinstance(scores, ScoreMatrix):
        target_ids = scores.target_ids.tolist()
    else:
        target_ids = list(
            dict.fromkeys(
                str(t) for ids, _ in scores.values()
                for t in np.asarray(ids).tolist()))
    bad_queries = [q for q in query_ids if q not in queries]
    if len(bad_queries) == len(query_ids):
        raise ValueError(
            f'{source}: none of its {len(query_ids)} query ids is a query of'
            f' the {annotation.name} annotation (e.g. {bad_queries[:3]}; '
            f'annotation queries e.g. {annotation.queries[:3]}): wrong '
            'annotation or wrong similarities file?')
    known = annotation.id_to_code
    bad_targets = [t for t in target_ids if t not in known]
    if target_ids and len(bad_targets) == len(target_ids):
        raise ValueError(
            f'{source}: none of its {len(target_ids)} target ids is a video'
            f' of the {annotation.name} annotation (e.g. {bad_targets[:3]})')
    seen = set(bad_queries)
    return bad_queries + [t for t in bad_targets if t not in seen]


def _empty() -> Tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int16)


def _split_leveled(annotation: Any, scores: Mapping, level: int,
                   excluded: Optional[np.ndarray]):
    """FIVR / JSON: database videos, relevant up to ``level``."""
    scratch = np.zeros(len(annotation.all_ids), dtype=np.int16)
    for _, query, codes, values in annotation.prepared_scores(scores):
        keep = annotation.database_mask[codes] & (
            codes != annotation.code(query))
        if excluded is not None:
            keep &= ~excluded[codes]
        codes, values = codes[keep], values[keep]
        rel_codes, rel_levels = annotation.relevance.get(query, _empty())
        scratch[rel_codes] = rel_levels
        levels = scratch[codes]
        scratch[rel_codes] = 0
        yield values, (levels > 0) & (levels <= level)


def _split_evve(annotation: Any, scores: Mapping):
    """EVVE: database videos; queries without positives are skipped."""
    for _, query, codes, values in annotation.prepared_scores(scores):
        positives = annotation.positives[annotation.query_event[query]]
        positives = positives - {query}
        if not positives:
            continue
        keep = annotation.targets_mask[codes] & (
            codes != annotation.code(query))
        codes, values = codes[keep], values[keep]
        yield values, np.isin(codes, annotation.codes(positives))


def _split_svd(annotation: Any, scores: Mapping):
    """SVD: labeled candidates and distractors, label 1 relevant."""
    scratch = np.zeros(len(annotation.all_ids), dtype=np.int8)
    for _, query, codes, values in annotation.prepared_scores(scores):
        cands = annotation.labels[query]
        cand_codes = annotation.codes(cands)
        scratch[cand_codes] = np.fromiter(cands.values(), np.int8,
                                          len(cands)) + 1
        labels = scratch[codes]
        scratch[cand_codes] = 0
        keep = ((labels > 0) | annotation.distractor_mask[codes]) & (
            codes != annotation.code(query))
        yield values[keep], labels[keep] == 2


def _split_cc_web(annotation: Any, scores: Mapping, task: str):
    """CC_WEB_VIDEO: the videos a variant counts, per query set."""
    count_all, clean = _CC_WEB_VARIANTS[task]
    prepared = {
        query: (codes, values)
        for _, query, codes, values in annotation.prepared_scores(scores)
    }
    for s, query in enumerate(annotation.set_queries):
        if query not in prepared or annotation._n_positives[s][int(clean)] \
                == 0:
            continue
        codes, values = prepared[query]
        labeled, positive, excluded = (f[codes] for f in annotation._flags[s])
        counted = np.ones_like(labeled) if count_all else labeled.copy()
        if clean:
            counted &= ~excluded
        counted &= codes != annotation.code(query)
        yield values[counted], positive[counted]


def split_pair_scores(annotation: Any,
                      scores: Mapping[str, Any],
                      task: Optional[str] = None) -> PairScores:
    """Split the scored pairs of an annotation into relevant / irrelevant.

    The pairs are those the annotation's protocol ranks, with the query
    itself left out; pairs that were not scored are absent. Per benchmark:

    * **JSON, FIVR**: the scored database videos; relevant are the
      annotated ids of the task's labels (FIVR ``DSVR``: ND, DS; ``CSVR``:
      + CS; ``ISVR``: + IS), every other database video is irrelevant (as
      in the task's ranking); ``<task>_hard`` also drops the easy
      duplicates.
    * **EVVE**: the scored database videos; relevant are the positives of
      the query's event; queries without a positive are skipped (as in the
      protocol); nulls are irrelevant.
    * **SVD**: the query's scored labeled candidates and distractors;
      label 1 is relevant.
    * **CC_WEB_VIDEO**: per query set, the scored videos the variant counts
      (``mAP``: labeled ones; ``mAP*``: all; ``_clean``: minus the
      excluded); relevant are the positive labels (``positive_labels``).

    Args:
        annotation (RetrievalAnnotation): The annotation.
        scores (ScoreMatrix | dict): query id -> ``(target_ids [n],
            scores [n])``, e.g. a similarities file read by
            :func:`hapvr_mm.engine.runner.read_scores`.
        task (str, optional): Protocol variant, one of
            :func:`distribution_tasks`; defaults to its first.

    Returns:
        PairScores: relevant float64 ``[R]`` and irrelevant ``[I]`` scores,
        in the annotation's query order.
    """
    from ..annotations import (CCWebAnnotation, EVVEAnnotation, FIVRAnnotation,
                               SVDAnnotation)
    from ..annotations.fivr import FIVR_TASKS
    tasks = distribution_tasks(annotation)
    task = tasks[0] if task is None else str(task)
    if task not in tasks:
        raise ValueError(f'{annotation.name}: unknown task {task!r}; '
                         f'expected one of {tasks}')
    if isinstance(annotation, FIVRAnnotation):
        name, hard = (task[:-5], True) if task.endswith('_hard') else (task,
                                                                       False)
        parts = _split_leveled(annotation, scores, FIVR_TASKS[name][1],
                               annotation.easy_mask if hard else None)
    elif isinstance(annotation, EVVEAnnotation):
        parts = _split_evve(annotation, scores)
    elif isinstance(annotation, SVDAnnotation):
        parts = _split_svd(annotation, scores)
    elif isinstance(annotation, CCWebAnnotation):
        parts = _split_cc_web(annotation, scores, task)
    elif isinstance(getattr(annotation, 'relevance', None),
                    Mapping) and hasattr(annotation, 'database_mask'):
        # JSON and any annotation following the same protocol
        parts = _split_leveled(annotation, scores,
                               np.iinfo(np.int16).max, None)
    else:
        raise ValueError(f'{type(annotation).__name__}: no relevant-pair '
                         'rule; expected a JSON, FIVR, EVVE, SVD or '
                         'CC_WEB_VIDEO annotation')
    relevant, irrelevant, n = [], [], 0
    for values, is_relevant in parts:
        values = np.asarray(values, dtype=np.float64)
        relevant.append(values[is_relevant])
        irrelevant.append(values[~is_relevant])
        n += 1
    return PairScores(
        np.concatenate(relevant) if relevant else np.zeros(0),
        np.concatenate(irrelevant) if irrelevant else np.zeros(0), n, task)


def histogram_edges(*samples: Sequence[float],
                    bins: int = 50,
                    value_range: Optional[Tuple[float,
                                                float]] = None) -> np.ndarray:
    """Shared, equally wide histogram bins of several samples.

    Args:
        *samples (array-like): 1-D samples.
        bins (int): Number of bins. Defaults to 50.
        value_range (tuple[float, float], optional): ``(low, high)``;
            defaults to the smallest and largest value of all samples.

    Returns:
        np.ndarray: float64 ``[bins + 1]`` edges.
    """
    if int(bins) < 1:
        raise ValueError(f'bins must be >= 1, got {bins}')
    values = np.concatenate(
        [np.asarray(s, dtype=np.float64).ravel() for s in samples]
        or [np.zeros(0)])
    if value_range is None and values.size == 0:
        raise ValueError('histogram edges of empty samples need a '
                         'value_range')
    return np.histogram_bin_edges(values, bins=int(bins), range=value_range)


def histogram_overlap(a: Sequence[float], b: Sequence[float],
                      edges: Sequence[float]) -> float:
    """Overlap area of two normalised histograms on shared bins.

    ``sum_k min(p_k, q_k) / w_k * w_k`` with ``p_k``, ``q_k`` the fractions
    of ``a`` and ``b`` in bin ``k`` of width ``w_k``: 1 for identical
    histograms, 0 when no bin holds values of both. Values outside the
    edges count in the sizes but in no bin.

    Args:
        a (array-like): ``[n]`` values.
        b (array-like): ``[m]`` values.
        edges (array-like): ``[bins + 1]`` increasing bin edges.

    Returns:
        float: The overlap in [0, 1].
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError(f'histogram overlap needs two non-empty samples, '
                         f'got sizes {a.size} and {b.size}')
    edges = np.asarray(edges, dtype=np.float64)
    widths = np.diff(edges)
    density_a = np.histogram(a, bins=edges)[0] / (a.size * widths)
    density_b = np.histogram(b, bins=edges)[0] / (b.size * widths)
    return float(np.sum(np.minimum(density_a, density_b) * widths))


def _auc(relevant: np.ndarray, irrelevant: np.ndarray) -> float:
    """P(relevant > irrelevant) + P(tie) / 2 over all pairs of the two."""
    ordered = np.sort(irrelevant)
    below = np.searchsorted(ordered, relevant, 'left')
    ties = np.searchsorted(ordered, relevant, 'right') - below
    return float(
        (below.sum() + 0.5 * ties.sum()) / (relevant.size * ordered.size))


def separation_summary(relevant: Sequence[float],
                       irrelevant: Sequence[float],
                       bins: Union[int, Sequence[float]] = 50,
                       value_range: Optional[Tuple[float, float]] = None
                       ) -> Dict[str, float]:
    """How well scores separate relevant from irrelevant pairs.

    Args:
        relevant (array-like): ``[R]`` scores of relevant pairs.
        irrelevant (array-like): ``[I]`` scores of irrelevant pairs.
        bins (int | array-like): Number of shared bins over both samples
            (see :func:`histogram_edges`) or the ``[bins + 1]`` edges.
            Defaults to 50.
        value_range (tuple[float, float], optional): Range of the bins when
            ``bins`` is a number. Defaults to the range of the values.

    Returns:
        dict[str, float]: ``num_relevant``, ``num_irrelevant`` (int),
        ``mean_relevant``, ``std_relevant``, ``mean_irrelevant``,
        ``std_irrelevant`` (population std), ``margin`` (mean relevant -
        mean irrelevant), ``overlap`` (:func:`histogram_overlap`),
        ``median_relevant``, ``irrelevant_above_median`` (fraction of
        irrelevant scores strictly above the median relevant score) and
        ``auc`` (probability that a relevant pair scores above an
        irrelevant one, ties counted half), ``d_prime`` (margin over the
        root mean square of the two stds; NaN when both are 0).
    """
    rel = np.asarray(relevant, dtype=np.float64).ravel()
    irr = np.asarray(irrelevant, dtype=np.float64).ravel()
    for name, values in (('relevant', rel), ('irrelevant', irr)):
        if values.size == 0:
            raise ValueError(f'no {name} pair: the separation needs scores '
                             'of both relevant and irrelevant pairs')
        if not np.isfinite(values).all():
            raise ValueError(f'{name} scores must be finite, got '
                             f'{int((~np.isfinite(values)).sum())} '
                             'NaN / inf')
    if np.ndim(bins) == 0:
        edges = histogram_edges(rel, irr, bins=bins, value_range=value_range)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    median = float(np.median(rel))
    spread = math.sqrt((rel.var() + irr.var()) / 2)
    return {
        'num_relevant':
        int(rel.size),
        'num_irrelevant':
        int(irr.size),
        'mean_relevant':
        float(rel.mean()),
        'std_relevant':
        float(rel.std()),
        'mean_irrelevant':
        float(irr.mean()),
        'std_irrelevant':
        float(irr.std()),
        'margin':
        float(rel.mean() - irr.mean()),
        'overlap':
        histogram_overlap(rel, irr, edges),
        'median_relevant':
        median,
        'irrelevant_above_median':
        float(np.mean(irr > median)),
        'auc':
        _auc(rel, irr),
        'd_prime': (float(rel.mean() - irr.mean()) /
                    spread if spread > 0 else float('nan')),
    }
