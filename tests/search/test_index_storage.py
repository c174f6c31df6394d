"""Storage of indexed features: float16 by default (scores within 1e-3 of
float32 on a copy-detection set), bytes per video-minute, and reading one
candidate without loading the index."""
import os.path as osp
import tracemalloc

import numpy as np
import pytest
import torch

from hapvr_mm.search import IndexWriter, VideoIndex, model_for_index
from hapvr_mm.search.storage import compare_indexes
from hapvr_mm.utils import load_script

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ATTRS = dict(fingerprint='abc', fps=2.0, short_side=8, crop=8, max_frames=None)


def _tool(rel):
    return load_script(osp.join(ROOT, 'tools', rel))


def _fill(path, n, t=5, regions=3, dims=16, fp16=None):
    gen = torch.Generator().manual_seed(0)
    with IndexWriter(str(path), dims, ATTRS, fp16=fp16) as w:
        for i in range(n):
            w.add(f'v{i:04d}', torch.randn(t, regions, dims, generator=gen),
                  torch.randn(dims, generator=gen))


def test_float16_is_the_default_and_resume_keeps_the_stored_type(tmp_path):
    new = tmp_path / 'new.h5'
    _fill(new, 2)
    with VideoIndex(str(new)) as idx:
        assert idx.dtype == 'float16'
        assert idx.h5['features']['00000000'].dtype == np.float16
    old = tmp_path / 'old.h5'
    _fill(old, 2, fp16=False)  # an index made in float32
    with IndexWriter(str(old), 16, ATTRS) as w:  # resumed, type not given
        assert w.dtype == np.float32
        w.add('more', torch.zeros(2, 3, 16), torch.zeros(16))
    with VideoIndex(str(old)) as idx:
        assert idx.dtype == 'float32' and len(idx) == 3
        assert idx.h5['features']['00000002'].dtype == np.float32
    with pytest.raises(ValueError, match='stores float32 .*--dtype float32'):
        IndexWriter(str(old), 16, ATTRS, fp16=True)


def test_storage_per_video_minute(tmp_path):
    path = tmp_path / 'idx.h5'
    _fill(path, 6, t=5, regions=3, dims=16)
    with VideoIndex(str(path)) as idx:
        info = idx.storage()
    # 2 fps: 120 frames a minute of 3 x 16 float16 values
    assert info['videos'] == 6 and info['regions'] == 3 and info['dims'] == 16
    assert info['minutes'] == pytest.approx(30 / 2 / 60)
    assert info['bytes_per_minute'] == pytest.approx(120 * 3 * 16 * 2)
    assert info['feature_bytes'] == 30 * 3 * 16 * 2
    assert info['file_bytes'] == osp.getsize(path)
    assert info['file_bytes_per_minute'] > info['bytes_per_minute']


def test_reading_a_candidate_does_not_load_the_index(tmp_path):
    path = tmp_path / 'big.h5'
    t, regions, dims, n = 40, 4, 64, 150
    _fill(path, n, t=t, regions=regions, dims=dims)
    one = t * regions * dims * 4  # one video as float32
    with VideoIndex(str(path)) as idx:
        idx.features(0)  # h5py's first-read set-up is not the video's data
        tracemalloc.start()
        try:
            feats = idx.features(n // 2)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert feats.shape == (t, regions, dims)
    # one video and its float16 read buffer, not the 150 of the index
    assert peak < 3 * one < n * one / 10, peak


@pytest.fixture(scope='module')
def copy_set(tmp_path_factory):
    """A 6 s clip, its 7 copies (re-encoded, logo, cropped, mirrored,
    colour, blurred, 1.5x speed) and 6 unrelated videos."""
    root = tmp_path_factory.mktemp('copy_set')
    return _tool(osp.join('data', 'make_copy_set.py')).make_copy_set(
        str(root / 'videos'),
        seed=3,
        copies=7,
        distractors=6,
        clip_seconds=6.0,
        other_seconds=(4.0, 7.0),
        width=160,
        height=120,
        fps=5.0)


@pytest.mark.parametrize('config', [
    'configs/demo/hapvr_demo.py',
    'configs/demo/frame-retriever_chamfer_demo.py'
])
def test_float16_scores_stay_within_1e3_of_float32(copy_set, tmp_path, config):
    """tools/extract_features.py twice on the copy set (float32, then the
    default): every score of the clip against the database moves by less
    than 1e-3 and the ranking stays the same, with HAP-VR and with plain
    Chamfer similarity (scores of order 1)."""
    extract = _tool('extract_features.py')
    paths = {}
    for dtype in ('float32', None):
        out = str(tmp_path / f'{dtype}.h5')
        argv = [
            osp.join(ROOT, config), 'none', '--videos', copy_set['folder'],
            '--out', out, '--workers', '0', '--device', 'cpu'
        ]
        if dtype:
            argv += ['--dtype', dtype]
        stats = extract.main(argv)
        assert stats['written'] == 14
        paths[dtype] = (out, stats['storage'])
    assert paths[None][1]['dtype'] == 'float16'
    assert paths['float32'][1]['bytes_per_minute'] == pytest.approx(
        2 * paths[None][1]['bytes_per_minute'])
    database = copy_set['copies'] + copy_set['distractors']
    with VideoIndex(paths['float32'][0]) as ref, \
            VideoIndex(paths[None][0]) as half:
        model, _ = model_for_index(ref)
        res = compare_indexes(model, ref, half, ['query'], database,
                              dict(query=copy_set['copies']))
    assert res['pairs'] == 13
    assert res['max_abs_diff'] < 1e-3, res
    assert res['same_order'] == 1.0, res
    ranks32, ranks16 = res['ranks']['query']
    assert ranks32 == ranks16
