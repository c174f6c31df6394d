"""FIVR-5K / FIVR-200K annotation and protocol (docs/method.md section 5)."""
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from ...registry import ANNOTATIONS
from .base import (RetrievalAnnotation, ScoresDict, evaluate_restricted,
                   load_pickle, read_id_list)

__all__ = ['FIVRAnnotation', 'FIVR_LABEL_LEVELS', 'FIVR_TASKS']

#: Level of each FIVR label: a task of level ``L`` counts labels of level
#: ``<= L`` as relevant (DSVR: ND, DS; CSVR: + CS; ISVR: + IS).
FIVR_LABEL_LEVELS: Dict[str, int] = {'ND': 1, 'DS': 1, 'CS': 2, 'IS': 3}

#: Retrieval (mAP) and detection (uAP) tasks and their levels.
FIVR_TASKS: Dict[str, Tuple[str, int]] = {
    'DSVR': ('mAP', 1),
    'CSVR': ('mAP', 2),
    'ISVR': ('mAP', 3),
    'DSVD': ('uAP', 1),
    'CSVD': ('uAP', 2),
    'ISVD': ('uAP', 3),
}

_EXPECTED = ("a pickled dict {'annotation': {query: {label: [ids]}}, "
             "'5k': {'queries': [...], 'database': [...]}, '200k': {...}}")


@ANNOTATIONS.register_module(name='FIVR')
class FIVRAnnotation(RetrievalAnnotation):
    """FIVR annotation: DSVR/CSVR/ISVR mAP and DSVD/CSVD/ISVD uAP.

    Relevant set of a query for a task: the union of its annotated ids under
    the task's labels, restricted to the database videos scored for that
    query, minus the query itself; a query whose set is empty is skipped for
    the task's mAP. Detection uAP pools the (query, database video) pairs of
    all scored queries. With ``easy_duplicates`` the "hard" variant removes
    those videos from the database and reports ``<task>_hard`` as well.

    Args:
        ann_file (str): Public FIVR pickle (see ``_EXPECTED``).
        version (str): ``'5k'`` or ``'200k'``. Defaults to ``'5k'``.
        easy_duplicates (str, optional): Text file (one id per line) or
            pickled list/set of easy duplicate ids. Defaults to None.
    """

    def __init__(self,
                 ann_file: str,
                 version: str = '5k',
                 easy_duplicates: Optional[str] = None) -> None:
        version = str(version).lower()
        if version not in ('5k', '200k'):
            raise ValueError(f"FIVR version must be '5k' or '200k', got "
                             f'{version!r}')
        data = load_pickle(ann_file, _EXPECTED)
        if (not isinstance(data, Mapping) or 'annotation' not in data
                or version not in data):
            keys = (
                sorted(map(str, data))
                if isinstance(data, Mapping) else type(data).__name__)
            raise ValueError(f'{ann_file}: expected {_EXPECTED} with key '
                             f"'{version}', got {keys}")
        split = data[version]
        if not isinstance(split, Mapping) or not {'queries', 'database'
                                                  } <= set(split):
            raise ValueError(f"{ann_file}: data['{version}'] must be a dict "
                             f"with 'queries' and 'database'")
        annotation = data['annotation']
        if not isinstance(annotation, Mapping):
            raise ValueError(f"{ann_file}: data['annotation'] must be a dict "
                             f'query -> {{label: [ids]}}')
        super().__init__(f'FIVR-{version.upper()}', split['queries'],
                         split['database'])
        self.ann_file = ann_file
        self.version = version
        self.annotation = annotation
        self.relevance: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        for query in self.queries:
            labels = annotation.get(query, {})
            if not isinstance(labels, Mapping):
                raise ValueError(f"{ann_file}: data['annotation'][{query!r}]"
                                 f' must be a dict label -> [ids], got '
                                 f'{type(labels).__name__}')
            best: Dict[int, int] = {}
            for label, ids in labels.items():
                level = FIVR_LABEL_LEVELS.get(label)
                if level is None:
                    continue
                for code in self.codes(ids):
                    code = int(code)
                    best[code] = min(level, best.get(code, level))
            codes = np.fromiter(best.keys(), np.int64, len(best))
            levels = np.fromiter(best.values(), np.int16, len(best))
            self.relevance[query] = (codes, levels)
        self.database_mask = np.zeros(len(self.all_ids), dtype=bool)
        self.database_mask[self.codes(self.database)] = True
        self.easy_duplicates = None
        self.easy_mask = None
        if easy_duplicates is not None:
            easy = read_id_list(easy_duplicates, 'FIVR easy duplicates')
            self.easy_duplicates = easy
            self.easy_mask = np.zeros(len(self.all_ids), dtype=bool)
            self.easy_mask[self.codes(easy)] = True

    def evaluate(self, scores: ScoresDict) -> Dict[str, float]:
        """FIVR metrics.

        Args:
            scores (dict): query id -> ``(target_ids [n], scores [n])``.

        Returns:
            dict[str, float]: ``DSVR``, ``CSVR``, ``ISVR`` (mAP), ``DSVD``,
            ``CSVD``, ``ISVD`` (uAP), plus the same names suffixed with
            ``_hard`` when ``easy_duplicates`` was given.
        """
        retrieval = {k: v[1] for k, v in FIVR_TASKS.items() if v[0] == 'mAP'}
        detection = {k: v[1] for k, v in FIVR_TASKS.items() if v[0] == 'uAP'}
        return evaluate_restricted(
            self,
            scores,
            self.relevance,
            self.database_mask,
            retrieval,
            detection,
            excluded_mask=self.easy_mask)
