"""Relevant / irrelevant pair scores and their separation statistics."""
import json
import pickle

import numpy as np
import pytest

from hapvr_mm.evaluation.annotations import (CCWebAnnotation, EVVEAnnotation,
                                             FIVRAnnotation, JSONAnnotation,
                                             ScoreMatrix, SVDAnnotation)
from hapvr_mm.evaluation.functional import (check_score_ids,
                                            distribution_tasks,
                                            histogram_edges, histogram_overlap,
                                            separation_summary,
                                            split_pair_scores)


def as_scores(table):
    """``{query: {target: score}}`` -> annotation score format."""
    return {
        q:
        (np.array(list(row),
                  dtype=str), np.array(list(row.values()), dtype=np.float64))
        for q, row in table.items()
    }


def sorted_split(pairs):
    return sorted(pairs.relevant.tolist()), sorted(pairs.irrelevant.tolist())


# ------------------------------------------------------------ statistics


def test_identical_distributions_overlap_fully():
    values = np.linspace(-0.5, 0.5, 101)
    row = separation_summary(values, values.copy(), bins=10)
    assert row['overlap'] == pytest.approx(1.0)
    assert row['margin'] == pytest.approx(0.0)
    assert row['auc'] == pytest.approx(0.5)
    assert row['d_prime'] == pytest.approx(0.0)
    assert row['num_relevant'] == row['num_irrelevant'] == 101
    assert row['mean_relevant'] == pytest.approx(row['mean_irrelevant'])
    assert row['std_relevant'] == pytest.approx(values.std())
    # 50 of 101 values lie strictly above the median 0.0
    assert row['irrelevant_above_median'] == pytest.approx(50 / 101)


def test_disjoint_distributions_do_not_overlap():
    relevant = np.array([0.6, 0.7, 0.8])
    irrelevant = np.array([-0.2, -0.1, 0.0, -0.1])
    row = separation_summary(relevant, irrelevant, bins=20)
    assert row['overlap'] == 0.0
    assert row['margin'] == pytest.approx(0.7 - (-0.1))
    assert row['auc'] == 1.0
    assert row['irrelevant_above_median'] == 0.0
    assert row['median_relevant'] == pytest.approx(0.7)
    # reversed: still no overlap, negative margin, AUC 0
    row = separation_summary(irrelevant, relevant, bins=20)
    assert row['overlap'] == 0.0 and row['auc'] == 0.0
    assert row['margin'] == pytest.approx(-0.8)
    assert row['irrelevant_above_median'] == 1.0


def test_half_overlap_and_explicit_edges():
    relevant = np.array([0.5, 1.5, 2.5, 3.5])
    irrelevant = np.array([2.5, 3.5, 4.5, 5.5])
    edges = np.arange(7.0)
    assert histogram_overlap(relevant, irrelevant, edges) == pytest.approx(0.5)
    row = separation_summary(relevant, irrelevant, bins=edges)
    assert row['overlap'] == pytest.approx(0.5)
    assert row['margin'] == pytest.approx(-2.0)
    # both variances 1.25: d' = margin / sqrt(1.25)
    assert row['d_prime'] == pytest.approx(-2.0 / np.sqrt(1.25))
    # 16 pairs: relevant above (3.5 > 2.5): 1, ties: 2 -> (1 + 1) / 16
    assert row['auc'] == pytest.approx(2 / 16)
    # shared edges span both samples
    edges = histogram_edges(relevant, irrelevant, bins=5)
    assert edges[0] == 0.5 and edges[-1] == 5.5 and edges.size == 6
    edges = histogram_edges(relevant, bins=4, value_range=(-1, 1))
    np.testing.assert_allclose(edges, [-1, -0.5, 0, 0.5, 1])


def test_summary_errors():
    with pytest.raises(ValueError, match='no relevant pair'):
        separation_summary([], [0.1, 0.2])
    with pytest.raises(ValueError, match='no irrelevant pair'):
        separation_summary([0.1], np.zeros(0))
    with pytest.raises(ValueError, match='finite'):
        separation_summary([0.1, np.nan], [0.2])
    assert np.isnan(separation_summary([0.5, 0.5], [0.5])['d_prime'])
    with pytest.raises(ValueError, match='bins'):
        histogram_edges([0.1], bins=0)
    with pytest.raises(ValueError, match='non-empty'):
        histogram_overlap([], [1.0], [0, 1])


# ---------------------------------------------------- split per benchmark


def json_annotation(tmp_path, relevance):
    path = tmp_path / 'ann.json'
    path.write_text(
        json.dumps(
            dict(
                queries=['q1', 'q2'],
                database=['a', 'b', 'c', 'q1'],
                relevance=relevance)))
    return JSONAnnotation(str(path))


def test_split_json_dict_and_matrix(tmp_path):
    ann = json_annotation(tmp_path, {'q1': ['a', 'q1'], 'q2': ['b']})
    table = {
        # q1 itself is left out; x is unknown; 'q2' not a database video
        'q1': {
            'a': 0.9,
            'b': 0.1,
            'c': 0.2,
            'q1': 1.0,
            'x': 0.5
        },
        'q2': {
            'a': 0.3,
            'b': 0.7,
            'q1': 0.4
        },
        'zz': {
            'a': 0.0
        },  # not a query: ignored
    }
    pairs = split_pair_scores(ann, as_scores(table))
    assert pairs.num_queries == 2 and pairs.task == ''
    assert sorted_split(pairs) == ([0.7, 0.9], [0.1, 0.2, 0.3, 0.4])
    # the same scores as a matrix (NaN = not scored)
    targets = ['a', 'b', 'c', 'q1', 'x']
    matrix = ScoreMatrix(['q1', 'q2'], targets, [
        [table['q1'][t] for t in targets],
        [table['q2'].get(t, np.nan) for t in targets],
    ])
    # float32 scores
    for got, want in zip(
            sorted_split(split_pair_scores(ann, matrix)), sorted_split(pairs)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert check_score_ids(ann, matrix, 'sims.npz') == ['x']
    assert sorted(check_score_ids(ann, as_scores(table))) == ['x', 'zz']
    with pytest.raises(ValueError, match='unknown task'):
        split_pair_scores(ann, matrix, task='DSVR')


def test_unknown_ids_name_the_source(tmp_path):
    ann = json_annotation(tmp_path, {'q1': ['a']})
    other = as_scores({'v1': {'a': 0.1}, 'v2': {'b': 0.2}})
    with pytest.raises(ValueError, match=r"other\.npz.*'v1'"):
        check_score_ids(ann, other, 'other.npz')
    targets = as_scores({'q1': {'t1': 0.1, 't2': 0.2}})
    with pytest.raises(ValueError, match=r"sims.*target ids.*'t1'"):
        check_score_ids(ann, targets, 'sims')


def test_split_fivr_tasks_and_hard(tmp_path):
    data = {
        'annotation': {
            'q': {
                'ND': ['nd'],
                'DS': ['ds'],
                'CS': ['cs'],
                'IS': ['is'],
                'XX': ['d0']  # unknown label: not relevant
            }
        },
        '5k': {
            'queries': ['q'],
            'database': ['nd', 'ds', 'cs', 'is', 'd0', 'd1', 'q']
        },
        '200k': {
            'queries': [],
            'database': []
        }
    }
    path = tmp_path / 'fivr.pk'
    path.write_bytes(pickle.dumps(data))
    easy = tmp_path / 'easy.txt'
    easy.write_text('nd\n')
    ann = FIVRAnnotation(str(path), easy_duplicates=str(easy))
    assert distribution_tasks(ann) == [
        'DSVR', 'CSVR', 'ISVR', 'DSVR_hard', 'CSVR_hard', 'ISVR_hard'
    ]
    scores = as_scores({
        'q': {
            'nd': 0.9,
            'ds': 0.8,
            'cs': 0.7,
            'is': 0.6,
            'd0': 0.5,
            'd1': 0.4,
            'q': 1.0
        }
    })
    dsvr = split_pair_scores(ann, scores)
    assert dsvr.task == 'DSVR'
    assert sorted_split(dsvr) == ([0.8, 0.9], [0.4, 0.5, 0.6, 0.7])
    assert sorted_split(split_pair_scores(ann, scores,
                                          'CSVR')) == ([0.7, 0.8,
                                                        0.9], [0.4, 0.5, 0.6])
    assert sorted_split(split_pair_scores(ann, scores,
                                          'ISVR')) == ([0.6, 0.7, 0.8,
                                                        0.9], [0.4, 0.5])
    assert sorted_split(split_pair_scores(
        ann, scores, 'DSVR_hard')) == ([0.8], [0.4, 0.5, 0.6, 0.7])


def test_split_evve(tmp_path):
    data = {
        'annotation': {
            'e1': (['q1'], ['p1', 'p2'], ['n1']),
            'e2': (['q2'], [], [])
        },
        'queries': ['q1', 'q2'],
        'database': ['p1', 'p2', 'n1', 'd1']
    }
    path = tmp_path / 'evve.pk'
    path.write_bytes(pickle.dumps(data))
    ann = EVVEAnnotation(str(path))
    scores = as_scores({
        # q2 is a query, never a target; p2 was not scored
        'q1': {
            'p1': 0.8,
            'n1': 0.3,
            'd1': 0.1,
            'q2': 0.9
        },
        # no positive: skipped, as in the protocol
        'q2': {
            'p1': 0.5,
            'd1': 0.2
        }
    })
    pairs = split_pair_scores(ann, scores)
    assert pairs.num_queries == 1
    assert sorted_split(pairs) == ([0.8], [0.1, 0.3])


def test_split_svd(tmp_path):
    gt = tmp_path / 'gt.txt'
    gt.write_text('q1 a 1\nq1 b 0\nq2 c 1\n')
    unlabeled = tmp_path / 'u.txt'
    unlabeled.write_text('u1\n')
    ann = SVDAnnotation(str(gt), str(unlabeled))
    scores = as_scores({
        # c is a candidate of q2 only: not in q1's list
        'q1': {
            'a': 0.9,
            'b': 0.5,
            'c': 0.7,
            'u1': 0.2,
            'q1': 1.0
        },
        'q2': {
            'c': 0.6,
            'a': 0.4,
            'u1': 0.3
        }
    })
    pairs = split_pair_scores(ann, scores)
    assert sorted_split(pairs) == ([0.6, 0.9], [0.2, 0.3, 0.5])


def test_split_cc_web_variants(tmp_path):
    data = {
        'index': {
            'q': 0,
            'a': 1,
            'b': 2,
            'c': 3,
            'd': 4
        },
        'queries': ['q'],
        'ground_truth': [{
            0: 'E',
            1: 'S',
            2: 'X',
            3: 'L'
        }],
        'excluded': [{3}]
    }
    path = tmp_path / 'cc.pk'
    path.write_bytes(pickle.dumps(data))
    ann = CCWebAnnotation(str(path))
    scores = as_scores(
        {'q': {
            'q': 1.0,
            'a': 0.9,
            'b': 0.5,
            'c': 0.8,
            'd': 0.2
        }})
    # mAP: labeled only (d unlabeled); b labeled X (negative)
    assert sorted_split(split_pair_scores(ann, scores)) == ([0.8, 0.9], [0.5])
    assert sorted_split(split_pair_scores(ann, scores,
                                          'mAP*')) == ([0.8, 0.9], [0.2, 0.5])
    assert sorted_split(split_pair_scores(ann, scores,
                                          'mAP*_clean')) == ([0.9], [0.2, 0.5])
    assert sorted_split(split_pair_scores(ann, scores,
                                          'mAP_clean')) == ([0.9], [0.5])
