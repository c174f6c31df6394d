"""Aggregations of docs/method.md section 3 against loop transcriptions."""
import math

import pytest
import torch

from hapvr_mm.models.similarity import (aggregate, frame_similarity,
                                        frame_similarity_dense, num_topk,
                                        topk_mean)


@pytest.fixture(autouse=True)
def float64_default():
    """Run this module's tests in float64 without leaking the default."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def py_round(x):
    return int(round(x))


def loop_topk_mean(row, rate):
    k = max(py_round(len(row) * rate), 1)
    return sum(sorted(row, reverse=True)[:k]) / k


def loop_frame_sim(q, t, mode, rate):
    a, tq, r, _ = q.shape
    b, tt, r2, _ = t.shape
    out = torch.zeros(a, b, tq, tt)
    for x in range(a):
        for y in range(b):
            for i in range(tq):
                for j in range(tt):
                    s = [[float(q[x, i, o] @ t[y, j, p]) for p in range(r2)]
                         for o in range(r)]
                    if mode == 'max':
                        v = max(max(row) for row in s)
                    elif mode == 'average':
                        v = sum(map(sum, s)) / (r * r2)
                    else:
                        rr = rate if mode == 'topk_chamfer' else 1 / r2 / 2
                        if mode == 'chamfer':
                            v = sum(max(row) for row in s) / r
                        else:
                            v = sum(loop_topk_mean(row, rr) for row in s) / r
                    out[x, y, i, j] = v
    return out


def loop_video_agg(sim, mode, rate, rows, cols):
    """Aggregate one map sim[rows, cols] over the valid cells only."""
    vals = [[float(sim[i, j]) for j in range(sim.shape[1]) if cols[j]]
            for i in range(sim.shape[0]) if rows[i]]
    if mode == 'max':
        return max(max(r) for r in vals)
    if mode == 'average':
        return sum(map(sum, vals)) / sum(map(len, vals))
    if mode == 'chamfer':
        return sum(max(r) for r in vals) / len(vals)
    return sum(loop_topk_mean(r, rate) for r in vals) / len(vals)


def test_num_topk():
    assert num_topk(9, 0.1) == 1
    assert num_topk(28, 0.35) == 10
    assert num_topk(5, 0.03) == 1
    assert num_topk(100, 0.03) == 3


@pytest.mark.parametrize('mode', ['topk_chamfer', 'chamfer', 'max', 'average'])
@pytest.mark.parametrize('rate', [0.1, 0.4])
def test_frame_similarity_matches_loop(mode, rate):
    torch.manual_seed(0)
    q = torch.randn(2, 3, 4, 5)
    t = torch.randn(3, 2, 5, 5)
    ref = loop_frame_sim(q, t, mode, rate)
    out = frame_similarity(q, t, mode, rate)
    assert out.shape == (2, 3, 3, 2)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        frame_similarity(q, t, mode, rate, chunk_size=2),
        ref,
        atol=1e-12,
        rtol=0)
    torch.testing.assert_close(
        frame_similarity_dense(q, t, mode, rate), ref, atol=1e-12, rtol=0)


def test_frame_similarity_gradients_chunked_equal_dense():
    torch.manual_seed(1)
    q = torch.randn(3, 4, 9, 6, requires_grad=True)
    t = torch.randn(5, 3, 9, 6, requires_grad=True)
    w = torch.randn(3, 5, 4, 3)
    g1 = torch.autograd.grad((frame_similarity(q, t, chunk_size=2) * w).sum(),
                             (q, t))
    g2 = torch.autograd.grad((frame_similarity_dense(q, t) * w).sum(), (q, t))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize('mode', ['topk_chamfer', 'chamfer', 'max', 'average'])
def test_aggregate_with_masks_matches_loop(mode):
    torch.manual_seed(2)
    sim = torch.randn(4, 6, 40)
    rows = torch.rand(4, 6) > 0.3
    cols = torch.rand(4, 40) > 0.2
    rows[:, 0] = True
    cols[:, 0] = True
    out = aggregate(sim, mode, 0.1, rows, cols)
    for b in range(4):
        ref = loop_video_agg(sim[b], mode, 0.1, rows[b], cols[b])
        assert math.isclose(float(out[b]), ref, abs_tol=1e-12)
    full = aggregate(sim, mode, 0.1)
    for b in range(4):
        ref = loop_video_agg(sim[b], mode, 0.1, [1] * 6, [1] * 40)
        assert math.isclose(float(full[b]), ref, abs_tol=1e-12)


def test_topk_mean_mask_equals_cropping():
    torch.manual_seed(3)
    x = torch.randn(5, 30)
    mask = torch.zeros(5, 30, dtype=torch.bool)
    mask[:, :17] = True
    torch.testing.assert_close(
        topk_mean(x, 0.2, mask=mask), topk_mean(x[:, :17], 0.2))


def test_bad_inputs():
    with pytest.raises(ValueError, match='aggregation'):
        aggregate(torch.zeros(2, 3, 3), 'median')
    with pytest.raises(ValueError, match=r'\[N, T, R, D\]'):
        frame_similarity(torch.zeros(3, 4, 5), torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match='feature dims'):
        frame_similarity(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 5))
