"""Tests of RetrievalAPMetric: merging of score pieces, registry, prefix."""
import pickle

import numpy as np
import pytest
import torch
from mmaction.registry import METRICS

from hapvr_mm.evaluation.annotations import FIVRAnnotation
from hapvr_mm.evaluation.metrics.retrieval_ap import RetrievalAPMetric


@pytest.fixture
def fivr_file(tmp_path):
    rng = np.random.default_rng(0)
    db = [f'v{i}' for i in range(30)]
    annotation = {
        q: {
            'ND': list(rng.choice(db, 3, replace=False)),
            'CS': list(rng.choice(db, 3, replace=False)),
            'IS': list(rng.choice(db, 3, replace=False))
        }
        for q in ('qa', 'qb', 'qc')
    }
    data = {
        'annotation': annotation,
        '5k': {
            'queries': ['qa', 'qb', 'qc'],
            'database': db
        },
        '200k': {
            'queries': [],
            'database': []
        }
    }
    path = tmp_path / 'fivr.pk'
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    easy = tmp_path / 'easy.txt'
    easy.write_text('\n'.join(db[:5]))
    return str(path), str(easy), db


def test_metric_merges_pieces(fivr_file):
    path, easy, db = fivr_file
    cfg = dict(type='FIVR', ann_file=path, version='5k', easy_duplicates=easy)
    rng = np.random.default_rng(1)
    full = {
        q: (np.array(db), rng.integers(0, 5, len(db)).astype(np.float32))
        for q in ('qa', 'qb', 'qc')
    }
    expected = FIVRAnnotation(path, '5k', easy).evaluate(full)

    metric = METRICS.build(dict(type='RetrievalAPMetric', annotation=cfg))
    assert isinstance(metric, RetrievalAPMetric)
    shards = [slice(0, 11), slice(11, 20), slice(20, 30)]
    for shard in shards:  # one batch per database shard, queries mixed
        samples = []
        for q, (ids, scores) in full.items():
            samples.append(
                dict(
                    query_id=q,
                    target_ids=list(ids[shard]),
                    scores=torch.from_numpy(scores[shard])))
        metric.process(None, samples)
    results = list(metric.results)
    metric.results.clear()  # compute_metrics must use its argument
    got = metric.compute_metrics(results)
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k] == pytest.approx(expected[k]), k
    # evaluate() through BaseMetric adds the prefix
    metric.results.extend(results)
    out = metric.evaluate(size=len(results))
    assert out['FIVR-5K/DSVR'] == pytest.approx(expected['DSVR'])


def test_metric_prefix_and_bad_samples(fivr_file):
    path, _, _ = fivr_file
    metric = RetrievalAPMetric(dict(type='FIVR', ann_file=path), prefix='fivr')
    assert metric.prefix == 'fivr'
    with pytest.raises(ValueError, match='query_id'):
        metric.process(None, [dict(target_ids=['v1'], scores=[1.0])])
    with pytest.raises(ValueError, match=r"'qa'.*\(2,\) and \(1,\)"):
        metric.process(
            None, [dict(query_id='qa', target_ids=['v1', 'v2'], scores=[1.0])])
    with pytest.raises(FileNotFoundError):
        RetrievalAPMetric(dict(type='FIVR', ann_file=path + '.missing'))


def test_matrix_pieces_merge_and_evaluate_like_query_pieces():
    from hapvr_mm.evaluation.metrics import merge_score_pieces
    rng = np.random.default_rng(0)
    s = rng.random((2, 5)).astype(np.float32)
    s[1, 3] = np.nan  # not scored
    a = dict(query_ids=['q0', 'q1'], target_ids=['t0', 't1'], scores=s[:, :2])
    b = dict(
        query_ids=['q0', 'q1'], target_ids=['t2', 't3', 't4'], scores=s[:, 2:])
    m = merge_score_pieces([a, b])
    assert list(m.target_ids) == ['t0', 't1', 't2', 't3', 't4']
    np.testing.assert_array_equal(m.scores, s)
    # general path: other query lists, a pair scored twice keeps the first
    c = dict(
        query_ids=['q2', 'q0'],
        target_ids=['t0', 't9'],
        scores=np.array([[1, 2], [3, 4]], np.float32))
    g = merge_score_pieces([a, c])
    assert list(g.query_ids) == ['q0', 'q1', 'q2']
    assert list(g.target_ids) == ['t0', 't1', 't9']
    assert g.scores[0, 0] == s[0, 0] and g.scores[0, 2] == 4
    assert g.scores[2, 0] == 1 and np.isnan(g.scores[1, 2])
