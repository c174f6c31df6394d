"""EVVE annotation and protocol (METHOD section 5)."""
from typing import Dict, List, Mapping, Set

import numpy as np

from hapvr_mm.evaluation.functional.average_precision import (
    average_precision_from_ranks, ranks_in_lists,
    trapezoid_average_precision_from_ranks)
from .base import RetrievalAnnotation, ScoresDict, load_pickle

__all__ = ['EVVEAnnotation']

_EXPECTED = ("a pickled dict {'annotation': {event: (queries, positives, "
             "nulls)}, 'queries': [...], 'database': [...]}")


class EVVEAnnotation(RetrievalAnnotation):
    """EVVE annotation: trapezoid mAP (overall and per event) and uAP.

    Every query is ranked against the database *and* the other queries
    (:attr:`targets`), the query itself excluded. Its positives are the
    positive set of its event, minus the query; ``G`` counts all of them, so
    positives that were not scored (or are outside the targets) count as not
    retrieved. AP is EVVE's trapezoid rule (``trapezoid_average_precision_
    from_ranks`` in :mod:`hapvr_mm.evaluation.functional.average_precision`:
    for the 0-based ranks ``R_i`` of the retrieved positives, ``sum_i
    (i / R_i + (i + 1) / (R_i + 1)) / (2 G)`` with ``i / R_i := 1`` at
    ``R_i = 0``).
    ``mAP`` averages over all scored queries, ``mAP_<event>`` over the scored
    queries of the event, and ``uAP`` is the step-wise AP of all (query,
    target) pairs pooled, with ``G`` the sum of the queries' ``G``. Queries
    with no positive are skipped. The nulls are ordinary negatives.

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
        db_set = set(database)
        targets = database + [q for q in queries if q not in db_set]
        super().__init__('EVVE', queries, database, targets=targets)
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
        lists, needles, g_list, events = [], [], [], []
        n_codes = len(self.all_ids)
        pos_mask = np.zeros(n_codes, dtype=bool)
        for _, query, codes, values in self.prepared_scores(scores):
            event = self.query_event[query]
            positives = self.positives[event] - {query}
            if not positives:
                continue
            keep = self.targets_mask[codes] & (codes != self.code(query))
            if not keep.all():
                codes, values = codes[keep], values[keep]
            pos_codes = self.codes(positives)
            pos_mask[pos_codes] = True
            idx = np.flatnonzero(pos_mask[codes])
            pos_mask[pos_codes] = False
            lists.append(values)
            needles.append(idx)
            g_list.append(len(positives))
            events.append(event)
        (local, pooled), = ranks_in_lists(lists, needles, pooled=True)
        aps = np.array([
            trapezoid_average_precision_from_ranks(r, g)
            for r, g in zip(local, g_list)
        ])
        metrics = {'mAP': float(aps.mean()) if aps.size else float('nan')}
        ranks = np.concatenate(pooled) if pooled else np.zeros(0)
        metrics['uAP'] = average_precision_from_ranks(ranks, int(sum(g_list)))
        events_arr = np.asarray(events, dtype=object)
        for event in self.events:
            sel = aps[events_arr == event] if aps.size else aps
            metrics[f'mAP_{event}'] = (
                float(sel.mean()) if sel.size else float('nan'))
        return metrics
