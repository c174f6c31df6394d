"""Only decoding / file-format errors skip a video; bugs propagate."""
import json

import h5py
import numpy as np
import pytest

from hapvr_mm.datasets import video_io
from hapvr_mm.datasets.retrieval_dataset import RetrievalDataset
from hapvr_mm.datasets.video_io import VideoReadError, open_video


class _FakeReader:
    """Stands in for decord.VideoReader, raising ``exc`` on decode."""

    exc = None

    def __init__(self, *args, **kwargs):
        pass

    def __len__(self):
        return 10

    def get_avg_fps(self):
        return 5.0

    def get_batch(self, idx):
        raise self.exc


@pytest.fixture
def fake_decord(monkeypatch, tmp_path):
    import decord
    monkeypatch.setattr(decord, 'VideoReader', _FakeReader)
    path = tmp_path / 'v.mp4'
    path.write_bytes(b'x' * 16)
    return str(path)


def test_decode_errors_become_video_read_errors(fake_decord):
    from decord._ffi.base import DECORDError
    for exc in (DECORDError('bad frame'), RuntimeError('seek failed'),
                OSError('truncated')):
        _FakeReader.exc = exc
        with pytest.raises(VideoReadError, match='corrupt') as info:
            open_video(fake_decord).read()
        assert type(exc).__name__ in info.value.reason


@pytest.mark.parametrize('exc', [TypeError('a bug'), MemoryError()])
def test_other_errors_propagate_from_decoding(fake_decord, exc):
    _FakeReader.exc = exc
    with pytest.raises(type(exc)):
        open_video(fake_decord).read()


def test_other_errors_propagate_from_opening(fake_decord, monkeypatch):
    import decord

    def broken(*args, **kwargs):
        raise TypeError('unexpected keyword')

    monkeypatch.setattr(decord, 'VideoReader', broken)
    with pytest.raises(TypeError, match='unexpected keyword'):
        open_video(fake_decord)
    assert MemoryError not in video_io.decode_errors()
    assert TypeError not in video_io.decode_errors()


def _feature_dataset(tmp_path):
    with h5py.File(tmp_path / 'f.h5', 'w') as f:
        f.create_dataset('a', data=np.ones((2, 3, 4), np.float32))
        f.create_dataset('b', data=np.ones((2, 3, 4), np.float32))
    (tmp_path / 'ann.json').write_text(
        json.dumps(
            dict(queries=['a'], database=['a', 'b'], relevance={'a': ['b']})))
    return RetrievalDataset(
        annotation=dict(type='JSON', ann_file=str(tmp_path / 'ann.json')),
        split='targets',
        feature_file=str(tmp_path / 'f.h5'))


def test_feature_file_errors_skip(tmp_path, monkeypatch):
    ds = _feature_dataset(tmp_path)
    assert ds[1]['inputs'] is not None

    def unreadable(self):
        raise OSError('Unable to open file (truncated file)')

    monkeypatch.setattr(RetrievalDataset, '_hdf5', unreadable)
    item = ds[1]
    assert item['inputs'] is None
    assert 'truncated' in item['data_samples'].metainfo['skip_reason']


@pytest.mark.parametrize('exc', [TypeError('a bug'), MemoryError()])
def test_feature_file_bugs_propagate(tmp_path, monkeypatch, exc):
    ds = _feature_dataset(tmp_path)

    def broken(self):
        raise exc

    monkeypatch.setattr(RetrievalDataset, '_hdf5', broken)
    with pytest.raises(type(exc)):
        ds[1]


def test_feature_entry_read_errors(tmp_path, monkeypatch):
    ds = _feature_dataset(tmp_path)
    real = h5py.Dataset.__getitem__

    def corrupt(self, key):
        if self.name == '/b':
            raise OSError("Can't read data (inflate() failed)")
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, '__getitem__', corrupt)
    assert ds[0]['inputs'] is not None
    reason = ds[1]['data_samples'].metainfo['skip_reason']
    assert 'inflate' in reason

    def buggy(self, key):
        raise TypeError('a bug')

    monkeypatch.setattr(h5py.Dataset, '__getitem__', buggy)
    with pytest.raises(TypeError, match='a bug'):
        ds[0]
