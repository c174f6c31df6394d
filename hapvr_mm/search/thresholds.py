"""Choose a score threshold from a labelled set: precision, recall, F1.

A threshold ``s`` calls every (query, target) pair scoring ``>= s`` a
near-duplicate. Over all scored pairs of an annotation (the query itself
excluded) this module counts, for each candidate threshold, the true and
false positives and reports precision, recall and F1.
"""
import json
from typing import Dict, List, Mapping, Optional, Sequence, Set

import numpy as np

__all__ = [
    'annotation_positives', 'read_scores', 'pair_labels', 'threshold_table',
    'best_f1'
]


def annotation_positives(annotation,
                         max_level: Optional[int] = None) -> Dict[str, Set]:
    """Positive target ids per query of a retrieval annotation.

    Args:
        annotation (RetrievalAnnotation): annotations with ``relevance``
            (query -> ``(codes, levels)``: JSON, FIVR) or ``positives``.
        max_level (int, optional): with levels (FIVR: 1 = ND, 2 = DS,
            3 = CS, 4 = IS), only levels ``<= max_level`` count. Defaults
            to all levels.

    Returns:
        dict[str, set[str]]: query -> positive ids.

    Raises:
        ValueError: the annotation exposes neither.
    """
    relevance = getattr(annotation, 'relevance', None)
    if isinstance(relevance, Mapping):
        out = {}
        for query, (codes, levels) in relevance.items():
            keep = np.ones(len(codes), bool) if max_level is None else \
                np.asarray(levels) <= max_level
            out[query] = {
                annotation.all_ids[c]
                for c in np.asarray(codes)[keep]
            }
        return out
    positives = getattr(annotation, 'positives', None)
    if isinstance(positives, Mapping):
        return {q: set(map(str, v)) for q, v in positives.items()}
    raise ValueError(f'{type(annotation).__name__} exposes no per-query '
                     'relevance; use a JSON or FIVR annotation')


def read_scores(path: str) -> Dict[str, Dict[str, float]]:
    """Read scores: ``tools/test.py --save-similarities`` output
    (``{query: {target: score}}``) or ``tools/search.py`` JSON (a list of
    ``{"query": ..., "results": [{"id", "score"}, ...]}``); the compact
    ``.npz`` and pickle forms of ``tools/test.py`` are read by
    :func:`hapvr_mm.engine.runner.similarity_io.load_similarities`."""
    if not path.endswith('.json'):
        from hapvr_mm.engine.runner.similarity_io import load_similarities
        return load_similarities(path)
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    if isinstance(data, dict) and 'queries' in data:
        data = data['queries']
    if isinstance(data, list):
        out = {}
        for item in data:
            if not isinstance(item, dict) or 'query' not in item:
                raise ValueError(f'{path}: expected search results with '
                                 '"query" and "results"')
            out[str(item['query'])] = {
                str(r['id']): float(r['score'])
                for r in item.get('results', []) if r.get('score') is not None
            }
        return out
    if isinstance(data, dict) and all(
            isinstance(v, dict) for v in data.values()):
        return {
            str(q): {
                str(t): float(s)
                for t, s in v.items()
            }
            for q, v in data.items()
        }
    raise ValueError(f'{path}: expected {{query: {{target: score}}}} or the '
                     'JSON of tools/search.py')


def pair_labels(scores: Mapping[str, Mapping[str, float]],
                positives: Mapping[str, Set[str]],
                queries: Optional[Sequence[str]] = None,
                targets: Optional[Set[str]] = None) -> tuple:
    """Flatten scores into ``(score, is positive)`` pairs.

    Args:
        scores (dict): query -> {target: score}.
        positives (dict): query -> positive ids.
        queries (sequence[str], optional): queries to use (default: those
            of ``scores``).
        targets (set[str], optional): keep only these targets (e.g. the
            database).

    Returns:
        tuple: float64 ``[P]`` scores, bool ``[P]`` labels and the number of
        annotated positives of these queries (within ``targets``), so that
        positives never scored count as misses.
    """
    values, labels, total = [], [], 0
    for query in (queries if queries is not None else scores):
        pos = set(positives.get(query, ())) - {query}
        if targets is not None:
            pos &= targets
        total += len(pos)
        for target, score in scores.get(query, {}).items():
            if target == query or (targets is not None
                                   and target not in targets):
                continue
            values.append(float(score))
            labels.append(target in pos)
    return np.asarray(values), np.asarray(labels, bool), total


def threshold_table(values: np.ndarray,
                    labels: np.ndarray,
                    num_positives: Optional[int] = None,
                    thresholds: Optional[Sequence[float]] = None) -> List:
    """Precision, recall and F1 of ``score >= threshold`` decisions.

    Args:
        values (np.ndarray): ``[P]`` scores.
        labels (np.ndarray): bool ``[P]``.
        num_positives (int, optional): annotated positives (recall's
            denominator). Defaults to ``labels.sum()``.
        thresholds (sequence[float], optional): defaults to -1.0, -0.9,
            ..., 1.0.

    Returns:
        list[dict]: per threshold ``threshold``, ``tp``, ``fp``, ``fn``,
        ``precision`` (NaN with no prediction), ``recall``, ``f1``.
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if values.shape != labels.shape:
        raise ValueError(f'scores {values.shape} and labels {labels.shape} '
                         'differ')
    npos = int(labels.sum()) if num_positives is None else int(num_positives)
    if thresholds is None:
        thresholds = np.round(np.linspace(-1, 1, 21), 2)
    rows = []
    for t in thresholds:
        pred = values >= t
        tp = int((pred & labels).sum())
        fp = int((pred & ~labels).sum())
        fn = npos - tp
        precision = tp / (tp + fp) if tp + fp else float('nan')
        recall = tp / npos if npos else float('nan')
        f1 = (2 * precision * recall / (precision + recall) if tp else 0.0)
        rows.append(
            dict(
                threshold=float(t),
                tp=tp,
                fp=fp,
                fn=fn,
                precision=precision,
                recall=recall,
                f1=f1))
    return rows


def best_f1(values: np.ndarray,
            labels: np.ndarray,
            num_positives: Optional[int] = None) -> Dict:
    """The threshold (among the observed scores) with the best F1.

    Returns:
        dict: the :func:`threshold_table` row of that threshold (ties: the
        highest threshold).
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if values.size == 0:
        raise ValueError('no scored pair')
    npos = int(labels.sum()) if num_positives is None else int(num_positives)
    order = np.argsort(-values, kind='stable')
    v, lab = values[order], labels[order]
    tp = np.cumsum(lab)
    fp = np.cumsum(~lab)
    last = np.r_[v[1:] != v[:-1], True]  # last pair of each distinct score
    tp, fp, v = tp[last], fp[last], v[last]
    f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + npos, 1), 0.0)
    best = int(np.argmax(f1))  # first maximum: the highest threshold
    return threshold_table(values, labels, npos, [float(v[best])])[0]
