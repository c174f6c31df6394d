"""Tests of the temporal transformations (docs/method.md section 1)."""
import numpy as np
import pytest
from mmaction.registry import TRANSFORMS

# yapf: disable
from hapvr_mm.datasets.transforms.temporal import (BLACK, NOISE, PENDING_KEY,
                                                   TEMPORAL_TRANSFORMS,
                                                   MaterializeFrames,
                                                   RandomTemporalCrop,
                                                   RandomTemporalTransform,
                                                   choose_temporal_transform,
                                                   fast_forward, gather_frames,
                                                   materialize_frames, pause,
                                                   random_temporal_crop,
                                                   random_temporal_transform,
                                                   reverse, shuffle_dropout,
                                                   slow_motion,
                                                   temporal_crop_indices)

# yapf: enable


def index_frames(n, h=4, w=4):
    """Frames whose every pixel holds the frame's index (n <= 250)."""
    return np.broadcast_to(
        np.arange(n, dtype=np.uint8)[:, None, None, None],
        (n, h, w, 3)).copy()


def decode(frames):
    """Per-frame value of frames made by ``index_frames``."""
    assert (frames == frames[:, :1, :1, :1]).all()
    return frames[:, 0, 0, 0].astype(int)


# ------------------------------------------------------------ shuffle-dropout
def test_shuffle_dropout_identity_without_shuffle_or_drop():
    idx = np.arange(56)
    for seed in range(30):
        out, info = shuffle_dropout(
            idx, seed, shuffle_prob=0.0, drop_prob=0.0, return_info=True)
        L = info['seg_len']
        assert 4 <= L < 16 and info['num_segments'] == 56 // L
        # the tail that does not fill a segment is dropped
        assert info['dropped_tail'] == 56 % L
        np.testing.assert_array_equal(out, idx[:56 - 56 % L])


def test_shuffle_dropout_one_segment_length_per_view():
    lengths = []
    for seed in range(2400):
        out, info = shuffle_dropout(
            np.arange(56),
            seed,
            shuffle_prob=1.0,
            drop_prob=0.0,
            return_info=True)
        L = info['seg_len']
        lengths.append(L)
        blocks = out.reshape(-1, L)
        # every segment is a run of L consecutive frames starting at a
        # multiple of L: equal segments, permuted
        assert (blocks % L == np.arange(L)).all()
        assert (np.diff(blocks, axis=1) == 1).all()
        assert sorted(out.tolist()) == list(range(56 - 56 % L))
    # L uniform over 4..15 (12 values, 200 expected each)
    counts = np.bincount(lengths, minlength=16)[4:]
    assert counts.sum() == 2400 and (abs(counts - 200) < 60).all()
    # a list shorter than L is one segment, kept whole
    out, info = shuffle_dropout(np.arange(3), 0, return_info=True)
    assert info['seg_len'] == 3 and info['num_segments'] == 1
    np.testing.assert_array_equal(out, np.arange(3))


def test_shuffle_dropout_code_rule():
    """Codes 0/1/2; applied only when 0 < sum(codes) < #segments."""
    applied_seen = {True: 0, False: 0}
    mixed = fills = noise = 0
    for seed in range(3000):
        out, info = shuffle_dropout(
            np.arange(56), seed, shuffle_prob=0.0, return_info=True)
        codes, L = info['codes'], info['seg_len']
        assert set(codes.tolist()) <= {0, 1, 2}
        applied = 0 < codes.sum() < codes.size
        assert info['applied'] == applied
        applied_seen[applied] += 1
        segs = np.arange(56 - 56 % L).reshape(-1, L)
        if not applied:
            np.testing.assert_array_equal(out, segs.reshape(-1))
            continue
        kept = out.reshape(-1, L)
        np.testing.assert_array_equal(kept.shape[0], (codes != 1).sum())
        for seg, code, got in zip(segs[codes != 1], codes[codes != 1], kept):
            if code == 0:
                np.testing.assert_array_equal(got, seg)
            else:  # each frame black or noise on its own
                assert np.isin(got, (BLACK, NOISE)).all()
                fills += got.size
                noise += int((got == NOISE).sum())
                mixed += int(len(set(got.tolist())) == 2)
    assert applied_seen[True] > 1000 and applied_seen[False] > 500
    assert abs(noise / fills - 0.5) < 0.03
    assert mixed > 100  # black and noise frames in one segment
    # the quirk: every segment removed, or all replaced, leaves the view
    for kw in (dict(remove_prob=1.0), dict(remove_prob=0.0)):
        out = shuffle_dropout(
            np.arange(56), 0, shuffle_prob=0.0, drop_prob=1.0, **kw)
        assert np.isin(out, (BLACK, NOISE)).sum() == 0


def expected_replaced_frames(T=56, lengths=range(4, 16), p=(0.7, 0.15, 0.15)):
    """Exact E[#black/noise frames] of the rule on a list of T frames."""
    from math import comb
    total = 0.0
    for L in lengths:
        n = T // L
        for n1 in range(n + 1):
            for n2 in range(n + 1 - n1):
                prob = (
                    comb(n, n1) * comb(n - n1, n2) * p[0]**(n - n1 - n2) *
                    p[1]**n1 * p[2]**n2)
                if 0 < n1 + 2 * n2 < n:
                    total += prob * n2 * L / len(lengths)
    return total


def test_black_and_noise_frames_per_view():
    """4000 seeded views: the authors' count of black/noise frames."""
    rng = np.random.default_rng(0)
    before, after = [], []
    for _ in range(4000):
        out = shuffle_dropout(np.arange(56), rng)
        before.append(np.isin(out, (BLACK, NOISE)).sum())
        view = random_temporal_crop(out, 28, rng)
        after.append(np.isin(view, (BLACK, NOISE)).sum())
    exact = expected_replaced_frames()
    assert abs(exact - 5.99) < 0.01  # of 56 frames
    assert abs(np.mean(before) - exact) < 0.3  # SE about 0.1
    # per 28-frame strong view: about 3.6 (the per-segment rule gave 4.9)
    assert 3.3 < np.mean(after) < 3.9


def test_gather_frames_black_and_noise():
    frames = index_frames(5, 16, 16) + 100
    out = gather_frames(frames, np.array([4, BLACK, NOISE, 0, NOISE]), 0)
    assert out.shape == (5, 16, 16, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], frames[4])
    np.testing.assert_array_equal(out[3], frames[0])
    assert (out[1] == 0).all()
    for k in (2, 4):
        assert out[k].std() > 50  # uniform noise: std about 74
    assert not np.array_equal(out[2], out[4])  # independent noise frames
    with pytest.raises(ValueError, match=r'\[0, 5\)'):
        gather_frames(frames, np.array([5]))
    with pytest.raises(ValueError, match='T, H, W, 3'):
        gather_frames(frames[0], np.array([0]))


# ---------------------------------------------------------------- other ops
def test_fast_forward_keeps_every_kth_from_the_first():
    seen = set()
    for seed in range(30):
        out = fast_forward(np.arange(56), seed)
        k = int(out[1] - out[0])
        assert k in (2, 3) and out[0] == 0
        np.testing.assert_array_equal(out, np.arange(0, 56, k))
        seen.add(k)
    assert seen == {2, 3}
    out = fast_forward(np.arange(10), 0, speeds=(5, ))
    np.testing.assert_array_equal(out, [0, 5])


def test_slow_motion_and_reverse():
    idx = np.array([3, 1, 4, 1, 5])
    out = slow_motion(idx)
    assert out.size == 10
    np.testing.assert_array_equal(out[0::2], idx)
    np.testing.assert_array_equal(out[1::2], idx)
    np.testing.assert_array_equal(reverse(idx), [5, 1, 4, 1, 3])


def test_pause_repeats_one_frame():
    window, extras, positions = 28, [], []
    for seed in range(3500):
        out = pause(np.arange(56), seed, window // 4)
        extra = out.size - 56
        extras.append(extra)
        np.testing.assert_array_equal(np.unique(out), np.arange(56))
        rep = np.flatnonzero(np.diff(out) == 0)
        # one frozen frame, shown extra + 1 times in a row
        assert rep.size == extra and (np.diff(rep) == 1).all()
        np.testing.assert_array_equal(np.delete(out, rep), np.arange(56))
        if extra:
            positions.append(int(out[rep[0]]))
    # 0 to W/4 - 1 extra copies, uniformly (500 expected each)
    counts = np.bincount(extras, minlength=7)
    assert counts.size == 7 and (abs(counts - 500) < 90).all()
    assert abs(np.mean(extras) - 3.0) < 0.1
    # any frame but the last can be paused
    assert min(positions) == 0 and max(positions) == 54
    np.testing.assert_array_equal(pause(np.arange(1), 0, 1), [0])


# ------------------------------------------------------------------ chooser
def test_chooser_empirical_probabilities():
    rng = np.random.default_rng(0)
    probs = (0.5, 0.1, 0.1, 0.1, 0.1)
    draws = np.array(
        [choose_temporal_transform(probs, rng) for _ in range(20000)])
    for k, p in enumerate(probs):
        assert abs((draws == k).mean() - p) < 0.015
    assert abs((draws == -1).mean() - 0.1) < 0.015
    with pytest.raises(ValueError, match='sum to <= 1'):
        choose_temporal_transform((0.6, 0.6), rng)


def test_random_temporal_transform_names_and_outputs():
    rng = np.random.default_rng(1)
    names = []
    for _ in range(300):
        out, name = random_temporal_transform(np.arange(56), 28, rng)
        names.append(name)
        if name == 'reverse':
            np.testing.assert_array_equal(out, np.arange(56)[::-1])
        elif name == 'slow_motion':
            assert out.size == 112
        elif name == 'none':
            np.testing.assert_array_equal(out, np.arange(56))
        elif name == 'pause':
            assert 56 <= out.size <= 56 + 6
    assert set(names) == set(TEMPORAL_TRANSFORMS) | {'none'}
    only = random_temporal_transform(
        np.arange(8), 8, 0, probs=dict(reverse=1.0))
    assert only[1] == 'reverse'
    with pytest.raises(ValueError, match='unknown temporal'):
        random_temporal_transform(np.arange(8), 8, 0, probs=dict(spin=0.1))


# --------------------------------------------------------------------- crop
def test_temporal_crop():
    for seed in range(10):
        out = random_temporal_crop(np.arange(56) * 2, 28, seed)
        assert out.size == 28
        np.testing.assert_array_equal(np.diff(out), 2)
        assert 0 <= out[0] <= 2 * 28
    # fewer than W: loop from a random start
    pos = temporal_crop_indices(5, 12, 3, 'loop')
    np.testing.assert_array_equal(pos, (pos[0] + np.arange(12)) % 5)
    pos = temporal_crop_indices(5, 12, 3, 'repeat_last')
    np.testing.assert_array_equal(pos, [0, 1, 2, 3, 4] + [4] * 7)
    with pytest.raises(ValueError, match='pad_mode'):
        temporal_crop_indices(5, 12, 3, 'zeros')
    with pytest.raises(ValueError, match='empty'):
        random_temporal_crop(np.zeros(0, dtype=int), 4)


# ------------------------------------------------------ registered classes
def test_registered_pipeline_is_lazy_and_correct():
    frames = index_frames(32)
    np.random.seed(0)
    res = dict(imgs=frames)
    res = TRANSFORMS.build(
        dict(
            type='RandomTemporalTransform', window=16,
            probs=dict(reverse=1.0)))(
                res)
    res = RandomTemporalCrop(window=16)(res)
    assert res['imgs'] is frames  # nothing gathered yet
    assert res['temporal_transform'] == 'reverse'
    out = MaterializeFrames()(res)
    assert PENDING_KEY not in out
    vals = decode(out['imgs'])
    assert vals.size == 16
    np.testing.assert_array_equal(np.diff(vals), -1)


@pytest.mark.parametrize('cfg, name', [
    (dict(type='ShuffleDropout'), 'shuffle_dropout'),
    (dict(type='FastForward', speeds=(3, )), 'fast_forward'),
    (dict(type='SlowMotion'), 'slow_motion'),
    (dict(type='TemporalReverse'), 'reverse'),
    (dict(type='TemporalPause', window=16), 'pause'),
])
def test_single_op_classes(cfg, name):
    frames = index_frames(32)
    np.random.seed(1)
    res = TRANSFORMS.build(cfg)(dict(imgs=frames))
    assert res['temporal_transform'] == name
    imgs = materialize_frames(res)
    if name == 'fast_forward':
        np.testing.assert_array_equal(np.diff(decode(imgs)), 3)
    elif name == 'slow_motion':
        np.testing.assert_array_equal(
            decode(imgs), np.repeat(np.arange(32), 2))
    elif name == 'reverse':
        np.testing.assert_array_equal(decode(imgs), np.arange(32)[::-1])
    elif name == 'pause':
        assert 32 <= imgs.shape[0] <= 35


def test_classes_are_seeded_by_numpy_global_state():
    frames = index_frames(40)
    t = RandomTemporalTransform(window=20)
    c = RandomTemporalCrop(window=20)
    outs = []
    for _ in range(2):
        np.random.seed(123)
        outs.append(materialize_frames(c(t(dict(imgs=frames)))))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_classes_check_inputs():
    with pytest.raises(ValueError, match='uint8'):
        RandomTemporalCrop(4)(dict(imgs=np.zeros((8, 4, 4, 3), np.float32)))
    with pytest.raises(ValueError, match='sum to <= 1'):
        RandomTemporalTransform(probs=dict(reverse=0.8, pause=0.8))
