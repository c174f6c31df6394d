"""Fast similarity paths equal the direct formulations (values, gradients)."""
import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401
from hapvr_mm.models.similarity.chamfer import (aggregate, frame_similarity,
                                                frame_similarity_dense)
from hapvr_mm.models.similarity.fast_chamfer import (
    auto_chunk, native_bfloat16, region_product_dtype,
    self_topk_chamfer_frame_similarity, topk_chamfer_frame_similarity)

DT = torch.float64


def grads(out, inputs, weight):
    return torch.autograd.grad((out * weight).sum(), inputs)


@pytest.mark.parametrize('k', [1, 2, 4])
@pytest.mark.parametrize('chunk', [None, 1, 2])
@pytest.mark.parametrize('recompute', [False, True])
def test_topk_chamfer_equals_dense(k, chunk, recompute):
    torch.manual_seed(k)
    q = torch.randn(2, 5, 4, 6, dtype=DT, requires_grad=True)
    t = torch.randn(3, 7, 4, 6, dtype=DT, requires_grad=True)
    ref = frame_similarity_dense(q, t, 'topk_chamfer', k / 4)
    out = topk_chamfer_frame_similarity(q, t, k, chunk, recompute)
    assert out.shape == (2, 3, 5, 7)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    w = torch.randn_like(ref)
    for a, b in zip(grads(out, (q, t), w), grads(ref, (q, t), w)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize('k', [1, 3])
@pytest.mark.parametrize('chunk', [None, 1, 2, 3])
@pytest.mark.parametrize('recompute', [False, True])
def test_self_topk_chamfer_equals_dense(k, chunk, recompute):
    torch.manual_seed(10 + k)
    x = torch.randn(5, 6, 4, 6, dtype=DT, requires_grad=True)
    ref = frame_similarity_dense(x, x, 'topk_chamfer', k / 4)
    out = self_topk_chamfer_frame_similarity(x, k, chunk, recompute)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    w = torch.randn_like(ref)
    torch.testing.assert_close(
        grads(out, (x, ), w)[0], grads(ref, (x, ), w)[0], atol=1e-12, rtol=0)


def test_frame_similarity_dispatch_and_no_grad():
    torch.manual_seed(3)
    x = torch.randn(3, 5, 9, 8, dtype=DT)
    y = torch.randn(2, 4, 9, 8, dtype=DT)
    for mode in ('topk_chamfer', 'chamfer'):
        torch.testing.assert_close(
            frame_similarity(x, x, mode), frame_similarity_dense(x, x, mode))
        with torch.inference_mode():
            torch.testing.assert_close(
                frame_similarity(x, y, mode, chunk_size=1),
                frame_similarity_dense(x, y, mode))


def test_auto_chunk_and_bad_args():
    assert auto_chunk(540, 540, budget=540 * 540 * 3) == 3
    assert auto_chunk(10**6, 10**6) == 1
    x = torch.zeros(2, 3, 4, 5)
    with pytest.raises(ValueError, match='k must be'):
        topk_chamfer_frame_similarity(x, x, 5)
    with pytest.raises(ValueError, match=r'\[N, T, R, D\]'):
        topk_chamfer_frame_similarity(x[0], x)
    with pytest.raises(ValueError, match='chunk_size'):
        self_topk_chamfer_frame_similarity(x, 1, -1)
    with pytest.raises(ValueError, match='chunk_size'):
        MODELS.build(dict(type='SimilarityHead', dims=5, chunk_size=0))
    with pytest.raises(ValueError, match='comparator_keep_budget'):
        MODELS.build(
            dict(type='SimilarityHead', dims=5, comparator_keep_budget=-1))


def direct_comparator(comp, maps, rows=None, cols=None):
    """The comparator as docs/method.md lists it: mask after every layer."""
    from hapvr_mm.models.similarity.video_comparator import pool_mask

    def apply(x):
        if rows is None:
            return x
        return x * (rows[:, None, :, None] & cols[:, None, None, :])

    x = apply(maps.unsqueeze(1))
    x = F.max_pool2d(apply(F.relu(comp.conv1(x))), 2)
    if rows is not None:
        rows, cols = pool_mask(rows), pool_mask(cols)
    x = apply(x)
    x = F.max_pool2d(apply(F.relu(comp.conv2(x))), 2)
    if rows is not None:
        rows, cols = pool_mask(rows), pool_mask(cols)
    x = apply(x)
    x = apply(F.relu(comp.conv3(x)))
    return apply(comp.fconv(x)).squeeze(1)


def build_head(**kw):
    cfg = dict(type='SimilarityHead', dims=8)
    cfg.update(kw)
    head = MODELS.build(cfg).double()
    for conv in (head.comparator.conv1, head.comparator.conv2,
                 head.comparator.conv3, head.comparator.fconv):
        torch.nn.init.normal_(conv.bias, std=0.1)
    return head


def direct_head(head, x, mask):
    """Direct all-pairs formulation of the head in training range."""
    n, t = x.shape[:2]
    fsim = frame_similarity_dense(x, x, head.f2f_mode, head.f2f_topk_rate)
    rows = mask[:, None].expand(n, n, t).reshape(n * n, t)
    cols = mask[None].expand(n, n, t).reshape(n * n, t)
    raw = direct_comparator(head.comparator, fsim.reshape(n * n, t, t), rows,
                            cols)
    from hapvr_mm.models.similarity.video_comparator import pool_mask
    prow, pcol = pool_mask(pool_mask(rows)), pool_mask(pool_mask(cols))
    sim = aggregate(
        F.hardtanh(raw) / 2 + 0.5, head.v2v_mode, head.v2v_topk_rate, prow,
        pcol).view(n, n)
    return sim, raw, fsim


@pytest.mark.parametrize('kw', [
    dict(),
    dict(chunk_size=2, comparator_chunk=3),
    dict(chunk_size=2, comparator_chunk=3, comparator_keep_budget=0),
    dict(chunk_size=1, recompute=True, comparator_chunk=5),
    dict(comparator_chunk=None),
])
def test_head_training_step_equals_direct(kw):
    torch.manual_seed(4)
    head = build_head(**kw)
    feats = F.normalize(torch.randn(4, 9, 9, 8, dtype=DT), dim=-1)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[1, 6:] = False
    mask[3, 5:] = False
    params = [p for p in head.parameters()]

    x = head.index(feats)
    out = head(x, x, mask, mask, train=True)
    sim, raw, fsim = direct_head(head, head.index(feats), mask)
    torch.testing.assert_close(out['similarity'], sim, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        out['raw'].flatten(0, 1), raw, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        out['frame_similarity'], fsim, atol=1e-12, rtol=0)
    w = torch.randn_like(sim)
    loss_ours = (out['similarity'] * w).sum() + out['raw'].abs().sum()
    loss_ref = (sim * w).sum() + raw.abs().sum()
    g1 = torch.autograd.grad(loss_ours, params)
    g2 = torch.autograd.grad(loss_ref, params)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_head_eval_masks_and_query_batches():
    torch.manual_seed(5)
    head = build_head()
    q = head.index(F.normalize(torch.randn(3, 12, 9, 8, dtype=DT), dim=-1))
    t = head.index(F.normalize(torch.randn(4, 10, 9, 8, dtype=DT), dim=-1))
    qm = torch.ones(3, 12, dtype=torch.bool)
    tm = torch.ones(4, 10, dtype=torch.bool)
    qm[0, 8:] = False
    tm[2, 5:] = False
    with torch.inference_mode():
        out = head(q, t, qm, tm)['similarity']
    for a in range(3):
        for b in range(4):
            fs = frame_similarity_dense(q[a:a + 1, qm[a]], t[b:b + 1, tm[b]])
            raw = direct_comparator(head.comparator, fs[0])
            ref = aggregate(F.hardtanh(raw), 'topk_chamfer', 0.03)
            torch.testing.assert_close(out[a, b], ref[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize('size', [(4, 4), (7, 9), (10, 5)])
@pytest.mark.parametrize('channels', [1, 3])
def test_conv_maxpool_equals_max_pool2d(size, channels):
    from hapvr_mm.models.similarity.video_comparator import (conv3x3_maxpool2,
                                                             maxpool2)
    torch.manual_seed(6)
    conv = torch.nn.Conv2d(channels, 5, 3, padding=1).double()
    x = torch.randn(2, channels, *size, dtype=DT, requires_grad=True)
    ours = conv3x3_maxpool2(x, conv)
    ref = F.max_pool2d(conv(x), 2)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(maxpool2(conv(x)), ref, atol=0, rtol=0)
    w = torch.randn_like(ref)
    params = [x, conv.weight, conv.bias]
    for a, b in zip(grads(ours, params, w), grads(ref, params, w)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_eval_comparator_chunks_keep_scores(monkeypatch):
    from hapvr_mm.models.heads import similarity_head
    torch.manual_seed(7)
    head = build_head()
    q = head.index(F.normalize(torch.randn(2, 12, 9, 8, dtype=DT), dim=-1))
    t = head.index(F.normalize(torch.randn(5, 10, 9, 8, dtype=DT), dim=-1))
    tm = torch.ones(5, 10, dtype=torch.bool)
    tm[1, 6:] = False
    qm = torch.ones(2, 12, dtype=torch.bool)
    with torch.inference_mode():
        whole = head(q, t, qm, tm)
        # 32 channels x 12 x 10 = 3840 values per map: chunks of 3 maps
        monkeypatch.setattr(similarity_head, 'EVAL_COMPARATOR_BUDGET',
                            3 * 3840)
        calls = []
        orig = head.comparator.forward
        monkeypatch.setattr(head.comparator, 'forward',
                            lambda *a: calls.append(a[0].shape[0]) or orig(*a))
        chunked = head(q, t, qm, tm)
    assert calls == [3, 3, 3, 1]
    torch.testing.assert_close(
        chunked['similarity'], whole['similarity'], atol=0, rtol=0)
    torch.testing.assert_close(chunked['raw'], whole['raw'], atol=0, rtol=0)


@pytest.mark.parametrize('size', [(4, 4), (7, 9), (10, 5)])
@pytest.mark.parametrize('channels', [1, 3])
def test_conv_maxpool_relu_training_path_equals_direct(size, channels):
    """The lean autograd function: values and gradients of relu(pool(conv))."""
    from hapvr_mm.models.similarity.video_comparator import \
        conv3x3_maxpool2_relu
    torch.manual_seed(8)
    conv = torch.nn.Conv2d(channels, 5, 3, padding=1).double()
    x = torch.randn(2, channels, *size, dtype=DT, requires_grad=True)
    ours = conv3x3_maxpool2_relu(x, conv)
    ref = F.max_pool2d(F.relu(conv(x)), 2)
    assert ours.grad_fn is not None and 'MaxPool2ReLU' in type(
        ours.grad_fn).__name__
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    w = torch.randn_like(ref)
    params = [x, conv.weight, conv.bias]
    for a, b in zip(grads(ours, params, w), grads(ref, params, w)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    # only the weights need gradients (frozen input), and ties in the pool
    x = torch.zeros(1, channels, *size, dtype=DT)
    x[..., ::2, :] = 1.0
    ours = conv3x3_maxpool2_relu(x, conv)
    ref = F.max_pool2d(F.relu(conv(x)), 2)
    w = torch.randn_like(ref)
    params = [conv.weight, conv.bias]
    for a, b in zip(grads(ours, params, w), grads(ref, params, w)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize('frames', [(16, 16), (9, 14)])
def test_comparator_activation_bytes_match_saved_tensors(frames):
    """activation_bytes is what autograd really keeps (the keep budget)."""
    comp = MODELS.build(dict(type='VideoComparator'))
    maps = torch.randn(3, *frames, requires_grad=True)
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = comp(maps)[0]
    shared = {maps.untyped_storage().data_ptr()}
    shared |= {p.untyped_storage().data_ptr() for p in comp.parameters()}
    kept = sum(n for ptr, n in seen.items() if ptr not in shared)
    expected = comp.activation_bytes(*frames) * maps.shape[0]
    assert out.requires_grad
    assert expected * 0.95 <= kept <= expected * 1.05 + 256


def test_conv_maxpool_relu_under_autocast():
    """Under autocast the function computes in the autocast dtype, as the
    convolution would, and returns float32 gradients."""
    from hapvr_mm.models.similarity.video_comparator import \
        conv3x3_maxpool2_relu
    torch.manual_seed(9)
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    x = torch.randn(2, 1, 8, 6, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours = conv3x3_maxpool2_relu(x, conv)
        ref = F.max_pool2d(F.relu(conv(x)), 2)
    assert ours.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)
    g = grads(ours.float(), [x, conv.weight], torch.ones(2, 4, 4, 3))
    r = grads(ref.float(), [x, conv.weight], torch.ones(2, 4, 4, 3))
    for a, b in zip(g, r):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize('budget, checkpointed', [(None, False),
                                                  (1 << 40, False), (0, True)])
def test_comparator_keep_budget_decides_checkpointing(monkeypatch, budget,
                                                      checkpointed):
    """Activations within the budget are kept; above it, checkpointed."""
    import torch.utils.checkpoint as cp
    calls = []
    original = cp.checkpoint

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(cp, 'checkpoint', spy)
    head = build_head(comparator_chunk=2, comparator_keep_budget=budget)
    x = head.index(F.normalize(torch.randn(3, 8, 9, 8, dtype=DT), dim=-1))
    out = head(x, x, train=True)
    assert bool(calls) == checkpointed
    out['similarity'].sum().backward()


@pytest.mark.parametrize('dim', [0, 1, 3])
def test_first_argmax_matches_max_with_ties(dim):
    """The amax-based winner is the first maximum, as torch.max's index."""
    from hapvr_mm.models.similarity.fast_chamfer import _first_argmax
    torch.manual_seed(11)
    m = torch.randint(0, 3, (4, 9, 5, 9), dtype=torch.int64).to(DT)
    top = m.amax(dim=dim, keepdim=True)
    ours = _first_argmax(m, top, dim)
    assert ours.dtype == torch.uint8
    ref = m.max(dim=dim, keepdim=True).indices
    first = (m == top).to(torch.int64).argmax(dim=dim, keepdim=True)
    assert torch.equal(ours.long(), first)
    assert torch.equal(m.gather(dim, ours.long()), m.gather(dim, ref))


@pytest.mark.parametrize('k', [1, 2])
def test_bfloat16_region_products_in_inference(k):
    """bfloat16 region products: close to float32 in inference, and no
    effect where gradients are needed or outside the block."""
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(2, 7, 4, 64, generator=gen), dim=-1)
    t = F.normalize(torch.randn(3, 5, 4, 64, generator=gen), dim=-1)
    ref = topk_chamfer_frame_similarity(q, t, k)
    with region_product_dtype(torch.bfloat16):
        low = topk_chamfer_frame_similarity(q, t, k)
        qg = q.clone().requires_grad_()
        with_grad = topk_chamfer_frame_similarity(qg, t, k)
    assert low.dtype == torch.float32
    diff = (low - ref).abs().max().item()
    # bfloat16 keeps 8 bits: a unit-vector product is off by < 2 ** -8,
    # and not exactly equal (the products really ran in bfloat16)
    assert 0 < diff < 4e-3, diff
    assert torch.equal(with_grad.detach(), ref)
    assert torch.equal(topk_chamfer_frame_similarity(q, t, k), ref)
    with region_product_dtype(torch.float32):
        assert torch.equal(topk_chamfer_frame_similarity(q, t, k), ref)
    with pytest.raises(ValueError, match='float64'):
        with region_product_dtype(torch.float64):
            pass
    assert isinstance(native_bfloat16(), bool)
