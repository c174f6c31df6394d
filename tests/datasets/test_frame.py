"""Tests of the frame transforms (docs/method.md section 1) and RandAugment.
"""
import math

import numpy as np
import pytest
from mmaction.registry import TRANSFORMS

# yapf: disable
from hapvr_mm.datasets.transforms.frame import (LOGO_SHAPES, VideoFlip,
                                                VideoGaussianBlur,
                                                VideoLogoOverlay,
                                                VideoRandomResizedCrop,
                                                VideoTextOverlay,
                                                gaussian_blur, hflip,
                                                logo_overlay, per_frame_apply,
                                                random_resized_crop_params,
                                                render_logo_overlay,
                                                render_text_overlay,
                                                resized_crop, text_overlay)
# yapf: enable
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
def test_text_overlay_one_draw_on_given_frames_not_in_place():
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


def test_text_size_opacity_and_fit():
    """Font size 0.2-0.5 of the short side, opacity 0.7-1, inside."""
    rng = np.random.default_rng(0)
    sizes, opac, lengths = [], [], []
    for _ in range(1500):
        over = render_text_overlay(40, 64, rng)
        sizes.append(over['font_size'] / 40)
        alpha = over['alpha']
        assert alpha.shape == (40, 64) and over['text']
        opac.append(alpha.max())
        lengths.append(len(over['text']))
    sizes = np.array(sizes)
    assert sizes.min() >= 0.2 - 1 / 40 and sizes.max() <= 0.5
    assert sizes.min() < 0.22 and sizes.max() > 0.47
    assert abs(sizes.mean() - 0.35) < 0.02
    opac = np.array(opac)
    assert opac.min() >= 0.69 and opac.max() <= 1.0 and opac.min() < 0.72
    # caption length uniform in [1, longest that fits]: short ones too
    assert min(lengths) == 1 and max(lengths) >= 4


def test_mean_overlay_coverage():
    """Overlay pixels per altered frame: about 4 % (text), 9 % (emoji)."""
    rng = np.random.default_rng(0)
    text = [(render_text_overlay(224, 224, rng)['alpha'] > 0).mean()
            for _ in range(400)]
    assert 0.03 < np.mean(text) < 0.05
    frame = np.zeros((1, 96, 96, 3), np.uint8)
    logo = []
    for _ in range(1500):
        out, (_, _, side) = logo_overlay(frame, rng)
        assert 0.2 * 96 - 1 <= side <= 0.5 * 96
        logo.append((out != 0).any(-1).mean())
    assert 0.075 < np.mean(logo) < 0.105


def test_logo_overlay_box_and_shapes():
    for name in LOGO_SHAPES:
        logo = render_logo_overlay(24, np.random.default_rng(0), (name, ))
        assert logo['colour'].shape == (24, 24, 3)
        assert 0.0 <= logo['mask'].min() and logo['mask'].max() <= 1.0
        assert logo['mask'].sum() > 10
        assert logo['shapes'][0] == name
    clip = same_frames(3)
    opac = []
    for seed in range(30):
        out, (top, left, side) = logo_overlay(clip,
                                              np.random.default_rng(seed))
        assert 0.2 * 64 - 1 <= side <= 0.5 * 64
        assert all_frames_equal(out)
        diff = (out != clip).any(axis=(0, 3))
        outside = diff.copy()
        outside[top:top + side, left:left + side] = False
        assert diff.any() and not outside.any()
    # one draw on a black and a white frame: white - black = 255 (1 - a)
    pair = np.stack(
        [np.zeros((64, 64, 3), np.uint8),
         np.full((64, 64, 3), 255, np.uint8)])
    for seed in range(300):
        out, _ = logo_overlay(pair, np.random.default_rng(seed))
        diff = out[1].astype(int) - out[0].astype(int)
        opac.append(1 - diff.min() / 255)  # the logo's peak opacity
    assert 0.7 - 0.01 <= min(opac) < 0.72 and 0.98 < max(opac) <= 1.0


def test_frame_transforms_are_drawn_per_frame():
    """Decisions and parameters are independent per frame."""
    clip = same_frames(28, 32, 32)
    np.random.seed(0)
    hits = {'text': [], 'logo': [], 'blur': []}
    texts, sigmas = [], []
    for _ in range(100):
        res = VideoTextOverlay(0.3)(dict(imgs=clip))
        res = VideoLogoOverlay(0.3)(res)
        res = VideoGaussianBlur(0.5)(res)
        for key, name in (('overlay_text', 'text'), ('overlay_logo', 'logo'),
                          ('blur_sigma', 'blur')):
            assert len(res[key]) == 28
            hits[name].append([v is not None for v in res[key]])
        texts.append([t for t in res['overlay_text'] if t is not None])
        sigmas.append([s for s in res['blur_sigma'] if s is not None])
        # an altered frame differs from the source, an unaltered one not
        altered = np.array(hits['text'][-1]) | hits['logo'][-1] | \
            hits['blur'][-1]
        for t in range(28):
            if not altered[t]:
                np.testing.assert_array_equal(res['imgs'][t], clip[t])
    for name, p in (('text', 0.3), ('logo', 0.3), ('blur', 0.5)):
        h = np.array(hits[name])  # [views, frames]
        assert abs(h.mean() - p) < 0.03
        # independent frames: P(frame t and t+1) = p^2
        assert abs((h[:, 1:] & h[:, :-1]).mean() - p * p) < 0.03
        # a view mixes altered and unaltered frames (the old per-view rule
        # gave 0 here: all frames or none)
        some = h.any(1) & ~h.all(1)
        assert some.mean() > 0.95
    both = np.array(hits['text']) & np.array(hits['logo'])
    assert abs(both.mean() - 0.09) < 0.02  # text and logo independent
    # own parameters per frame: captions and sigmas differ within a view
    assert np.mean([len(set(t)) == len(t) for t in texts if t]) > 0.95
    assert np.mean([len(set(s)) == len(s) for s in sigmas if s]) == 1.0
    assert all(0.1 <= s <= 2.0 for v in sigmas for s in v)


def test_per_view_option_and_helper():
    clip = same_frames(6, 32, 32)
    np.random.seed(0)
    for cls in (VideoTextOverlay, VideoLogoOverlay, VideoGaussianBlur):
        res = cls(1.0, per_frame=False)(dict(imgs=clip))
        assert all_frames_equal(res['imgs'])
        res = cls(0.0)(dict(imgs=clip))
        assert res['imgs'] is clip
    calls = []

    def mark(frames, rng):
        calls.append(frames.shape[0])
        return frames + 1, 'x'

    out, info = per_frame_apply(clip, 0.5, mark, np.random.default_rng(0))
    hit = [i == 'x' for i in info]
    assert calls == [1] * sum(hit) and 0 < sum(hit) < 6
    for t in range(6):
        np.testing.assert_array_equal(out[t], clip[t] + int(hit[t]))
    out, info = per_frame_apply(
        clip, 1.0, mark, np.random.default_rng(0), per_frame=False)
    assert calls[-1] == 6 and info == ['x'] * 6


# --------------------------------------------------------------------- blur
def test_gaussian_blur():
    const = np.full((2, 16, 16, 3), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(const, 1.5), const)
    clip = same_frames(3, 32, 32)
    np.testing.assert_array_equal(gaussian_blur(clip, 0.1), clip)
    out = gaussian_blur(clip, 2.0)
    assert all_frames_equal(out)
    assert out.astype(float).std() < 0.5 * clip.astype(float).std()
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
