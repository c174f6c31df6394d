"""Tests of the per-view frame transforms and RandAugment."""
import math

import numpy as np
import pytest
from mmaction.registry import TRANSFORMS

from hapvr_mm.datasets.transforms.frame import (
    LOGO_SHAPES, VideoFlip, VideoGaussianBlur, VideoLogoOverlay,
    VideoRandomResizedCrop, VideoTextOverlay, gaussian_blur, hflip,
    logo_overlay, random_resized_crop_params, render_logo_overlay,
    resized_crop, text_overlay)
from hapvr_mm.datasets.transforms.randaugment import (RANDAUGMENT_OPS,
                                                      VideoRandAugment,
                                                      apply_randaugment_op,
                                                      rand_augment,
                                                      randaugment_op_value)
from hapvr_mm.datasets.transforms.temporal import BLACK, NOISE, PENDING_KEY


def same_frames(t=4, h=64, w=64, seed=0):
    """A clip of ``t`` identical random frames."""
    img = np.random.default_rng(seed).integers(
        0, 256, (h, w, 3), dtype=np.uint8)
    return np.repeat(img[None], t, axis=0)


def all_frames_equal(clip):
    return all(np.array_equal(clip[0], f) for f in clip[1:])


# --------------------------------------------------------------------- crop
def test_random_resized_crop_params_ranges():
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, h, w = random_resized_crop_params(64, 80, (0.5, 1.0),
                                                     (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + h <= 64 and 0 <= left and left + w <= 80
        area = h * w / (64 * 80)
        assert 0.5 - 0.05 <= area <= 1.0 + 1e-9
        assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_random_resized_crop_params_fallback():
    # no box with aspect >= 10 fits a square: centred fallback
    box = random_resized_crop_params(50, 50, (0.9, 1.0), (10.0, 20.0), 0)
    assert box == (22, 0, 5, 50)  # (50 - 5) // 2 = 22


def test_resized_crop_exact_and_indexed():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    out = resized_crop(clip, (5, 7, 20, 30), (20, 30))  # no scaling: copy
    np.testing.assert_array_equal(out, clip[:, 5:25, 7:37])
    out = resized_crop(
        clip, (5, 7, 20, 30), (20, 30),
        indices=np.array([2, BLACK, NOISE, 0]),
        rng=0)
    np.testing.assert_array_equal(out[0], clip[2, 5:25, 7:37])
    np.testing.assert_array_equal(out[3], clip[0, 5:25, 7:37])
    assert (out[1] == 0).all() and out[2].std() > 50
    with pytest.raises(ValueError, match='does not fit'):
        resized_crop(clip, (30, 0, 20, 20), 10)


def test_crop_is_the_same_for_every_frame():
    clip = same_frames(6)
    for seed in range(5):
        np.random.seed(seed)
        res = VideoRandomResizedCrop(
            size=32, scale=(0.5, 1.0))(
                dict(imgs=clip))
        assert res['imgs'].shape == (6, 32, 32, 3)
        assert all_frames_equal(res['imgs'])
        top, left, h, w = res['crop_box']
        assert h * w >= 0.45 * 64 * 64


def test_crop_reads_pending_indices():
    clip = np.broadcast_to(
        np.arange(10, dtype=np.uint8)[:, None, None, None] * 20,
        (10, 16, 16, 3)).copy()
    res = dict(imgs=clip, **{PENDING_KEY: np.array([9, 3, BLACK])})
    out = VideoRandomResizedCrop(size=8)(res)
    assert PENDING_KEY not in out
    np.testing.assert_array_equal(out['imgs'][:, 0, 0, 0], [180, 60, 0])


def test_flip():
    clip = np.random.default_rng(0).integers(
        0, 256, (2, 8, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(hflip(clip), clip[:, :, ::-1])
    assert VideoFlip(1.0)(dict(imgs=clip))['flip']
    res = VideoFlip(0.0)(dict(imgs=clip))
    assert not res['flip'] and res['imgs'] is clip
    np.random.seed(0)
    flips = [VideoFlip(0.5)(dict(imgs=clip))['flip'] for _ in range(400)]
    assert abs(np.mean(flips) - 0.5) < 0.1


# ----------------------------------------------------------------- overlays
def test_text_overlay_same_for_all_frames_and_not_in_place():
    clip = same_frames(4)
    orig = clip.copy()
    out, text = text_overlay(clip, np.random.default_rng(3))
    np.testing.assert_array_equal(clip, orig)
    assert isinstance(text, str) and text
    assert all_frames_equal(out)
    assert (out != clip).any()
    # the same caption lands on different frames at the same place
    two = np.stack(
        [np.zeros((64, 64, 3), np.uint8),
         np.full((64, 64, 3), 255, np.uint8)])
    out2, _ = text_overlay(two, np.random.default_rng(5))
    changed0 = (out2[0] != 0).any(-1)
    changed1 = (out2[1] != 255).any(-1)
    assert changed0.any() and changed1.any()
    assert (changed0
            & changed1).sum() >= 0.5 * min(changed0.sum(), changed1.sum())


def test_logo_overlay_box_and_shapes():
    for name in LOGO_SHAPES:
        logo = render_logo_overlay(24, np.random.default_rng(0), (name, ))
        assert logo['colour'].shape == (24, 24, 3)
        assert 0.0 <= logo['mask'].min() and logo['mask'].max() <= 1.0
        assert logo['mask'].sum() > 10
    clip = same_frames(3)
    for seed in range(5):
        out, (top, left, side) = logo_overlay(clip,
                                              np.random.default_rng(seed))
        assert 0.1 * 64 - 1 <= side <= 0.3 * 64 + 1
        assert all_frames_equal(out)
        diff = (out != clip).any(axis=(0, 3))
        outside = diff.copy()
        outside[top:top + side, left:left + side] = False
        assert diff.any() and not outside.any()


def test_overlay_probabilities():
    clip = same_frames(2, 32, 32)
    np.random.seed(0)
    hits = [
        VideoTextOverlay(0.3)(dict(imgs=clip))['overlay_text'] is not None
        for _ in range(300)
    ]
    assert abs(np.mean(hits) - 0.3) < 0.08
    hits = [
        VideoLogoOverlay(0.3)(dict(imgs=clip))['overlay_logo'] is not None
        for _ in range(300)
    ]
    assert abs(np.mean(hits) - 0.3) < 0.08
    res = VideoLogoOverlay(0.0)(dict(imgs=clip))
    assert res['imgs'] is clip


# --------------------------------------------------------------------- blur
def test_gaussian_blur():
    const = np.full((2, 16, 16, 3), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(const, 1.5), const)
    clip = same_frames(3, 32, 32)
    np.testing.assert_array_equal(gaussian_blur(clip, 0.1), clip)
    out = gaussian_blur(clip, 2.0)
    assert all_frames_equal(out)
    assert out.astype(float).std() < 0.5 * clip.astype(float).std()
    np.random.seed(0)
    sigmas = [
        VideoGaussianBlur(0.5)(dict(imgs=clip))['blur_sigma']
        for _ in range(200)
    ]
    used = [s for s in sigmas if s is not None]
    assert abs(len(used) / 200 - 0.5) < 0.1
    assert all(0.1 <= s <= 2.0 for s in used)
    with pytest.raises(ValueError, match='sigma'):
        gaussian_blur(clip, 0.0)


# -------------------------------------------------------------- RandAugment
def test_randaugment_values():
    s = 9 / 30  # magnitude 9 of 31 bins
    assert randaugment_op_value('rotate', s, -1) == pytest.approx(-9.0)
    assert randaugment_op_value('solarize', s) == pytest.approx(178.5)
    assert randaugment_op_value('posterize', s) == 7
    assert randaugment_op_value('color', s, -1) == pytest.approx(0.73)
    assert randaugment_op_value('shear_x', s) == pytest.approx(0.09)
    assert randaugment_op_value('translate_y', s, 1,
                                (100, 50)) == pytest.approx(13.5)
    with pytest.raises(ValueError, match='unknown'):
        randaugment_op_value('invert', s)


@pytest.mark.parametrize('name', RANDAUGMENT_OPS)
def test_every_op_is_the_same_for_every_frame(name):
    clip = same_frames(3, 32, 32)
    value = randaugment_op_value(name, 0.9, -1, (32, 32))
    out = apply_randaugment_op(clip, name, value)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert all_frames_equal(out)
    assert out is not clip


def test_lut_ops_against_loops():
    clip = np.random.default_rng(0).integers(
        0, 256, (2, 8, 8, 3), dtype=np.uint8)
    sol = apply_randaugment_op(clip, 'solarize', 100.0)
    post = apply_randaugment_op(clip, 'posterize', 3)
    for v, s, p in zip(clip.ravel(), sol.ravel(), post.ravel()):
        assert s == (255 - v if v >= 100 else v)
        assert p == (int(v) // 32) * 32


def test_blend_ops_against_float_reference():
    clip = np.random.default_rng(1).integers(
        0, 256, (2, 8, 8, 3), dtype=np.uint8)
    f = clip.astype(float)
    grey = f @ np.array([0.299, 0.587, 0.114])
    refs = {
        'brightness': f * 1.4,
        'color': grey[..., None] + 1.4 * (f - grey[..., None]),
        'contrast': grey.mean() + 1.4 * (f - grey.mean()),
    }
    for name, ref in refs.items():
        out = apply_randaugment_op(clip, name, 1.4).astype(float)
        assert np.abs(out - np.clip(ref, 0, 255)).max() <= 1.0 + 1e-6, name
    grey_out = apply_randaugment_op(clip, 'color', 0.0)
    assert (grey_out[..., 0] == grey_out[..., 1]).all()
    np.testing.assert_array_equal(
        apply_randaugment_op(clip, 'sharpness', 1.0), clip)


def test_autocontrast_uses_clip_statistics():
    a = np.full((1, 4, 4, 3), 50, np.uint8)
    a[0, 0, 0] = 100
    b = np.full((1, 4, 4, 3), 150, np.uint8)
    out = apply_randaugment_op(np.concatenate([a, b]), 'autocontrast')
    assert out[0].min() == 0 and out[1].max() == 255
    assert out[0, 0, 0, 0] == round((100 - 50) * 255 / 100)


def test_equalize_is_monotone_and_full_range():
    clip = np.random.default_rng(0).integers(
        60, 120, (2, 16, 16, 3), dtype=np.uint8)
    out = apply_randaugment_op(clip, 'equalize')
    assert out.min() == 0 and out.max() == 255
    for c in range(3):
        order = np.argsort(clip[..., c].ravel(), kind='stable')
        assert (np.diff(out[..., c].ravel()[order].astype(int)) >= 0).all()


def test_geometric_ops():
    clip = np.random.default_rng(0).integers(
        0, 256, (2, 20, 30, 3), dtype=np.uint8)
    for name in ('rotate', 'shear_x', 'shear_y', 'translate_x'):
        np.testing.assert_array_equal(
            apply_randaugment_op(clip, name, 0.0), clip)
    out = apply_randaugment_op(clip, 'translate_x', 4.0, fill=7)
    np.testing.assert_array_equal(out[:, :, 4:], clip[:, :, :-4])
    assert (out[:, :, :4] == 7).all()
    out = apply_randaugment_op(clip, 'translate_y', -3.0)
    np.testing.assert_array_equal(out[:, :-3], clip[:, 3:])


def test_rand_augment_ops_and_determinism():
    clip = same_frames(2, 32, 32)
    out1, ops1 = rand_augment(clip, np.random.default_rng(7), num_ops=2)
    out2, ops2 = rand_augment(clip, np.random.default_rng(7), num_ops=2)
    np.testing.assert_array_equal(out1, out2)
    assert ops1 == ops2 and len(ops1) == 2
    assert all(name in RANDAUGMENT_OPS for name, _ in ops1)
    np.random.seed(0)
    res = TRANSFORMS.build(dict(type='VideoRandAugment'))(dict(imgs=clip))
    assert len(res['randaugment']) == 2 and all_frames_equal(res['imgs'])
    seen = set()
    for seed in range(60):
        seen.update(n for n, _ in rand_augment(clip, seed, 2)[1])
    assert seen == set(RANDAUGMENT_OPS)
    with pytest.raises(ValueError, match='magnitude'):
        VideoRandAugment(magnitude=31)
    with pytest.raises(ValueError, match='subset'):
        VideoRandAugment(ops=('invert', ))


def test_frame_transforms_check_shapes():
    bad = np.zeros((4, 8, 8), np.uint8)
    for t in (VideoRandomResizedCrop(8), VideoFlip(), VideoTextOverlay(1.0),
              VideoLogoOverlay(1.0), VideoGaussianBlur(1.0),
              VideoRandAugment()):
        with pytest.raises(ValueError, match=r'\[T, H, W, 3\]'):
            t(dict(imgs=bad))
    assert math.isclose(VideoRandomResizedCrop().ratio[0], 0.75)
