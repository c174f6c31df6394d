"""How much the storage type of indexed features changes search scores.

An index stores each video's indexed features in float16 or float32
(``tools/extract_features.py --dtype``). :func:`compare_indexes` scores the
same query and database videos with both and reports the largest change
of a HAP-VR score and of the rankings; ``benchmarks/index_storage.py``
runs it on the demo benchmark and on a copy-detection set, and
``tests/search/test_index_storage.py`` checks the 1e-3 bound that makes
float16 the default.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .engine import precision_context, search
from .index_file import VideoIndex

__all__ = [
    'score_matrix', 'compare_indexes', 'compare_precision', 'compare_scores'
]


@torch.no_grad()
def score_matrix(model: nn.Module, index: VideoIndex, queries: Sequence[str],
                 database: Sequence[str]) -> np.ndarray:
    """HAP-VR scores of indexed queries against indexed database videos.

    Args:
        model (nn.Module): the index's retriever.
        index (VideoIndex): the index holding every id below.
        queries (sequence[str]): query ids (or unique file names, as
            :meth:`VideoIndex.find`).
        database (sequence[str]): database ids (or unique file names).

    Returns:
        np.ndarray: float32 ``[len(queries), len(database)]`` scores in
        [-1, 1], columns in ``database`` order (a query that is also in the
        database scores itself too).

    Raises:
        KeyError: an id that is not in the index (named in the message).
    """
    rows = np.array([_find(index, v) for v in database], dtype=np.int64)
    feats = [index.features(_find(index, q)) for q in queries]
    results = search(model, feats, index, topk=None, rows=rows)
    column = {int(r): j for j, r in enumerate(rows)}
    out = np.full((len(queries), len(rows)), np.nan, np.float32)
    for qi, res in enumerate(results):
        for r, s in zip(res.rows, res.scores):
            out[qi, column[int(r)]] = s
    return out


def _find(index: VideoIndex, name: str) -> int:
    """Row of an id or unique file name (``'q0'`` finds ``'q0.mp4'``)."""
    row = index.find(name)
    if row is None:
        raise KeyError(f'{name!r} is not in the index {index.path} '
                       f'({len(index)} videos)')
    return row


def _rank_of(scores: np.ndarray, columns: List[int]) -> List[int]:
    order = np.argsort(-scores, kind='stable')
    where = {int(c): i + 1 for i, c in enumerate(order)}
    return [where[c] for c in columns]


def compare_indexes(model: nn.Module,
                    reference: VideoIndex,
                    other: VideoIndex,
                    queries: Sequence[str],
                    database: Sequence[str],
                    relevant: Optional[Dict[str,
                                            Sequence[str]]] = None) -> Dict:
    """Compare the scores of two indexes of the same videos.

    Args:
        model (nn.Module): the retriever both indexes were made with.
        reference (VideoIndex): e.g. the float32 index.
        other (VideoIndex): e.g. the float16 index.
        queries (sequence[str]): query ids (in both).
        database (sequence[str]): database ids (in both).
        relevant (dict, optional): query id -> relevant database ids, to
            report their ranks with each index.

    Returns:
        dict: ``pairs`` (scores compared), ``max_abs_diff`` and
        ``mean_abs_diff`` of the scores, ``same_top10`` (share of queries
        whose top-10 list is identical), ``same_order`` (share of queries
        ranking the whole database identically) and, with ``relevant``,
        ``ranks`` (query -> ``[reference ranks, other ranks]``).
    """
    a = score_matrix(model, reference, queries, database)
    b = score_matrix(model, other, queries, database)
    return compare_scores(a, b, queries, database, relevant)


def compare_precision(model: nn.Module,
                      index: VideoIndex,
                      queries: Sequence[str],
                      database: Sequence[str],
                      relevant: Optional[Dict[str, Sequence[str]]] = None,
                      precision: str = 'bfloat16') -> Dict:
    """Compare float32 scores of one index with scores in ``precision``.

    Args:
        model (nn.Module): the index's retriever.
        index (VideoIndex): the index holding the queries and database.
        queries, database, relevant: as :func:`compare_indexes`.
        precision (str): region products of the other scores
            (:func:`~.engine.precision_context`). Defaults to
            ``'bfloat16'``.

    Returns:
        dict: as :func:`compare_indexes`.
    """
    with precision_context('float32'):
        a = score_matrix(model, index, queries, database)
    with precision_context(precision):
        b = score_matrix(model, index, queries, database)
    return compare_scores(a, b, queries, database, relevant)


def compare_scores(a: np.ndarray,
                   b: np.ndarray,
                   queries: Sequence[str],
                   database: Sequence[str],
                   relevant: Optional[Dict[str,
                                           Sequence[str]]] = None) -> Dict:
    """Differences of two ``[Q, N]`` score matrices and their rankings.

    Args:
        a (np.ndarray): reference scores, ``[len(queries), len(database)]``.
        b (np.ndarray): other scores, same shape.
        queries (sequence[str]): query ids (rows).
        database (sequence[str]): database ids (columns).
        relevant (dict, optional): query id -> relevant database ids.

    Returns:
        dict: as :func:`compare_indexes`.

    Raises:
        ValueError: matrices of different shapes.
    """
    if a.shape != b.shape:
        raise ValueError(f'score matrices differ in shape: {a.shape} and '
                         f'{b.shape}')
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    top10 = [
        np.array_equal(
            np.argsort(-x, kind='stable')[:10],
            np.argsort(-y, kind='stable')[:10]) for x, y in zip(a, b)
    ]
    order = [
        np.array_equal(
            np.argsort(-x, kind='stable'), np.argsort(-y, kind='stable'))
        for x, y in zip(a, b)
    ]
    out = dict(
        pairs=int(diff.size),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        same_top10=float(np.mean(top10)) if top10 else 1.0,
        same_order=float(np.mean(order)) if order else 1.0)
    if relevant:
        column = {v: j for j, v in enumerate(database)}
        out['ranks'] = {
            q: [
                _rank_of(a[qi], [column[v] for v in relevant.get(q, ())]),
                _rank_of(b[qi], [column[v] for v in relevant.get(q, ())])
            ]
            for qi, q in enumerate(queries)
        }
    return out
