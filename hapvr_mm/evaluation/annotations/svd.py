"""SVD (Short Video Dataset) annotation and protocol.

See docs/method.md section 5.
"""
from typing import Dict, List, Optional

import numpy as np

from ...registry import ANNOTATIONS
from ..functional.average_precision import \
    sklearn_average_precision_from_counts
from .base import (RetrievalAnnotation, ScoresDict, check_file, nan_reason,
                   read_id_list, warn_nan_metrics)

__all__ = ['SVDAnnotation']

_EXPECTED = "a text file of lines 'query candidate label' with label 0 or 1"


@ANNOTATIONS.register_module(name='SVD')
class SVDAnnotation(RetrievalAnnotation):
    """SVD annotation: scikit-learn style mAP and uAP.

    The ranked list of a query holds its scored labeled candidates plus the
    scored unlabeled distractors (label 0), the query itself excluded. AP is
    ``sklearn.metrics.average_precision_score`` (thresholds on distinct
    scores), so ``G`` is the number of *scored* positives; a query without a
    scored positive is skipped. ``uAP`` applies the same AP to all pairs of
    all queries pooled. When a candidate is listed several times for a query,
    or is also a distractor, a positive label wins.

    Args:
        ann_file (str): Ground-truth text file, lines
            ``query candidate label``.
        unlabeled_file (str, optional): Distractor ids, text (one per line)
            or pickled list. Defaults to None.
    """

    def __init__(self,
                 ann_file: str,
                 unlabeled_file: Optional[str] = None) -> None:
        check_file(ann_file, 'SVD ground truth')
        labels: Dict[str, Dict[str, int]] = {}
        try:
            with open(ann_file, 'r', encoding='utf-8') as f:
                lines = f.readlines()
        except UnicodeDecodeError as err:
            raise ValueError(f'{ann_file}: expected {_EXPECTED}, got a binary'
                             f' file') from err
        for line_no, line in enumerate(lines, 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 3 or tokens[2] not in ('0', '1'):
                raise ValueError(f'{ann_file}:{line_no}: expected '
                                 f'{_EXPECTED}, got {line.strip()!r}')
            query, cand, lab = tokens
            cands = labels.setdefault(query, {})
            cands[cand] = max(int(lab), cands.get(cand, 0))
        if not labels:
            raise ValueError(f'{ann_file}: expected {_EXPECTED}, got no line')
        self.unlabeled: List[str] = ([] if unlabeled_file
                                     is None else read_id_list(
                                         unlabeled_file, 'SVD unlabeled ids'))
        database = list(
            dict.fromkeys([c for cands in labels.values()
                           for c in cands] + self.unlabeled))
        super().__init__('SVD', list(labels), database)
        self.ann_file = ann_file
        self.labels = labels
        n_codes = len(self.all_ids)
        self.distractor_mask = np.zeros(n_codes, dtype=bool)
        self.distractor_mask[self.codes(self.unlabeled)] = True
        self._cand = {
            q: (self.codes(c), np.array([c[k] for k in c], dtype=np.int8))
            for q, c in labels.items()
        }

    def targets_of(self, query: str) -> List[str]:
        """The query's labeled candidates followed by the distractors.

        Args:
            query (str): A query id.

        Returns:
            list[str]: Ids to score ``query`` against.
        """
        cands = list(self.labels[query])
        seen = set(cands)
        return cands + [u for u in self.unlabeled if u not in seen]

    def evaluate(self, scores: ScoresDict) -> Dict[str, float]:
        """SVD metrics.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Returns:
            dict[str, float]: ``mAP`` and ``uAP``.
        """
        # Two passes keep one ranked list in memory at a time: the first
        # collects every query's positive scores, the second sorts each list
        # once and counts, for every positive of any query, the items of the
        # list that score at least as high.
        positives = [pos for _, pos in self._ranked_lists(scores)]
        all_pos = np.concatenate(positives) if positives else np.zeros(0)
        n_ge = np.zeros(all_pos.size, dtype=np.int64)
        aps, n_pairs = [], 0
        for values, pos in self._ranked_lists(scores):
            asc = np.sort(values)
            n_pairs += asc.size
            if pos.size:
                aps.append(
                    sklearn_average_precision_from_counts(
                        pos, asc.size - np.searchsorted(asc, pos, 'left')))
            n_ge += asc.size - np.searchsorted(asc, all_pos, 'left')
        metrics = {
            'mAP': float(np.mean(aps)) if aps else float('nan'),
            'uAP': sklearn_average_precision_from_counts(all_pos, n_ge)
        }
        reason = nan_reason(
            len(positives), len(self.queries), n_pairs, len(aps))
        warn_nan_metrics(self.name, metrics, {'mAP': reason, 'uAP': reason})
        return metrics

    def _ranked_lists(self, scores: ScoresDict):
        """Yield ``(scores [n], positive_scores [p])`` per scored query."""
        # scratch: 0 = not a candidate, 1 = negative, 2 = positive
        scratch = np.zeros(len(self.all_ids), dtype=np.int8)
        for _, query, codes, values in self.prepared_scores(scores):
            cand_codes, cand_labels = self._cand[query]
            scratch[cand_codes] = cand_labels + 1
            lab = scratch[codes]
            scratch[cand_codes] = 0
            keep = ((lab > 0) | self.distractor_mask[codes]) & (
                codes != self.code(query))
            values = values[keep]
            yield values, values[lab[keep] == 2]
