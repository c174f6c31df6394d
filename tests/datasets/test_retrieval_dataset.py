"""Tests of RetrievalDataset (HDF5 and raw-video sources), its collate
function and PackRetrievalInputs."""
import json
import os.path as osp
import pickle
import runpy

import h5py
import numpy as np
import pytest
import torch

from hapvr_mm.datasets.retrieval_dataset import (RetrievalDataset,
                                                 features_to_tensor,
                                                 retrieval_collate)
from hapvr_mm.datasets.transforms.loading import DecodeRetrievalVideo
from hapvr_mm.datasets.transforms.retrieval import (PackRetrievalInputs,
                                                    frames_to_tensor)

D = 6
write_mp4 = runpy.run_path(
    osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
        'data', 'make_demo_dataset.py'))['write_mp4']


@pytest.fixture
def hdf5_fixture(tmp_path):
    """3 queries, 5 database videos + a missing id, an empty and a group."""
    rng = np.random.default_rng(0)
    queries = ['q0', 'q1', 'q2']
    database = ['d0', 'd1', 'd2', 'd3', 'd4', 'missing', 'empty', 'group']
    stored = {}
    with h5py.File(tmp_path / 'feats.h5', 'w') as f:
        for i, vid in enumerate(queries + database[:5]):
            arr = rng.standard_normal((2 + i, 3, D))
            arr = arr.astype(np.float16 if i % 2 else np.float32)
            f.create_dataset(vid, data=arr)
            stored[vid] = arr
        f.create_dataset('empty', data=np.zeros((0, 3, D), np.float32))
        f.create_group('group')
    with h5py.File(tmp_path / 'feats2d.h5', 'w') as f:
        for vid in queries:
            f.create_dataset(vid, data=rng.standard_normal((4, D)))
    ann = dict(
        queries=queries,
        database=database,
        relevance={
            'q0': ['d0', 'missing'],
            'q1': ['d1']
        })
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    return tmp_path, stored, queries, database


def _dataset(root, split, **kw):
    return RetrievalDataset(
        annotation=dict(type='JSON', ann_file=str(root / 'ann.json')),
        split=split,
        feature_file=str(root / kw.pop('file', 'feats.h5')),
        **kw)


def test_hdf5_items(hdf5_fixture):
    root, stored, queries, database = hdf5_fixture
    ds = _dataset(root, 'targets')
    assert ds.video_ids == database
    assert ds._h5 is None  # opened lazily
    for i, vid in enumerate(database[:5]):
        item = ds[i]
        x = item['inputs']
        assert x.dtype == torch.float32 and x.shape == stored[vid].shape
        np.testing.assert_array_equal(x.numpy(),
                                      stored[vid].astype(np.float32))
        assert item['data_samples'].metainfo['video_id'] == vid
        assert 'skip_reason' not in item['data_samples'].metainfo
    reasons = {}
    for i in range(5, 8):
        item = ds[i]
        assert item['inputs'] is None
        reasons[database[i]] = item['data_samples'].metainfo['skip_reason']
    assert 'missing' in reasons['missing'] and 'no dataset' in \
        reasons['missing']
    assert 'empty' in reasons['empty']
    assert 'group' in reasons['group']
    # picklable after the handle was opened (dataloader workers)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._h5 is None
    assert torch.equal(clone[0]['inputs'], ds[0]['inputs'])
    ds.close()


def test_hdf5_queries_2d_and_collate(hdf5_fixture):
    root, _, queries, _ = hdf5_fixture
    ds = _dataset(root, 'queries', file='feats2d.h5')
    assert ds.video_ids == queries
    items = [ds[i] for i in range(len(ds))]
    assert all(it['inputs'].shape == (4, 1, D) for it in items)
    batch = retrieval_collate(
        items + [dict(inputs=None, data_samples=items[0]['data_samples'])])
    assert isinstance(batch['inputs'], list) and len(batch['inputs']) == 4
    assert batch['inputs'][-1] is None
    assert batch['data_samples'][1].metainfo['video_id'] == 'q1'
    with pytest.raises(ValueError, match='item 0'):
        retrieval_collate([torch.zeros(1)])


def test_build_errors(hdf5_fixture, tmp_path):
    root, _, _, _ = hdf5_fixture
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'videos': []}))
    with pytest.raises(ValueError, match='bad.json'):
        RetrievalDataset(
            annotation=dict(type='JSON', ann_file=str(bad)),
            feature_file=str(root / 'feats.h5'))
    with pytest.raises(FileNotFoundError, match='nope.h5'):
        _dataset(root, 'queries', file='nope.h5')
    with pytest.raises(ValueError, match='split'):
        _dataset(root, 'database')
    with pytest.raises(ValueError, match='exactly one source'):
        RetrievalDataset(
            annotation=dict(type='JSON', ann_file=str(root / 'ann.json')))
    with pytest.raises(ValueError, match='{id}'):
        RetrievalDataset(video_ids=['a'], video_pattern='x.mp4')


def test_fivr_annotation_split(tmp_path):
    data = {
        'annotation': {
            'qa': {
                'ND': ['v1']
            }
        },
        '5k': {
            'queries': ['qa'],
            'database': ['v0', 'v1', 'v2']
        },
        '200k': {
            'queries': [],
            'database': []
        }
    }
    with open(tmp_path / 'fivr.pk', 'wb') as f:
        pickle.dump(data, f)
    with h5py.File(tmp_path / 'f.h5', 'w') as f:
        f.create_dataset('v1', data=np.ones((2, D), np.float16))
    ds = RetrievalDataset(
        annotation=dict(type='FIVR', ann_file=str(tmp_path / 'fivr.pk')),
        split='targets',
        feature_file=str(tmp_path / 'f.h5'))
    assert ds.video_ids == ['v0', 'v1', 'v2']
    assert ds[0]['inputs'] is None and ds[1]['inputs'].shape == (2, 1, D)


def test_features_to_tensor_checks():
    with pytest.raises(ValueError, match="'x'.*shape"):
        features_to_tensor(np.zeros(3), 'x')
    with pytest.raises(ValueError, match='NaN'):
        features_to_tensor(np.full((2, 3), np.nan), 'x')


def _mixed_sizes_file(root, sizes):
    """An HDF5 file (and JSON annotation) with one entry per feature size."""
    ids = [f'v{i}' for i in range(len(sizes))]
    with h5py.File(root / 'mixed.h5', 'w') as f:
        for vid, dim in zip(ids, sizes):
            f.create_dataset(vid, data=np.ones((2, 3, dim), np.float32))
    (root / 'mixed.json').write_text(
        json.dumps(dict(queries=ids[:1], database=ids[1:])))
    return RetrievalDataset(
        annotation=dict(type='JSON', ann_file=str(root / 'mixed.json')),
        split='targets',
        feature_file=str(root / 'mixed.h5'))


def test_entry_of_another_feature_size_is_skipped_and_named(tmp_path):
    ds = _mixed_sizes_file(tmp_path, [D, D, D + 4, D, D])
    assert ds.frame_shape == (3, D)  # the size of most entries
    items = [ds[i] for i in range(len(ds))]
    skipped = [it for it in items if it['inputs'] is None]
    assert len(skipped) == 1
    meta = skipped[0]['data_samples'].metainfo
    assert meta['video_id'] == 'v2'
    reason = meta['skip_reason']
    assert "'v2'" in reason and 'mixed.h5' in reason
    assert f'(2, 3, {D + 4})' in reason and f'[T, 3, {D}]' in reason
    assert all(it['inputs'].shape[1:] == (3, D) for it in items
               if it['inputs'] is not None)


def test_file_of_the_wrong_feature_size_fails_once(tmp_path):
    _mixed_sizes_file(tmp_path, [D + 4] * 5)
    ann = dict(type='JSON', ann_file=str(tmp_path / 'mixed.json'))
    with pytest.raises(ValueError) as err:
        RetrievalDataset(
            annotation=ann,
            split='queries',
            feature_file=str(tmp_path / 'mixed.h5'),
            feature_shape=(3, D))
    msg = str(err.value)
    assert 'mixed.h5' in msg and f'[3, {D}]' in msg and f'[3, {D + 4}]' in msg
    # the matching size builds; [D] stands for [T, D] entries ([T, 1, D])
    ok = RetrievalDataset(
        annotation=ann,
        split='queries',
        feature_file=str(tmp_path / 'mixed.h5'),
        feature_shape=[3, D + 4])
    assert ok[0]['inputs'].shape == (2, 3, D + 4)
    with pytest.raises(ValueError, match='feature_shape'):
        RetrievalDataset(
            video_ids=['v0'],
            feature_file=str(tmp_path / 'mixed.h5'),
            feature_shape=(0, D))


def test_video_source(tmp_path):
    rng = np.random.default_rng(0)
    write_mp4(
        str(tmp_path / 'a.mp4'),
        rng.integers(0, 255, (6, 48, 64, 3), dtype=np.uint8),
        fps=2)
    (tmp_path / 'broken.mp4').write_bytes(b'not a video at all' * 10)
    ds = RetrievalDataset(
        video_ids=['a', 'broken', 'gone'],
        video_pattern=str(tmp_path / '{id}.mp4'),
        pipeline=[
            dict(type='DecodeRetrievalVideo', short_side=40, crop=32),
            dict(type='PackRetrievalInputs')
        ])
    item = ds[0]
    x = item['inputs']
    # 6 frames at 2 fps -> 3 frames at 1 fps
    assert x.dtype == torch.uint8 and x.shape == (3, 3, 32, 32)
    assert item['data_samples'].metainfo['video_id'] == 'a'
    for i in (1, 2):
        out = ds[i]
        assert out['inputs'] is None
        assert out['data_samples'].metainfo['skip_reason']
    assert 'missing' in ds[2]['data_samples'].metainfo['skip_reason']
    # matches decoding by hand
    ref = DecodeRetrievalVideo(
        short_side=40, crop=32)(dict(filename=str(tmp_path / 'a.mp4')))['imgs']
    assert torch.equal(x, frames_to_tensor(ref))


def test_pack_retrieval_inputs():
    frames = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    out = PackRetrievalInputs()(dict(imgs=frames, video_id=7))
    x = out['inputs']
    assert x.shape == (2, 3, 4, 5)
    for t in range(2):
        for c in range(3):
            assert np.array_equal(x[t, c].numpy(), frames[t, :, :, c])
    assert out['data_samples'].metainfo['video_id'] == '7'
    with pytest.raises(ValueError, match='video_id'):
        PackRetrievalInputs()(dict(imgs=frames))
    with pytest.raises(ValueError, match='uint8'):
        frames_to_tensor(frames.astype(np.float32))
