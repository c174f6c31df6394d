"""Tests of the retrieval test loop, its sampler and helpers."""
import json
import os.path as osp
import pickle
import runpy

import h5py
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import hapvr_mm.datasets.retrieval_dataset  # noqa: F401
import hapvr_mm.evaluation.metrics.retrieval_ap  # noqa: F401
from hapvr_mm.engine.runner import (BlockShardSampler, VideoRetrievalTestLoop,
                                    VideoRetrievalValLoop,
                                    format_metrics_table, load_similarities,
                                    pieces_to_matrix, pieces_to_similarities,
                                    read_scores, shard_blocks,
                                    similarities_to_scores, write_similarities)
from hapvr_mm.evaluation.annotations import ScoreMatrix, load_annotation

D = 8
write_mp4 = runpy.run_path(
    osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
        'data', 'make_demo_dataset.py'))['write_mp4']


@pytest.mark.parametrize('n', [0, 1, 7, 10, 11])
@pytest.mark.parametrize('block', [1, 2, 3, 4])
@pytest.mark.parametrize('world', [1, 2, 3, 5])
def test_shard_blocks_partition(n, block, world):
    shards = [list(shard_blocks(n, block, r, world)) for r in range(world)]
    assert sum(shards, []) == list(range(n))  # disjoint, ordered, complete
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= block
    for s in shards:
        if s:  # whole blocks (the last block of the dataset may be short)
            assert s[0] % block == 0
            assert len(s) % block == 0 or s[-1] == n - 1


def test_sampler_unsharded_and_errors():
    assert list(BlockShardSampler(range(5), block_size=2, shard=False)) == \
        list(range(5))
    assert len(BlockShardSampler(range(5), block_size=2)) == 5
    with pytest.raises(ValueError, match='block_size'):
        BlockShardSampler(range(5), block_size=0)
    with pytest.raises(ValueError, match='rank'):
        shard_blocks(5, 1, 2, 2)


def test_similarity_files_and_table(tmp_path):
    pieces = [
        dict(
            query_id='a',
            target_ids=np.array(['x', 'y']),
            scores=np.array([0.5, 0.25], np.float32)),
        dict(
            query_id='b',
            target_ids=np.array([], str),
            scores=np.zeros(0, np.float32)),
        dict(
            query_id='a',
            target_ids=np.array(['z', 'x']),
            scores=np.array([0.125, 9.0], np.float32)),
    ]
    sims = pieces_to_similarities(pieces)
    assert sims == {'a': {'x': 0.5, 'y': 0.25, 'z': 0.125}, 'b': {}}
    for name in ('s.json', 's.pkl'):
        path = write_similarities(sims, str(tmp_path / name))
        assert load_similarities(path) == sims
    with open(tmp_path / 'pairs.pkl', 'wb') as f:
        pickle.dump({'a': (['x'], [1.0])}, f)
    assert load_similarities(str(tmp_path / 'pairs.pkl')) == {'a': {'x': 1.0}}
    ids, vals = similarities_to_scores(sims)['a']
    assert list(ids) == ['x', 'y', 'z'] and list(vals) == [0.5, 0.25, 0.125]
    (tmp_path / 'bad.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='bad.json'):
        load_similarities(str(tmp_path / 'bad.json'))
    # compact form: first score of a pair wins, NaN where not scored
    matrix = pieces_to_matrix(pieces)
    assert list(matrix.query_ids) == ['a', 'b']
    assert list(matrix.target_ids) == ['x', 'y', 'z']
    np.testing.assert_array_equal(matrix.scores[0], [0.5, 0.25, 0.125])
    assert np.isnan(matrix.scores[1]).all()
    assert matrix.scores.dtype == np.float32
    # pieces of two ranks, gathered interleaved: columns in database order
    shard0, shard1 = np.array(['d0', 'd1']), np.array(['d2'])
    two_ranks = pieces_to_matrix([
        dict(query_id=q, target_ids=ids, scores=np.full(ids.size, v))
        for q, v0 in (('q0', 1.0), ('q1', 2.0))
        for ids, v in ((shard0, v0), (shard1, v0 + 0.5))
    ])
    assert list(two_ranks.target_ids) == ['d0', 'd1', 'd2']
    np.testing.assert_array_equal(two_ranks.scores, [[1, 1, 1.5], [2, 2, 2.5]])
    path = write_similarities(sims, str(tmp_path / 's.npz'))
    back = read_scores(path)
    assert isinstance(back, ScoreMatrix)
    assert list(back['a'][0]) == ['x', 'y', 'z'] and back['b'][0].size == 0
    assert load_similarities(path) == sims
    with np.load(path, allow_pickle=False) as data:  # no pickled objects
        assert data['scores'].shape == (2, 3)
    (tmp_path / 'bad.npz').write_bytes(b'PK\x03\x04 not a zip')
    with pytest.raises(ValueError, match='bad.npz'):
        read_scores(str(tmp_path / 'bad.npz'))
    table = format_metrics_table({'X/mAP': 0.123456, 'skipped_videos': 3})
    assert '0.1235' in table and 'skipped_videos' in table
    assert ' 3 |' in table


def make_hdf5_fixture(root, n_db=9, seed=0):
    """Queries q0-q3 (q3 missing), database with a missing, an empty id."""
    rng = np.random.default_rng(seed)
    queries = ['q0', 'q1', 'q2', 'q3']
    database = [f'd{i}' for i in range(n_db)] + ['missing', 'empty']
    with h5py.File(root / 'feats.h5', 'w') as f:
        for i, vid in enumerate(queries[:3] + database[:n_db]):
            t = int(rng.integers(1, 9))
            arr = rng.standard_normal((t, 3, D))
            f.create_dataset(
                vid, data=arr.astype(np.float16 if i % 2 else np.float32))
        f.create_dataset('empty', data=np.zeros((0, 3, D), np.float32))
    rel = {
        'q0': ['d0', 'd1', 'missing'],
        'q1': ['d2', 'empty', 'd5'],
        'q2': ['d3', 'd4', 'd6'],
        'q3': ['d7']
    }
    (root / 'ann.json').write_text(
        json.dumps(dict(queries=queries, database=database, relevance=rel)))
    return queries, database


def loop_config(root, work_dir, qbs=2, tbs=3, **loop_kw):
    # the fixture's 3 unreadable ids (q3, missing, empty) are allowed
    loop_kw.setdefault('max_skipped', 3)
    ann = dict(type='JSON', ann_file=str(root / 'ann.json'))
    return Config(
        dict(
            default_scope='mmaction',
            model=dict(
                type='HAPVR',
                head=dict(type='SimilarityHead', dims=D),
                pseudo_labeler=None),
            test_dataloader=dict(
                batch_size=2,
                num_workers=0,
                dataset=dict(
                    type='RetrievalDataset',
                    annotation=ann,
                    feature_file=str(root / 'feats.h5'))),
            test_evaluator=dict(type='RetrievalAPMetric', annotation=ann),
            test_cfg=dict(
                type='VideoRetrievalTestLoop',
                query_batch_size=qbs,
                target_batch_size=tbs,
                log_interval=1,
                **loop_kw),
            env_cfg=dict(dist_cfg=dict(backend='gloo')),
            randomness=dict(seed=0),
            work_dir=str(work_dir)))


def direct_scores(model, root, ids_q, ids_t):
    """Pair-by-pair similarities from the raw features (no batching)."""
    out = {}
    with h5py.File(root / 'feats.h5', 'r') as f:
        feats = {
            v: torch.from_numpy(f[v][()].astype(np.float32))
            for v in set(ids_q) | set(ids_t)
        }
    for q in ids_q:
        out[q] = {
            t: float(model.video_similarity([feats[q]], [feats[t]])[0, 0])
            for t in ids_t
        }
    return out


def test_loop_equals_direct_computation(tmp_path):
    queries, database = make_hdf5_fixture(tmp_path)
    torch.manual_seed(0)
    runner = Runner.from_cfg(
        loop_config(tmp_path, tmp_path / 'w', save_similarities=True))
    assert isinstance(runner.test_loop, VideoRetrievalTestLoop)
    # allocator tuning is opt-in
    assert runner.test_loop.tune_malloc is False
    metrics = runner.test()
    # q3 (query) and missing/empty (database) are skipped
    assert metrics['skipped_videos'] == 3
    # True writes the compact form; evaluating it gives the loop's metrics
    scores = read_scores(str(tmp_path / 'w' / 'similarities.npz'))
    ann = load_annotation(
        dict(type='JSON', ann_file=str(tmp_path / 'ann.json')))
    for k, v in ann.evaluate(scores).items():
        assert metrics[f'JSON/{k}'] == v
    sims = load_similarities(str(tmp_path / 'w' / 'similarities.npz'))
    valid_t = [d for d in database if d not in ('missing', 'empty')]
    assert list(sims) == ['q0', 'q1', 'q2']
    assert all(list(row) == valid_t for row in sims.values())
    ref = direct_scores(runner.model, tmp_path, ['q0', 'q1', 'q2'], valid_t)
    for q in ref:
        np.testing.assert_allclose([sims[q][t] for t in valid_t],
                                   [ref[q][t] for t in valid_t],
                                   rtol=0,
                                   atol=1e-5)
    expected = ann.evaluate(similarities_to_scores(ref))
    assert set(metrics) == {
        'JSON/mAP', 'JSON/uAP', 'skipped_videos', 'skipped_queries',
        'skipped_database', 'lost_relevant'
    }
    # q3 is a query; missing and empty are database videos, both relevant
    assert (metrics['skipped_queries'], metrics['skipped_database'],
            metrics['lost_relevant']) == (1, 2, 2)
    for k, v in expected.items():
        assert metrics[f'JSON/{k}'] == pytest.approx(v, abs=1e-9)


def test_loop_batch_sizes_agree(tmp_path):
    make_hdf5_fixture(tmp_path, seed=1)
    results = []
    for qbs, tbs in ((1, 1), (3, 4), (4, 16)):
        torch.manual_seed(0)
        runner = Runner.from_cfg(
            loop_config(
                tmp_path,
                tmp_path / f'w{qbs}',
                qbs,
                tbs,
                save_similarities='s.pkl'))
        metrics = runner.test()
        sims = load_similarities(str(tmp_path / f'w{qbs}' / 's.pkl'))
        results.append((metrics, sims))
    (m0, s0) = results[0]
    for m, s in results[1:]:
        assert list(s) == list(s0)
        for q in s0:
            assert list(s[q]) == list(s0[q])
            np.testing.assert_allclose(
                list(s[q].values()), list(s0[q].values()), atol=1e-5)
        for k in m0:
            assert m[k] == pytest.approx(m0[k], abs=1e-9)


def test_loop_argument_checks(tmp_path):
    make_hdf5_fixture(tmp_path)
    cfg = loop_config(tmp_path, tmp_path / 'w', qbs=0)
    with pytest.raises(ValueError, match='query_batch_size'):
        Runner.from_cfg(cfg).test()


def test_loop_registry_names_only():
    from mmaction.registry import LOOPS

    import hapvr_mm.engine.runner.retrieval_loop as module
    assert LOOPS.get('VideoRetrievalTestLoop') is VideoRetrievalTestLoop
    assert LOOPS.get('VideoRetrievalValLoop') is VideoRetrievalValLoop
    # no unregistered aliases of the loops
    assert not hasattr(module, 'RetrievalTestLoop')
    assert not hasattr(module, 'RetrievalValLoop')


def test_loop_raw_videos(tmp_path):
    """Raw mp4 source with a tiny ResNet-18 backbone at 32 x 32."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (3, 40, 40, 3), dtype=np.uint8)
    for i, vid in enumerate(['qa', 'qb', 'v0', 'v1', 'v2']):
        frames = np.roll(base, i * 3, axis=2) if i % 2 else \
            rng.integers(0, 255, (2 + i % 3, 40, 40, 3), dtype=np.uint8)
        write_mp4(str(tmp_path / f'{vid}.mp4'), frames, fps=1)
    (tmp_path / 'bad.mp4').write_bytes(b'\x00garbage' * 50)
    ann = dict(
        queries=['qa', 'qb'],
        database=['v0', 'v1', 'v2', 'bad', 'gone'],
        relevance={
            'qa': ['v1'],
            'qb': ['v0', 'v2']
        })
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    ann_cfg = dict(type='JSON', ann_file=str(tmp_path / 'ann.json'))
    dims = 64 + 128 + 256 + 512
    cfg = Config(
        dict(
            default_scope='mmaction',
            model=dict(
                type='HAPVR',
                backbone=dict(
                    type='ResNet',
                    depth=18,
                    pretrained=None,
                    out_indices=(0, 1, 2, 3)),
                neck=dict(type='RegionPoolingNeck', grid=1),
                head=dict(type='SimilarityHead', dims=dims),
                pseudo_labeler=None),
            test_dataloader=dict(
                batch_size=1,
                num_workers=0,
                dataset=dict(
                    type='RetrievalDataset',
                    annotation=ann_cfg,
                    video_pattern=str(tmp_path / '{id}.mp4'),
                    pipeline=[
                        dict(
                            type='DecodeRetrievalVideo',
                            short_side=36,
                            crop=32),
                        dict(type='PackRetrievalInputs')
                    ])),
            test_evaluator=dict(type='RetrievalAPMetric', annotation=ann_cfg),
            test_cfg=dict(
                type='VideoRetrievalTestLoop',
                target_batch_size=2,
                max_skipped=2,
                save_similarities=True),
            randomness=dict(seed=0),
            work_dir=str(tmp_path / 'w')))
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert metrics['skipped_videos'] == 2
    assert {'JSON/mAP', 'JSON/uAP'} <= set(metrics)
    sims = load_similarities(str(tmp_path / 'w' / 'similarities.npz'))
    assert all(list(r) == ['v0', 'v1', 'v2'] for r in sims.values())
    # direct: decode, normalise, extract, compare pair by pair
    from hapvr_mm.datasets.transforms.loading import DecodeRetrievalVideo
    from hapvr_mm.datasets.transforms.retrieval import frames_to_tensor
    model = runner.model
    feats = {}
    for vid in ['qa', 'qb', 'v0', 'v1', 'v2']:
        imgs = DecodeRetrievalVideo(
            short_side=36,
            crop=32)(dict(filename=str(tmp_path / f'{vid}.mp4')))['imgs']
        x = model.data_preprocessor(dict(
            inputs=[frames_to_tensor(imgs)]))['inputs'][0]
        feats[vid] = model.extract_feat(x)
    for q in ('qa', 'qb'):
        for t in ('v0', 'v1', 'v2'):
            ref = float(model.video_similarity([feats[q]], [feats[t]])[0, 0])
            assert sims[q][t] == pytest.approx(ref, abs=1e-5)


def test_too_many_skipped_videos_stop_the_evaluation(tmp_path):
    """3 of 15 videos unreadable: above the default 1 %, the evaluation
    stops naming the count and the ids; a limit of 3 lets it finish."""
    make_hdf5_fixture(tmp_path)
    from hapvr_mm.utils import SkippedVideosError
    runner = Runner.from_cfg(
        loop_config(tmp_path, tmp_path / 'w0', max_skipped=0))
    assert runner.test_loop.num_videos == 15
    assert runner.test_loop.skip_limit == 0
    # q3 is a query: stops before any database video is read
    with pytest.raises(SkippedVideosError, match='among the queries') as e:
        runner.test()
    assert "'q3'" in str(e.value) and '1 of the 15' in str(e.value)
    # a share limit: 2 / 15 allowed, the third skip stops the run
    runner = Runner.from_cfg(
        loop_config(
            tmp_path, tmp_path / 'w1', max_skipped=0, max_skipped_ratio=0.15))
    assert runner.test_loop.skip_limit == 2
    with pytest.raises(SkippedVideosError) as e:
        runner.test()
    msg = str(e.value)
    assert '3 of the 15' in msg and "'missing'" in msg and "'empty'" in msg
    assert 'max_skipped' in msg
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match='max_skipped'):
            Runner.from_cfg(
                loop_config(tmp_path, tmp_path / 'w2',
                            max_skipped_ratio=bad)).test_loop
