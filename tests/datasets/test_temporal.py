"""Tests of the temporal transformations (METHOD section 1)."""
import numpy as np
import pytest
from mmaction.registry import TRANSFORMS

from hapvr_mm.datasets.transforms.temporal import (
    BLACK, NOISE, PENDING_KEY, TEMPORAL_TRANSFORMS, MaterializeFrames,
    RandomTemporalCrop, RandomTemporalTransform, choose_temporal_transform,
    fast_forward, gather_frames, materialize_frames, pause,
    random_temporal_crop, random_temporal_transform, reverse, shuffle_dropout,
    slow_motion, temporal_crop_indices)


def runs(seq):
    """Maximal runs of consecutive increasing integers, as lists."""
    out = [[seq[0]]]
    for v in seq[1:]:
        if v == out[-1][-1] + 1:
            out[-1].append(v)
        else:
            out.append([v])
    return out


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
    out = shuffle_dropout(
        idx, np.random.default_rng(0), shuffle_prob=0.0, drop_prob=0.0)
    np.testing.assert_array_equal(out, idx)


def test_shuffle_dropout_segments_are_shuffled_runs():
    n, lengths, shuffled = 300, [], 0
    for seed in range(20):
        out = shuffle_dropout(
            np.arange(n),
            np.random.default_rng(seed),
            shuffle_prob=1.0,
            drop_prob=0.0)
        assert sorted(out.tolist()) == list(range(n))  # a permutation
        shuffled += int(not np.array_equal(out, np.arange(n)))
        for run in runs(out.tolist()):
            if run[-1] != n - 1:  # the last segment may be short
                lengths.append(len(run))
    assert shuffled == 20
    # segments of [4, 16); adjacent segments can merge by chance, rarely
    lengths = np.array(lengths)
    assert lengths.min() >= 4
    assert np.mean(lengths == 16) < 0.02  # about 0.08 if 16 were allowed
    assert np.mean(lengths >= 16) < 0.06
    assert {4, 15} <= set(lengths)


def test_shuffle_dropout_replaced_and_removed_frames():
    idx = np.arange(40)
    black = shuffle_dropout(
        idx,
        0,
        shuffle_prob=0.0,
        drop_prob=1.0,
        remove_prob=0.0,
        noise_prob=0.0)
    np.testing.assert_array_equal(black, np.full(40, BLACK))
    noise = shuffle_dropout(
        idx,
        0,
        shuffle_prob=0.0,
        drop_prob=1.0,
        remove_prob=0.0,
        noise_prob=1.0)
    np.testing.assert_array_equal(noise, np.full(40, NOISE))
    # everything removed: the input comes back unchanged
    gone = shuffle_dropout(idx, 0, drop_prob=1.0, remove_prob=1.0)
    np.testing.assert_array_equal(gone, idx)


def test_shuffle_dropout_rates():
    n, seeds = 2000, 10
    removed = black = noise = 0
    for seed in range(seeds):
        out = shuffle_dropout(np.arange(n), seed, shuffle_prob=0.0)
        removed += n - out.size
        black += int((out == BLACK).sum())
        noise += int((out == NOISE).sum())
        kept = out[out >= 0]
        assert (np.diff(kept) > 0).all()  # no shuffle: order kept
    total = n * seeds
    # p(mark) 0.3: removed 0.15, black 0.075, noise 0.075 of the frames
    assert abs(removed / total - 0.15) < 0.04
    assert abs(black / total - 0.075) < 0.03
    assert abs(noise / total - 0.075) < 0.03


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
def test_fast_forward_keeps_every_kth():
    seen = set()
    for seed in range(30):
        out = fast_forward(np.arange(56), seed)
        k = int(out[1] - out[0])
        assert k in (2, 3) and 0 <= out[0] < k
        np.testing.assert_array_equal(np.diff(out), k)
        assert out.size == len(range(int(out[0]), 56, k))
        seen.add(k)
    assert seen == {2, 3}
    out = fast_forward(np.arange(10), 0, speeds=(5, ))
    np.testing.assert_array_equal(np.diff(out), 5)


def test_slow_motion_and_reverse():
    idx = np.array([3, 1, 4, 1, 5])
    out = slow_motion(idx)
    assert out.size == 10
    np.testing.assert_array_equal(out[0::2], idx)
    np.testing.assert_array_equal(out[1::2], idx)
    np.testing.assert_array_equal(reverse(idx), [5, 1, 4, 1, 3])


def test_pause_repeats_one_frame():
    window, seen = 28, set()
    for seed in range(60):
        out = pause(np.arange(56), seed, max_repeat=window // 4)
        extra = out.size - 56
        assert 1 <= extra <= window // 4
        np.testing.assert_array_equal(np.unique(out), np.arange(56))
        rep = np.flatnonzero(np.diff(out) == 0)
        # one frozen frame, shown extra + 1 times in a row
        assert rep.size == extra and (np.diff(rep) == 1).all()
        np.testing.assert_array_equal(np.delete(out, rep), np.arange(56))
        seen.add(extra)
    assert seen == set(range(1, 8))


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
            assert 57 <= out.size <= 56 + 7
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
        assert 33 <= imgs.shape[0] <= 36


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
