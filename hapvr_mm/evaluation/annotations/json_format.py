"""hapvr_mm's own JSON annotation format (see docs/annotation_format.md)."""
import json
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ...registry import ANNOTATIONS
from .base import (RetrievalAnnotation, ScoresDict, check_file,
                   evaluate_restricted)

__all__ = ['JSONAnnotation']

_EXPECTED = ('a JSON object {"queries": [ids], "database": [ids], '
             '"relevance": {query: [positive ids]}} (optional "name")')


@ANNOTATIONS.register_module(name='JSON')
class JSONAnnotation(RetrievalAnnotation):
    """Annotation in our JSON format: step-wise ``mAP`` and ``uAP``.

    Same protocol as FIVR with a single relevance level: a query's relevant
    set is its listed positives restricted to the database videos scored for
    it, minus the query; queries with an empty set are skipped for ``mAP``;
    ``uAP`` pools the (query, database video) pairs of all scored queries.
    Queries missing from ``relevance`` have no positive.

    Args:
        ann_file (str): JSON file (see ``docs/annotation_format.md``).
        name (str, optional): Benchmark name; defaults to the file's
            ``"name"`` or ``'JSON'``.
    """

    def __init__(self, ann_file: str, name: Optional[str] = None) -> None:
        check_file(ann_file, 'JSON annotation')
        try:
            with open(ann_file, 'r', encoding='utf-8') as f:
                data: Any = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f'{ann_file} is not valid JSON; expected '
                             f'{_EXPECTED} ({err})') from err
        if not isinstance(data, dict) or not {'queries', 'database'
                                              } <= set(data):
            keys = sorted(data) if isinstance(data,
                                              dict) else type(data).__name__
            raise ValueError(f'{ann_file}: expected {_EXPECTED}, got {keys}')
        relevance = data.get('relevance', {})
        if not isinstance(relevance, Mapping) or not all(
                isinstance(v, list) for v in relevance.values()):
            raise ValueError(f'{ann_file}: "relevance" must map a query id '
                             f'to a list of positive ids')
        for key in ('queries', 'database'):
            if not isinstance(data[key], list):
                raise ValueError(f'{ann_file}: "{key}" must be a list of ids')
        unknown = [q for q in relevance if q not in set(data['queries'])]
        if unknown:
            raise ValueError(f'{ann_file}: "relevance" has ids that are not '
                             f'queries: {unknown[:3]}')
        super().__init__(
            name or str(data.get('name', 'JSON')), data['queries'],
            data['database'])
        self.ann_file = ann_file
        self.positives = {
            str(q): [str(p) for p in v]
            for q, v in relevance.items()
        }
        self.relevance = {}
        for query, pos in self.positives.items():
            codes = np.unique(self.codes(pos))
            self.relevance[query] = (codes, np.ones(codes.size, np.int16))
        self.database_mask = np.zeros(len(self.all_ids), dtype=bool)
        self.database_mask[self.codes(self.database)] = True

    def evaluate(self, scores: ScoresDict) -> Dict[str, float]:
        """mAP and uAP.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Returns:
            dict[str, float]: ``mAP`` and ``uAP``.
        """
        return evaluate_restricted(self, scores, self.relevance,
                                   self.database_mask, {'mAP': 1}, {'uAP': 1})
