"""CC_WEB_VIDEO annotation and protocol (docs/method.md section 5)."""
from typing import Dict, List, Mapping, Set, Tuple

import numpy as np

from ...registry import ANNOTATIONS
from .base import (RetrievalAnnotation, ScoresDict, load_pickle, nan_reason,
                   warn_nan_metrics)

__all__ = ['CCWebAnnotation']

_EXPECTED = ("a pickled dict {'index': {video_id: int}, 'queries': [query id "
             "per set], 'ground_truth': [{int: label} per set], 'excluded': "
             '[set of ints per set]}')


@ANNOTATIONS.register_module(name='CC_WEB_VIDEO')
class CCWebAnnotation(RetrievalAnnotation):
    """CC_WEB_VIDEO annotation: ``mAP``, ``mAP*``, ``mAP_clean``,
    ``mAP*_clean``.

    For the query set ``s`` with query ``q``, walk the ranking of ``q`` (its
    scored targets known to ``index``, stable descending order; the query
    itself stays in the walk, as the protocol walks the whole ranking). A
    video is *counted* at the walk's rank ``r`` (``r`` = 1 + number of videos
    counted before it) if it is labeled in the set's ground truth (``mAP``)
    or always (``mAP*``), and, in the clean variants, only if it is not in
    the set's excluded videos. ``AP = sum_i i / r_i / G`` over the counted
    positives (label in ``positive_labels``; ``i``-th positive at counted
    rank ``r_i``), with ``G`` the number of positives in the set's ground
    truth, those excluded removed in the clean variants. The metric is the
    mean AP over the sets whose query was scored (sets with ``G == 0`` are
    skipped). A NaN metric is logged with its reason.

    Args:
        ann_file (str): Public CC_WEB_VIDEO pickle (see ``_EXPECTED``).
        positive_labels (str): Positive labels. Defaults to ``'ESLMV'``.
    """

    def __init__(self, ann_file: str, positive_labels: str = 'ESLMV') -> None:
        data = load_pickle(ann_file, _EXPECTED)
        needed = {'index', 'queries', 'ground_truth', 'excluded'}
        if not isinstance(data, Mapping) or not needed <= set(data):
            keys = (
                sorted(map(str, data))
                if isinstance(data, Mapping) else type(data).__name__)
            raise ValueError(f'{ann_file}: expected {_EXPECTED}, got {keys}')
        index, gt, excluded = (data['index'], data['ground_truth'],
                               data['excluded'])
        set_queries = [str(q) for q in data['queries']]
        if not isinstance(index, Mapping):
            raise ValueError(f"{ann_file}: data['index'] must be a dict "
                             f'video_id -> int')
        if not (len(set_queries) == len(gt) == len(excluded)):
            raise ValueError(f"{ann_file}: 'queries', 'ground_truth' and "
                             f"'excluded' must have one entry per query set, "
                             f'got {len(set_queries)}, {len(gt)} and '
                             f'{len(excluded)}')
        for s, labels in enumerate(gt):
            if not isinstance(labels, Mapping):
                raise ValueError(f"{ann_file}: data['ground_truth'][{s}] must"
                                 f' be a dict int -> label')
        unknown = [q for q in set_queries if q not in index]
        if unknown:
            raise ValueError(f"{ann_file}: queries missing from 'index': "
                             f'{unknown[:3]}')
        database = [str(v) for v in index]
        super().__init__('CC_WEB_VIDEO', set_queries, database)
        self.ann_file = ann_file
        self.positive_labels = positive_labels
        self._positive = set(str(positive_labels))
        self.set_queries: List[str] = set_queries
        self.ground_truth: List[Dict[int, str]] = [dict(g) for g in gt]
        self.excluded: List[Set[int]] = [set(e) for e in excluded]
        # number of each annotation code in the pickle's integer index
        self.video_number = np.full(len(self.all_ids), -1, dtype=np.int64)
        for vid, number in index.items():
            self.video_number[self.code(str(vid))] = int(number)
        # per set: labeled / positive / excluded flags by code, and G
        self._flags: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._n_positives: List[Tuple[int, int]] = []
        known = self.video_number >= 0
        for labels, excl in zip(self.ground_truth, self.excluded):
            positives = {
                n
                for n, lab in labels.items() if str(lab) in self._positive
            }
            self._flags.append(
                tuple(known & np.isin(self.video_number, sorted(numbers))
                      for numbers in (set(labels), positives, excl)))
            self._n_positives.append((len(positives), len(positives - excl)))

    def evaluate(self, scores: ScoresDict) -> Dict[str, float]:
        """CC_WEB_VIDEO metrics.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Returns:
            dict[str, float]: ``mAP``, ``mAP*``, ``mAP_clean`` and
            ``mAP*_clean``.
        """
        variants = {
            'mAP': (False, False),
            'mAP*': (True, False),
            'mAP_clean': (False, True),
            'mAP*_clean': (True, True),
        }
        aps: Dict[str, List[float]] = {k: [] for k in variants}
        prepared = {}
        for _, query, codes, values in self.prepared_scores(scores):
            prepared[query] = (codes, values)
        n_pairs = sum(codes.size for codes, _ in prepared.values())
        for s, query in enumerate(self.set_queries):
            if query not in prepared:
                continue
            codes, values = prepared[query]
            ranked = codes[np.argsort(-values, kind='stable')]
            labeled, positive, excluded = (f[ranked] for f in self._flags[s])
            for name, (all_videos, clean) in variants.items():
                counted = np.ones_like(labeled) if all_videos else labeled
                if clean:
                    counted = counted & ~excluded
                g = self._n_positives[s][int(clean)]
                if g == 0:
                    continue
                rank = np.cumsum(counted)
                hits = positive & counted
                i = np.cumsum(hits)
                aps[name].append(float(np.sum(i[hits] / rank[hits]) / g))
        metrics = {
            k: float(np.mean(v)) if v else float('nan')
            for k, v in aps.items()
        }
        warn_nan_metrics(
            self.name, metrics, {
                k: nan_reason(
                    len(prepared), len(self.queries), n_pairs, len(v))
                for k, v in aps.items()
            })
        return metrics
