"""The index file: round trip, roll-back of an interrupted commit, checks."""
import h5py
import numpy as np
import pytest
import torch

from hapvr_mm.search import IndexWriter, VideoIndex, is_index_file, row_key

D = 4
ATTRS = dict(fingerprint='abc', fps=1.0, short_side=8, crop=8, max_frames=None)


def _video(t, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, 2, D, generator=g), torch.randn(D, generator=g)


def _fill(path, ids, fp16=False):
    with IndexWriter(str(path), D, ATTRS, fp16=fp16) as w:
        for i, vid in enumerate(ids):
            f, g = _video(3 + i, i)
            w.add(vid, f, g, f'/videos/{vid}')
            w.flush()


def test_round_trip(tmp_path):
    path = tmp_path / 'idx.h5'
    _fill(path, ['a.mp4', 'sub/b.mp4', 'c.mp4'])
    assert is_index_file(str(path))
    with VideoIndex(str(path)) as idx:
        assert idx.ids == ['a.mp4', 'sub/b.mp4', 'c.mp4']
        assert idx.paths[1] == '/videos/sub/b.mp4'
        assert idx.num_frames.tolist() == [3, 4, 5]
        assert idx.global_desc.shape == (3, D)
        f, g = _video(4, 1)
        assert torch.equal(idx.features(1), f)
        assert torch.equal(idx.global_desc[1], g)
        assert idx.attrs['max_frames'] == 'none' and idx.fps == 1.0
        assert idx.row('c.mp4') == 2
        assert idx.find('b.mp4') == 1  # unique file name
        assert idx.find('sub/b.mp4') == 1
        assert idx.find('b') == 1 and idx.find('sub/b') == 1  # no extension
        assert idx.find('ub/b.mp4') is None  # not at a folder boundary
        assert idx.find('nothing.mp4') is None
        with pytest.raises(KeyError, match='zz'):
            idx.row('zz')
        with pytest.raises(IndexError, match='row 7'):
            idx.features(7)


def test_find_refuses_an_ambiguous_name(tmp_path):
    path = tmp_path / 'idx.h5'
    _fill(path, ['x/a.mp4', 'y/a.mp4'])
    with VideoIndex(str(path)) as idx:
        with pytest.raises(KeyError, match='matches 2 videos'):
            idx.find('a.mp4')


def test_resume_rolls_back_an_interrupted_commit(tmp_path):
    """Features and a global row written beyond the last commit (``ids``)
    are dropped when the file is opened again; the resumed file equals one
    written without interruption."""
    ref, path = tmp_path / 'ref.h5', tmp_path / 'idx.h5'
    _fill(ref, ['a', 'b', 'c'])
    _fill(path, ['a'])
    with h5py.File(path, 'a') as h5:  # what a kill mid-commit leaves
        h5['features'].create_dataset(row_key(1), data=np.zeros((9, 2, D)))
        for name in ('global', 'paths', 'num_frames'):
            h5[name].resize(2, axis=0)
        h5['ids'].resize(2, axis=0)  # resized, id never written
    with VideoIndex(str(path)) as idx:  # readable meanwhile
        assert idx.ids == ['a']  # the uncommitted row is not seen
    with IndexWriter(str(path), D, ATTRS) as w:
        assert len(w) == 1 and 'a' in w and 'b' not in w
        for i, vid in enumerate(['b', 'c'], 1):
            f, g = _video(3 + i, i)
            w.add(vid, f, g, f'/videos/{vid}')
    with VideoIndex(str(ref)) as a, VideoIndex(str(path)) as b:
        assert a.ids == b.ids and a.paths == b.paths
        assert torch.equal(a.global_desc, b.global_desc)
        for row in range(3):
            assert torch.equal(a.features(row), b.features(row))
        with h5py.File(path, 'r') as h5:
            assert sorted(h5['features']) == [row_key(i) for i in range(3)]


def test_a_file_killed_while_being_created_starts_again(tmp_path):
    path = tmp_path / 'idx.h5'
    with h5py.File(path, 'w') as h5:
        h5.attrs['format'] = 'hapvr-index'
        h5.create_dataset('paths', data=np.zeros(3))
    _fill(path, ['a'])
    with VideoIndex(str(path)) as idx:
        assert idx.ids == ['a'] and idx.paths == ['/videos/a']


def test_resume_checks_settings(tmp_path):
    path = tmp_path / 'idx.h5'
    _fill(path, ['a'])
    with pytest.raises(ValueError, match='crop=8.*crop=16'):
        IndexWriter(str(path), D, dict(ATTRS, crop=16))
    with pytest.raises(ValueError, match='fingerprint'):
        IndexWriter(str(path), D, dict(ATTRS, fingerprint='other'))
    with pytest.raises(ValueError, match='--dtype float32'):
        IndexWriter(str(path), D, ATTRS, fp16=True)
    with IndexWriter(str(path), D, ATTRS) as w:
        with pytest.raises(ValueError, match="'a' is already"):
            w.add('a', *_video(3, 0))
        with pytest.raises(ValueError, match=r'\[T, R, 4\]'):
            w.add('b', torch.zeros(3, 4), torch.zeros(D))


def test_plain_feature_file_is_not_an_index(tmp_path):
    path = tmp_path / 'feats.h5'
    with h5py.File(path, 'w') as h5:
        h5.create_dataset('v0', data=np.zeros((3, 2, D)))
    assert not is_index_file(str(path))
    with pytest.raises(ValueError, match='not a search index'):
        VideoIndex(str(path))
    with pytest.raises(ValueError, match='not a search index'):
        IndexWriter(str(path), D, ATTRS)
    with pytest.raises(FileNotFoundError, match='nope.h5'):
        VideoIndex(str(tmp_path / 'nope.h5'))


def test_fp16_storage(tmp_path):
    path = tmp_path / 'idx.h5'
    _fill(path, ['a'], fp16=True)
    with h5py.File(path, 'r') as h5:
        assert h5['features'][row_key(0)].dtype == np.float16
    with VideoIndex(str(path)) as idx:
        f, _ = _video(3, 0)
        assert idx.features(0).dtype == torch.float32
        assert torch.allclose(idx.features(0), f, atol=1e-2)
