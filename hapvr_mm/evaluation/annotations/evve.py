"""EVVE annotation and protocol (docs/method.md section 5)."""
from typing import Dict, List, Mapping, Set

import numpy as np

from ...registry import ANNOTATIONS
from ..functional.average_precision import (
    average_precision_from_ranks, pooled_ranks, stable_descending_order,
    trapezoid_average_precision_from_ranks)
from .base import (RetrievalAnnotation, ScoresDict, load_pickle, nan_reason,
                   warn_nan_metrics)

__all__ = ['EVVEAnnotation']

_EXPECTED = ("a pickled dict {'annotation': {event: (queries, positives, "
             "nulls)}, 'queries': [...], 'database': [...]}")


@ANNOTATIONS.register_module(name='EVVE')
class EVVEAnnotation(RetrievalAnnotation):
    """EVVE annotation: trapezoid mAP (overall and per event) and uAP.

    Every query is ranked against the database videos only
    (:attr:`targets` is the database, as in the authors' evaluation: the
    other queries are never targets), the query itself excluded should it
    also be a database video. Its positives are the positive set of its
    event, minus the query; ``G`` counts all of them, so positives that were
    not scored (or are not database videos) count as not retrieved. AP is
    EVVE's trapezoid rule (``trapezoid_average_precision_from_ranks`` in
    :mod:`hapvr_mm.evaluation.functional.average_precision`:
    for the 0-based ranks ``R_i`` of the retrieved positives, ``sum_i
    (i / R_i + (i + 1) / (R_i + 1)) / (2 G)`` with ``i / R_i := 1`` at
    ``R_i = 0``).
    ``mAP`` averages over all scored queries, ``mAP_<event>`` over the scored
    queries of the event, and ``uAP`` is the step-wise AP of all (query,
    target) pairs pooled, with ``G`` the sum of the queries' ``G``. Queries
    with no positive are skipped. The nulls are ordinary negatives. A NaN
    metric is logged with its reason.

    Args:
        ann_file (str): Public EVVE pickle (see ``_EXPECTED``).
    """

    def __init__(self, ann_file: str) -> None:
        data = load_pickle(ann_file, _EXPECTED)
        if not isinstance(data, Mapping) or not {
                'annotation', 'queries', 'database'
        } <= set(data):
            keys = (
                sorted(map(str, data))
                if isinstance(data, Mapping) else type(data).__name__)
            raise ValueError(f'{ann_file}: expected {_EXPECTED}, got {keys}')
        events = data['annotation']
        if not isinstance(events, Mapping):
            raise ValueError(f"{ann_file}: data['annotation'] must be a dict "
                             f'event -> (queries, positives, nulls)')
        queries = [str(q) for q in data['queries']]
        database = [str(d) for d in data['database']]
        super().__init__('EVVE', queries, database)
        self.ann_file = ann_file
        self.events: List[str] = [str(e) for e in events]
        self.query_event: Dict[str, str] = {}
        self.positives: Dict[str, Set[str]] = {}
        self.nulls: Dict[str, Set[str]] = {}
        for event, value in events.items():
            if not isinstance(value, (tuple, list)) or len(value) != 3:
                raise ValueError(f"{ann_file}: data['annotation'][{event!r}] "
                                 f'must be (queries, positives, nulls)')
            ev_queries, positives, nulls = value
            self.positives[str(event)] = {str(p) for p in positives}
            self.nulls[str(event)] = {str(n) for n in nulls}
            for q in ev_queries:
                q = str(q)
                if q in self.query_event and self.query_event[q] != event:
                    raise ValueError(f'{ann_file}: query {q!r} belongs to '
                                     f'events {self.query_event[q]!r} and '
                                     f'{event!r}')
                self.query_event[q] = str(event)
        missing = [q for q in self.queries if q not in self.query_event]
        if missing:
            raise ValueError(f'{ann_file}: queries without an event, e.g. '
                             f'{missing[:3]}')
        self.targets_mask = np.zeros(len(self.all_ids), dtype=bool)
        self.targets_mask[self.codes(self.targets)] = True

    def evaluate(self, scores: ScoresDict) -> Dict[str, float]:
        """EVVE metrics.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Returns:
            dict[str, float]: ``mAP``, ``uAP`` and ``mAP_<event>`` for every
            event (NaN for an event without a scored query).
        """
        sorted_lists, ranks, g_list, events = [], [], [], []
        pos_mask = np.zeros(len(self.all_ids), dtype=bool)
        n_scored = n_pairs = 0
        for _, query, codes, values in self.prepared_scores(scores):
            n_scored += 1
            keep = self.targets_mask[codes] & (codes != self.code(query))
            codes, values = codes[keep], values[keep]
            n_pairs += codes.size
            event = self.query_event[query]
            positives = self.positives[event] - {query}
            if not positives:
                continue
            pos_codes = self.codes(positives)
            pos_mask[pos_codes] = True
            order = stable_descending_order(values)
            ranks.append(np.flatnonzero(pos_mask[codes[order]]) + 1)
            pos_mask[pos_codes] = False
            sorted_lists.append(values[order])
            g_list.append(len(positives))
            events.append(event)
        aps = np.array([
            trapezoid_average_precision_from_ranks(r, g)
            for r, g in zip(ranks, g_list)
        ])
        metrics = {'mAP': float(aps.mean()) if aps.size else float('nan')}
        pooled = pooled_ranks(sorted_lists, ranks)
        metrics['uAP'] = average_precision_from_ranks(
            np.concatenate(pooled) if pooled else np.zeros(0),
            int(sum(g_list)))
        reason = nan_reason(n_scored, len(self.queries), n_pairs, len(aps))
        reasons = {'mAP': reason, 'uAP': reason}
        events_arr = np.asarray(events, dtype=object)
        for event in self.events:
            sel = aps[events_arr == event] if aps.size else aps
            metrics[f'mAP_{event}'] = (
                float(sel.mean()) if sel.size else float('nan'))
            reasons[f'mAP_{event}'] = (
                reason or f'no scored query of event {event!r} has a '
                'positive')
        warn_nan_metrics(self.name, metrics, reasons)
        return metrics
