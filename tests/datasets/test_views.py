"""Tests of the two-view transform and the packing transform."""
import numpy as np
import pytest
import torch
from mmaction.registry import TRANSFORMS
from mmaction.structures import ActionDataSample

from hapvr_mm.datasets.transforms.temporal import TEMPORAL_TRANSFORMS
from hapvr_mm.datasets.transforms.views import (HAPVRViews, PackSSLInputs,
                                                default_strong_pipeline,
                                                default_weak_pipeline)

W, CROP = 8, 32


def source(n=2 * W, h=64, w=64, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, (n, h, w, 3), dtype=np.uint8)


def test_views_shape_dtype_and_meta():
    views = TRANSFORMS.build(dict(type='HAPVRViews', window=W, crop_size=CROP))
    np.random.seed(0)
    src = source()
    orig = src.copy()
    names = set()
    for _ in range(20):
        res = views(dict(imgs=src, filename='v.mp4'))
        assert res['imgs'].shape == (2, W, CROP, CROP, 3)
        assert res['imgs'].dtype == np.uint8
        assert res['img_shape'] == (CROP, CROP)
        names.add(res['temporal_transform'])
        weak_meta, strong_meta = res['view_metas']
        assert 'temporal_transform' not in weak_meta
        assert 'randaugment' in strong_meta and 'crop_box' in weak_meta
    np.testing.assert_array_equal(src, orig)  # source not modified
    assert names <= set(TEMPORAL_TRANSFORMS) | {'none'}
    assert 'shuffle_dropout' in names


def test_default_pipelines_match_method():
    weak = default_weak_pipeline(W, CROP)
    strong = default_strong_pipeline(W, CROP)
    assert [c['type'] for c in weak
            ] == ['RandomTemporalCrop', 'VideoRandomResizedCrop', 'VideoFlip']
    assert weak[1]['scale'] == (0.8, 1.0) and strong[2]['scale'] == (0.5, 1.0)
    assert strong[0]['probs'] == dict(
        shuffle_dropout=0.5,
        fast_forward=0.1,
        slow_motion=0.1,
        reverse=0.1,
        pause=0.1)
    types = [c['type'] for c in strong]
    assert types.index('RandomTemporalTransform') < types.index(
        'RandomTemporalCrop') < types.index('VideoRandomResizedCrop')
    probs = {c['type']: c.get('prob') for c in strong}
    assert probs['VideoTextOverlay'] == 0.3
    assert probs['VideoLogoOverlay'] == 0.3
    assert probs['VideoGaussianBlur'] == 0.5


def test_same_crop_for_every_frame_of_each_view():
    frame = source(1)[0]
    src = np.repeat(frame[None], 2 * W, axis=0)
    strong = default_strong_pipeline(W, CROP)
    strong[0]['probs'] = {}  # no temporal transformation: no black frames
    for k in (5, 6, 7):  # no frame transforms: they are drawn per frame
        strong[k]['prob'] = 0.0
    views = HAPVRViews(W, CROP, strong_pipeline=strong)
    for seed in range(5):
        np.random.seed(seed)
        imgs = views(dict(imgs=src))['imgs']
        for v in range(2):
            for t in range(1, W):
                np.testing.assert_array_equal(imgs[v, t], imgs[v, 0])
    # with them, every strong frame gets its own caption, logo and blur
    for k in (5, 6, 7):
        strong[k]['prob'] = 1.0
    views = HAPVRViews(W, CROP, strong_pipeline=strong)
    np.random.seed(0)
    imgs = views(dict(imgs=src))['imgs']
    for t in range(1, W):
        np.testing.assert_array_equal(imgs[0, t], imgs[0, 0])
        assert not np.array_equal(imgs[1, t], imgs[1, 0])


def test_strong_views_mix_altered_and_unaltered_frames():
    """Per-frame draws: P(some but not all frames altered) = 1 - q^W -
    (1 - q)^W with q = 0.7 * 0.7 * 0.5 (no text, no logo, no blur)."""
    views = HAPVRViews(W, CROP)
    np.random.seed(0)
    src = source(h=40, w=40)
    mixed = none = 0
    for _ in range(400):
        meta = views(dict(imgs=src))['view_metas'][1]
        altered = np.zeros(W, bool)
        for key in ('overlay_text', 'overlay_logo', 'blur_sigma'):
            assert len(meta[key]) == W
            altered |= np.array([v is not None for v in meta[key]])
        mixed += altered.any() and not altered.all()
        none += not altered.any()
    q = 0.7 * 0.7 * 0.5
    expected = 1 - q**W - (1 - q)**W  # 0.895; the per-view rule gave 0
    assert abs(mixed / 400 - expected) < 0.05
    assert none == 0  # the per-view rule left 24 % of the views unaltered


def test_weak_view_is_a_contiguous_window():
    # frame t is constant 10 * t: crop, resize and flip keep it constant
    src = np.broadcast_to((np.arange(2 * W, dtype=np.uint8) * 10)[:, None,
                                                                  None, None],
                          (2 * W, 40, 48, 3)).copy()
    views = HAPVRViews(W, CROP)
    for seed in range(5):
        np.random.seed(seed)
        weak = views(dict(imgs=src))['imgs'][0]
        vals = weak[:, 0, 0, 0].astype(int)
        assert (weak == weak[:, :1, :1, :1]).all()
        np.testing.assert_array_equal(np.diff(vals), 10)
        assert 0 <= vals[0] <= 10 * W


def test_seeded_determinism():
    views = HAPVRViews(W, CROP)
    src = source()
    outs = []
    for _ in range(2):
        np.random.seed(42)
        outs.append(views(dict(imgs=src))['imgs'])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_custom_pipeline_and_shape_check():
    weak = [
        dict(type='RandomTemporalCrop', window=W),
        dict(type='VideoRandomResizedCrop', size=CROP)
    ]
    views = HAPVRViews(W, CROP, weak_pipeline=weak)
    assert views(dict(imgs=source()))['imgs'].shape == (2, W, CROP, CROP, 3)
    bad = [
        dict(type='RandomTemporalCrop', window=W),
        dict(type='VideoRandomResizedCrop', size=CROP // 2)
    ]
    with pytest.raises(ValueError, match=r'weak view of .v\.mp4.'):
        HAPVRViews(
            W, CROP, weak_pipeline=bad)(
                dict(imgs=source(), filename='v.mp4'))
    with pytest.raises(ValueError, match=r'\[T, H, W, 3\]'):
        HAPVRViews(W, CROP)(dict(imgs=np.zeros((4, 8, 8), np.uint8)))


def test_pack_ssl_inputs():
    np.random.seed(0)
    res = HAPVRViews(W, CROP)(dict(imgs=source(), filename='a/b.mp4'))
    imgs = res['imgs'].copy()
    packed = PackSSLInputs()(res)
    inputs = packed['inputs']
    assert inputs.dtype == torch.uint8
    assert inputs.shape == (2, W, 3, CROP, CROP)
    np.testing.assert_array_equal(inputs.numpy(),
                                  imgs.transpose(0, 1, 4, 2, 3))
    sample = packed['data_samples']
    assert isinstance(sample, ActionDataSample)
    assert sample.metainfo['filename'] == 'a/b.mp4'
    assert sample.metainfo['temporal_transform'] == res['temporal_transform']
    with pytest.raises(ValueError, match=r'\[2, W, h, w, 3\]'):
        PackSSLInputs()(dict(imgs=imgs[0]))
