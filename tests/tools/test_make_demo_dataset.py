"""Tests of tools/data/make_demo_dataset.py (tiny sizes)."""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

from hapvr_mm.datasets.video_io import (VideoReadError, read_video_frames,
                                        video_length_1fps)

_TOOL = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'data', 'make_demo_dataset.py')

TINY = [
    '--num-train', '2', '--num-queries', '2', '--copies-per-query', '4',
    '--num-distractors', '2', '--width', '64', '--height', '48', '--fps', '3',
    '--min-seconds', '5', '--max-seconds', '7', '--corrupt', '3', '--quiet'
]


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('make_demo_dataset', _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def demo(tool, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo') / 'a')
    assert tool.main(['--out', out, '--seed', '7'] + TINY) == 0
    return out


def _ann(out):
    with open(osp.join(out, 'eval', 'annotation.json')) as f:
        return json.load(f)


def test_layout_and_annotation_consistent(demo):
    ann = _ann(demo)
    assert set(ann) == {'queries', 'database', 'relevance'}
    videos = osp.join(demo, 'eval', 'videos')
    stems = {osp.splitext(n)[0] for n in os.listdir(videos)}
    assert len(ann['queries']) == 2 and len(ann['database']) == 2 * 4 + 2
    assert stems == set(ann['queries']) | set(ann['database'])
    assert not set(ann['queries']) & set(ann['database'])
    assert set(ann['relevance']) == set(ann['queries'])
    positives = [p for q in ann['queries'] for p in ann['relevance'][q]]
    assert all(len(ann['relevance'][q]) == 4 for q in ann['queries'])
    assert len(set(positives)) == len(positives) == 8  # one query each
    assert set(positives) <= set(ann['database'])
    with open(osp.join(demo, 'eval', 'metadata.json')) as f:
        meta = json.load(f)['videos']
    distractors = set(ann['database']) - set(positives)
    assert len(distractors) == 2
    for vid in ann['database']:
        m = meta[vid]
        if vid in distractors:
            assert m['query'] is None and m['transforms'] == []
        else:
            assert vid in ann['relevance'][m['query']]
            assert 1 <= len(m['transforms']) <= 2
    used = {t['name'] for v in meta.values() for t in v['transforms']}
    assert used == {
        'crop_scale', 'colour_shift', 'text_overlay', 'blur', 'temporal_crop',
        'speed_change', 'picture_in_picture'
    }


def test_files_decode_with_decord(demo):
    import decord
    for sub in ('train', osp.join('eval', 'videos')):
        for name in sorted(os.listdir(osp.join(demo, sub))):
            path = osp.join(demo, sub, name)
            if name.startswith('corrupt_'):
                with pytest.raises(VideoReadError):
                    read_video_frames(path)
                continue
            vr = decord.VideoReader(path)
            assert vr.get_avg_fps() == pytest.approx(3.0)
            frames = read_video_frames(path)
            assert frames.shape[0] == video_length_1fps(path) >= 1
            assert frames.dtype == np.uint8 and frames.shape[-1] == 3
    train = sorted(os.listdir(osp.join(demo, 'train')))
    assert train == [
        'corrupt_000.mp4', 'corrupt_001.mp4', 'corrupt_002.mp4', 't0000.mp4',
        't0001.mp4'
    ]
    assert osp.getsize(osp.join(demo, 'train', 'corrupt_002.mp4')) == 0


def test_videos_differ(demo):
    a = read_video_frames(osp.join(demo, 'train', 't0000.mp4'))
    b = read_video_frames(osp.join(demo, 'train', 't0001.mp4'))
    n = min(len(a), len(b))
    diff = np.abs(a[:n].astype(int) - b[:n].astype(int)).mean()
    assert diff > 20
    assert a.std() > 10  # not a flat frame


def test_deterministic_and_seed_dependent(tool, demo, tmp_path):
    same = str(tmp_path / 'b')
    tool.make_demo_dataset(
        same,
        seed=7,
        num_train=1,
        num_queries=2,
        copies_per_query=4,
        num_distractors=2,
        width=64,
        height=48,
        fps=3,
        min_seconds=5,
        max_seconds=7,
        verbose=False)
    assert _ann(same) == _ann(demo)
    for sub in ('eval/videos/db0003.mp4', 'eval/videos/q001.mp4',
                'train/t0000.mp4'):
        np.testing.assert_array_equal(
            read_video_frames(osp.join(same, sub)),
            read_video_frames(osp.join(demo, sub)))
    other = str(tmp_path / 'c')
    tool.make_demo_dataset(
        other,
        seed=8,
        num_train=1,
        num_queries=2,
        copies_per_query=4,
        num_distractors=2,
        width=64,
        height=48,
        fps=3,
        min_seconds=5,
        max_seconds=7,
        verbose=False)
    a = read_video_frames(osp.join(other, 'train', 't0000.mp4'))
    b = read_video_frames(osp.join(demo, 'train', 't0000.mp4'))
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_refuses_to_overwrite_and_checks_args(tool, demo):
    with pytest.raises(FileExistsError, match='overwrite'):
        tool.make_demo_dataset(demo, verbose=False)
    with pytest.raises(ValueError, match='even'):
        tool.make_demo_dataset(demo + '_x', width=63, verbose=False)
    with pytest.raises(ValueError, match='num_queries'):
        tool.make_demo_dataset(demo + '_y', num_queries=0, verbose=False)


def test_make_copy_transformations(tool):
    rng = np.random.default_rng(0)
    frames = tool.render_video(rng, 64, 48, 4.0, 4.0)
    assert frames.shape == (16, 48, 64, 3)
    out, log = tool.make_copy(frames,
                              ['speed_change'], np.random.default_rng(1),
                              np.random.default_rng(2), 4.0)
    speed = log[0]['speed']
    assert len(out) == int(np.floor(16 / speed))
    out, log = tool.make_copy(frames, ['temporal_crop', 'blur'],
                              np.random.default_rng(3),
                              np.random.default_rng(4), 4.0)
    assert [t['name'] for t in log] == ['temporal_crop', 'blur']
    start, length = log[0]['start'], log[0]['length']
    assert len(out) == length < 16
    # blur keeps the mean colour of the kept frames
    assert abs(out.mean() - frames[start:start + length].mean()) < 3
    out, log = tool.make_copy(frames, ['picture_in_picture'],
                              np.random.default_rng(5),
                              np.random.default_rng(6), 4.0)
    x, y, w, h = log[0]['box']
    assert out.shape == frames.shape
    assert 0.4 * 64 <= w <= 0.7 * 64


def test_cli_output_has_no_decoder_noise(tmp_path):
    """The corrupt files are checked with decord without its C-level error
    lines reaching stderr."""
    import subprocess
    import sys
    res = subprocess.run(
        [sys.executable, _TOOL, '--out',
         str(tmp_path / 'd'), '--seed', '1'] + TINY,
        capture_output=True,
        text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr
    assert 'moov atom' not in res.stderr
    assert 'ERROR opening' not in res.stderr
    assert len(os.listdir(tmp_path / 'd' / 'train')) == 2 + 3
