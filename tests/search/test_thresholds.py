"""Precision / recall / F1 over thresholds."""
import json

import numpy as np
import pytest

from hapvr_mm.datasets.annotations import load_annotation
from hapvr_mm.search import (annotation_positives, best_f1, pair_labels,
                             read_scores, threshold_table)


def test_threshold_table_by_hand():
    values = np.array([0.9, 0.8, 0.4, 0.3, -0.2])
    labels = np.array([True, False, True, False, False])
    rows = threshold_table(
        values, labels, num_positives=3, thresholds=[0.5, 0.35, 1.0])
    r = rows[0]  # 0.9 and 0.8 predicted: 1 TP, 1 FP, 2 FN
    assert (r['tp'], r['fp'], r['fn']) == (1, 1, 2)
    assert r['precision'] == 0.5 and abs(r['recall'] - 1 / 3) < 1e-12
    assert abs(r['f1'] - 0.4) < 1e-12
    assert (rows[1]['tp'], rows[1]['fp']) == (2, 1)
    assert np.isnan(rows[2]['precision']) and rows[2]['f1'] == 0.0


def test_best_f1_is_the_best_observed_threshold():
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, 200).round(2)
    labels = rng.uniform(size=200) < (values + 1) / 2
    best = best_f1(values, labels, int(labels.sum()) + 5)
    brute = threshold_table(values, labels,
                            int(labels.sum()) + 5, np.unique(values))
    top = max(r['f1'] for r in brute)
    assert abs(best['f1'] - top) < 1e-12
    assert best['threshold'] == max(r['threshold'] for r in brute
                                    if abs(r['f1'] - top) < 1e-12)


def test_pairs_from_an_annotation_and_both_score_files(tmp_path):
    ann_file = tmp_path / 'ann.json'
    ann_file.write_text(
        json.dumps(
            dict(
                queries=['q1', 'q2'],
                database=['a', 'b', 'c'],
                relevance={
                    'q1': ['a', 'c'],
                    'q2': ['b']
                })))
    ann = load_annotation(dict(type='JSON', ann_file=str(ann_file)))
    positives = annotation_positives(ann)
    assert positives == {'q1': {'a', 'c'}, 'q2': {'b'}}
    sims = {'q1': {'a': 0.9, 'b': 0.1, 'q1': 1.0}, 'q2': {'b': 0.5, 'c': 0.7}}
    (tmp_path / 'sims.json').write_text(json.dumps(sims))
    search_json = dict(
        meta={},
        queries=[
            dict(query=q, results=[dict(id=t, score=s) for t, s in v.items()])
            for q, v in sims.items()
        ])
    (tmp_path / 'search.json').write_text(json.dumps(search_json))
    for name in ('sims.json', 'search.json'):
        scores = read_scores(str(tmp_path / name))
        values, labels, npos = pair_labels(scores, positives, ann.queries,
                                           set(ann.database))
        # the query itself is dropped; 'c' of q1 was never scored (a miss)
        assert sorted(zip(values.tolist(), labels.tolist())) == [(0.1, False),
                                                                 (0.5, True),
                                                                 (0.7, False),
                                                                 (0.9, True)]
        assert npos == 3
    with pytest.raises(ValueError, match='expected'):
        (tmp_path / 'bad.json').write_text('[1, 2]')
        read_scores(str(tmp_path / 'bad.json'))
