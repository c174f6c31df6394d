"""Tests of SSLVideoDataset and the loading transforms."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmaction.registry import DATASETS, TRANSFORMS
from mmengine.logging import MMLogger

from hapvr_mm.datasets.ssl_video_dataset import (SKIP_LOG_NAME,
                                                 SSLVideoDataset,
                                                 count_skipped, load_skipped)
from hapvr_mm.datasets.transforms.loading import (DecodeRetrievalVideo,
                                                  DecodeSSLSegment,
                                                  segment_positions)
from hapvr_mm.datasets.video_io import VideoReadError


def _check_segment(results, length, window, vt):
    """2W frames, consecutive 1-fps positions modulo the video length."""
    imgs = results['imgs']
    assert isinstance(imgs, np.ndarray) and imgs.dtype == np.uint8
    assert imgs.shape == (2 * window, 48, 64, 3)
    assert results['num_frames'] == 2 * window
    assert results['original_length'] == length
    pos = results['frame_inds']
    np.testing.assert_array_equal(vt.decode_codes(imgs), 4 * pos)
    start = int(pos[0])
    expect = [(start + i) % length for i in range(2 * window)]
    assert pos.tolist() == expect
    if length >= 2 * window:  # long enough: no wrap
        assert start + 2 * window <= length


# ------------------------------------------------------------- transforms
def test_segment_positions_properties():
    rng = np.random.RandomState(0)
    starts = set()
    for _ in range(300):
        p = segment_positions(10, 4, rng)
        assert p.tolist() == list(range(p[0], p[0] + 4))
        starts.add(int(p[0]))
    assert starts == set(range(7))  # uniform over 0..T-2W
    starts = set()
    for _ in range(300):
        p = segment_positions(3, 8, rng)
        assert p.tolist() == [(p[0] + i) % 3 for i in range(8)]
        starts.add(int(p[0]))
    assert starts == {0, 1, 2}
    with pytest.raises(ValueError):
        segment_positions(0, 4)


def test_decode_ssl_segment_registered_and_uses_results_window(
        coded_video_dir, vt):
    t = TRANSFORMS.build(dict(type='DecodeSSLSegment'))
    assert isinstance(t, DecodeSSLSegment)
    path = osp.join(coded_video_dir, 'v41.mp4')
    np.random.seed(0)
    for _ in range(5):
        out = t(dict(filename=path, window=3))
        _check_segment(out, 11, 3, vt)
        assert out['img_shape'] == (48, 64)
    out = DecodeSSLSegment(window=2)(dict(filename=path, window=99))
    _check_segment(out, 11, 2, vt)  # the transform's own window wins
    with pytest.raises(ValueError, match='window'):
        t(dict(filename=path))
    with pytest.raises(ValueError, match='window'):
        DecodeSSLSegment(window=0)


def test_decode_ssl_segment_loops_short_video(coded_video_dir, vt):
    path = osp.join(coded_video_dir, 'v12.mp4')  # 3 frames at 1 fps
    t = DecodeSSLSegment(window=4)
    for _ in range(5):
        _check_segment(t(dict(filename=path)), 3, 4, vt)


def test_decode_ssl_segment_is_seeded_and_too_short(coded_video_dir):
    path = osp.join(coded_video_dir, 'v41.mp4')
    t = DecodeSSLSegment(window=2)
    np.random.seed(3)
    a = [t(dict(filename=path))['frame_inds'].tolist() for _ in range(6)]
    np.random.seed(3)
    b = [t(dict(filename=path))['frame_inds'].tolist() for _ in range(6)]
    assert a == b and len({tuple(x) for x in a}) > 1
    with pytest.raises(VideoReadError, match='too short') as info:
        DecodeSSLSegment(window=2, min_frames=12)(dict(filename=path))
    assert info.value.path == path
    # min_frames from the results (set by the dataset)
    with pytest.raises(VideoReadError, match='too short'):
        t(dict(filename=path, min_frames=20))


def test_decode_ssl_segment_short_side(coded_video_dir):
    out = DecodeSSLSegment(
        window=1, short_side=24)(
            dict(filename=osp.join(coded_video_dir, 'v41.mp4')))
    assert out['imgs'].shape == (2, 24, 32, 3)


def test_decode_retrieval_video(coded_video_dir):
    t = TRANSFORMS.build(dict(type='DecodeRetrievalVideo'))
    assert isinstance(t, DecodeRetrievalVideo)
    path = osp.join(coded_video_dir, 'v41.mp4')
    out = t(dict(filename=path))
    assert out['imgs'].shape == (11, 224, 224, 3)
    assert out['imgs'].dtype == np.uint8
    assert out['num_frames'] == 11 and out['original_length'] == 11
    assert out['original_shape'] == (48, 64)
    out = DecodeRetrievalVideo(
        max_frames=4, short_side=64, crop=32)(
            dict(filename=path))
    assert out['imgs'].shape == (4, 32, 32, 3)
    assert out['num_frames'] == 4 and out['original_length'] == 11
    with pytest.raises(ValueError, match='crop'):
        DecodeRetrievalVideo(short_side=100, crop=224)


# ---------------------------------------------------------------- dataset
def _dataset(root, tmp_path, window=4, **kwargs):
    kwargs.setdefault('skip_log_dir', str(tmp_path / 'logs'))
    return DATASETS.build(
        dict(
            type='SSLVideoDataset',
            data_root=root,
            window=window,
            pipeline=[dict(type='DecodeSSLSegment')],
            **kwargs))


def test_dataset_skips_bad_videos_and_logs_them(mixed_video_dir, tmp_path, vt):
    log_file = str(tmp_path / 'runlog' / 'run.log')
    os.makedirs(osp.dirname(log_file))
    name = 'hapvr_ssl_dataset_test'
    logger = MMLogger.get_instance(name, log_file=log_file)
    try:
        _check_skips(mixed_video_dir, tmp_path, log_file, vt)
    finally:  # do not leave this logger as the current one
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
        MMLogger._instance_dict.pop(name, None)


def _check_skips(mixed_video_dir, tmp_path, log_file, vt):
    ds = _dataset(mixed_video_dir['root'], tmp_path, skip_log_dir='auto')
    assert isinstance(ds, SSLVideoDataset)
    # notes.txt is not listed; the 2 bad files are (caught at read time)
    assert len(ds) == 5
    assert ds.skip_log_dir == osp.dirname(log_file)
    lengths = {
        osp.basename(k): v
        for k, v in mixed_video_dir['lengths'].items()
    }
    np.random.seed(0)
    for i in range(40):
        out = ds[i % len(ds)]
        length = lengths[osp.basename(out['filename'])]
        _check_segment(out, length, 4, vt)
    bad = set(mixed_video_dir['bad'])
    assert ds.num_skipped >= 16  # every direct request of a bad index
    assert ds.skipped_paths == bad
    assert set(load_skipped(ds.skip_log_dir)) == bad
    assert count_skipped(ds.skip_log_dir) == 2
    reasons = load_skipped(ds.skip_log_dir)
    assert 'empty' in reasons[mixed_video_dir['bad'][1]]
    with open(log_file) as f:
        text = f.read()
    for p in bad:  # each logged once, with its path
        assert text.count(f'skipping video {p!r}') == 1


def test_dataset_does_not_open_a_failed_video_again(mixed_video_dir, tmp_path,
                                                    monkeypatch):
    from hapvr_mm.datasets.transforms import loading
    opened = []
    real_open = loading.open_video

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(loading, 'open_video', counting_open)
    ds = _dataset(mixed_video_dir['root'], tmp_path)
    np.random.seed(0)
    for i in range(40):
        ds[i % len(ds)]
    bad = mixed_video_dir['bad']
    for path in bad:  # drawn again and again, opened once
        assert opened.count(path) == 1, opened
    assert ds.skipped_paths == set(bad)
    assert set(ds.skipped_reasons) == set(bad)
    assert 'empty' in ds.skipped_reasons[bad[1]]
    # every draw of a bad index is still a skip event ...
    assert ds.num_skipped >= 16
    # ... but each bad video is recorded once
    with open(osp.join(tmp_path, 'logs', SKIP_LOG_NAME)) as f:
        lines = f.read().splitlines()
    assert sorted(line.split('\t')[0] for line in lines) == sorted(bad)


def test_dataset_all_remembered_failures_still_give_up(tmp_path, vt):
    root = tmp_path / 'bad'
    root.mkdir()
    vt.write_bytes(str(root / 'a.mp4'), b'')
    ds = _dataset(str(root), tmp_path, num_probe=0, max_refetch=3)
    with pytest.raises(RuntimeError, match='no valid sample after 4'):
        ds[0]
    with pytest.raises(RuntimeError, match='empty file'):
        ds[0]  # remembered: not opened, same clear error
    assert ds.num_skipped == 8


def test_dataset_skip_count_across_workers(mixed_video_dir, tmp_path):
    ds = _dataset(mixed_video_dir['root'], tmp_path, window=1)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=2, collate_fn=lambda x: x)
    n = sum(len(b) for b in loader)
    assert n == 5
    assert ds.num_skipped == 0  # the main process did not load anything
    assert count_skipped(str(tmp_path / 'logs')) == 2
    assert osp.isfile(osp.join(tmp_path, 'logs', SKIP_LOG_NAME))


def test_dataset_min_frames_skips_too_short(mixed_video_dir, tmp_path):
    ds = _dataset(mixed_video_dir['root'], tmp_path, window=2, min_frames=5)
    np.random.seed(1)
    for i in range(len(ds)):
        out = ds[i]
        assert out['original_length'] >= 5
    b = mixed_video_dir['good'][1]  # 3 frames at 1 fps
    assert b in ds.skipped_paths
    assert 'too short' in load_skipped(str(tmp_path / 'logs'))[b]


def test_dataset_all_corrupt_or_empty_raises_at_build(tmp_path, vt):
    root = tmp_path / 'bad'
    root.mkdir()
    vt.write_bytes(str(root / 'a.mp4'), b'')
    vt.write_bytes(str(root / 'b.avi'), np.random.RandomState(0).bytes(999))
    with pytest.raises(ValueError, match='no readable video') as info:
        _dataset(str(root), tmp_path)
    assert str(root) in str(info.value) and 'a.mp4' in str(info.value)
    empty = tmp_path / 'nothing'
    empty.mkdir()
    (empty / 'readme.md').write_text('x')
    with pytest.raises(ValueError, match='no videos') as info:
        _dataset(str(empty), tmp_path)
    assert str(empty) in str(info.value)
    with pytest.raises(ValueError, match='not a folder'):
        _dataset(str(tmp_path / 'missing'), tmp_path)


def test_dataset_gives_up_after_max_refetch(tmp_path, vt):
    root = tmp_path / 'bad'
    root.mkdir()
    vt.write_bytes(str(root / 'a.mp4'), b'')
    ds = _dataset(str(root), tmp_path, num_probe=0, max_refetch=3)
    with pytest.raises(RuntimeError, match='no valid sample after 4'):
        ds[0]
    assert ds.num_skipped == 4


def test_dataset_frame_folders(tmp_path, vt):
    root = tmp_path / 'frames'
    vt.write_coded_folder(str(root / 'x' / 'v1'), 9)
    vt.write_coded_folder(str(root / 'v2'), 2)
    (root / 'empty').mkdir()
    for kwargs in (dict(), dict(use_frame_folders=True)):
        ds = _dataset(str(root), tmp_path, window=3, **kwargs)
        assert sorted(
            osp.basename(d['filename'])
            for d in ds.load_data_list()) == ['v1', 'v2']
        for i in range(len(ds)):
            out = ds[i]
            imgs = out['imgs']
            assert imgs.shape == (6, 48, 64, 3)
            length = out['original_length']
            assert length == (9 if out['filename'].endswith('v1') else 2)
            pos = out['frame_inds']
            assert vt.decode_codes(imgs).tolist() == pos.tolist()
            assert pos.tolist() == [(pos[0] + k) % length for k in range(6)]
    with pytest.raises(ValueError, match='no videos'):
        _dataset(str(root), tmp_path, use_frame_folders=False)


def test_dataset_list_file(mixed_video_dir, tmp_path, vt):
    root = mixed_video_dir['root']
    ann = tmp_path / 'list.txt'
    ann.write_text('# training videos\nb.mp4\n\n' +
                   mixed_video_dir['good'][2] + '\n')
    ds = _dataset(root, tmp_path, ann_file=str(ann), window=2)
    assert [d['filename'] for d in ds.load_data_list()] == \
        [osp.join(root, 'b.mp4'), mixed_video_dir['good'][2]]
    out = ds[0]
    _check_segment(out, 3, 2, vt)
    ann.write_text('e_empty.mp4\n')
    with pytest.raises(ValueError, match='list file'):
        _dataset(root, tmp_path, ann_file=str(ann))


def test_dataset_is_reproducible_with_seed(mixed_video_dir, tmp_path):
    ds = _dataset(mixed_video_dir['root'], tmp_path, window=2)

    def run():
        np.random.seed(123)
        outs = [ds[i] for i in range(len(ds))]
        return [(o['filename'], o['frame_inds'].tolist()) for o in outs]

    assert run() == run()


def test_dataset_argument_checks(tmp_path):
    with pytest.raises(ValueError, match='data_root'):
        SSLVideoDataset()
    with pytest.raises(ValueError, match='window'):
        SSLVideoDataset(data_root=str(tmp_path), window=0)


def test_dataset_no_skip_file_when_disabled(mixed_video_dir, tmp_path):
    ds = _dataset(mixed_video_dir['root'], tmp_path, skip_log_dir=None)
    for i in range(len(ds)):
        ds[i]
    assert ds.num_skipped > 0 and ds.skip_log_file is None
    assert not osp.exists(tmp_path / 'logs')
    assert count_skipped(str(tmp_path / 'logs')) == 0
    assert os.path.isdir(mixed_video_dir['root'])
