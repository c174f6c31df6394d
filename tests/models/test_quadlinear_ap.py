"""QuadLinear-AP losses against loop transcriptions of docs/method.md."""
import pytest
import torch
import torch.nn.functional as F

from hapvr_mm.models.losses.functional import (frame_quadlinear_ap_loss,
                                               quadlinear, quadlinear_ap_loss)
from hapvr_mm.models.losses.quadlinear_ap import (FrameQuadLinearAPLoss,
                                                  QuadLinearAPLoss)

ATOL = 1e-10


# ---------------------------------------------------------------------------
# Loop transcriptions of docs/method.md s. 4 (scalars, python control flow)
# ---------------------------------------------------------------------------
def g_loop(x, sigma):
    if x > 0:
        return 2 * x / sigma + 1
    if x >= -sigma:
        return (x / sigma + 1)**2
    return x * 0


def h_loop(x):
    return 1.0 if x > 0 else 0.0


def list_ap_loop(scores, is_pos, is_neg, sigma, rho, surrogate, temp):
    """AP of one ranked list; None when it has no positive."""
    m = len(scores)
    terms = []
    for j in range(m):
        if not is_pos[j]:
            continue
        rank_pos = 1.0
        rank_all = 1.0
        for k in range(m):
            if k == j:
                continue
            d = scores[k] - scores[j]
            if surrogate == 'quadlinear':
                if is_pos[k]:
                    rank_pos = rank_pos + rho * h_loop(d)
                    rank_all = rank_all + rho * h_loop(d)
                elif is_neg[k]:
                    rank_all = rank_all + g_loop(d, sigma)
            else:  # Smooth-AP
                soft = torch.sigmoid(d / temp)
                if is_pos[k]:
                    rank_pos = rank_pos + soft
                    rank_all = rank_all + soft
                elif is_neg[k]:
                    rank_all = rank_all + soft
        terms.append(rank_pos / rank_all)
    if not terms:
        return None
    return sum(terms) / len(terms)


def video_ap_loss_loop(sim,
                       rel,
                       sigma=0.05,
                       rho=0.1,
                       surrogate='quadlinear',
                       temp=0.01):
    n = sim.shape[0]
    aps = []
    for q in range(n):
        is_pos = [bool(rel[q, k] == 1) for k in range(n)]
        is_neg = [not p for p in is_pos]
        aps.append(
            list_ap_loop([sim[q, k] for k in range(n)], is_pos, is_neg, sigma,
                         rho, surrogate, temp))
    return 1 - sum(aps) / n


def frame_ap_loss_loop(frames,
                       pos,
                       neg,
                       rel,
                       sigma=0.05,
                       rho=5.0,
                       surrogate='quadlinear',
                       temp=0.01):
    n = frames.shape[0]
    t_q, t_t = frames.shape[2], frames.shape[3]
    pair_aps = []
    for a in range(n):
        for b in range(n):
            if rel[a, b] != 1:
                continue
            row_aps = []
            for i in range(t_q):
                ap = list_ap_loop([frames[a, b, i, k] for k in range(t_t)],
                                  [bool(pos[a, b, i, k]) for k in range(t_t)],
                                  [bool(neg[a, b, i, k]) for k in range(t_t)],
                                  sigma, rho, surrogate, temp)
                if ap is not None:
                    row_aps.append(ap)
            if row_aps:
                pair_aps.append(sum(row_aps) / len(row_aps))
    return 1 - sum(pair_aps) / len(pair_aps)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
def make_relevance(n, gen, extra=2):
    """Identity plus weak/strong partners plus a few random symmetric ones."""
    rel = torch.eye(n, dtype=torch.float64)
    half = n // 2
    for i in range(half):
        rel[i, i + half] = rel[i + half, i] = 1
    for _ in range(extra):
        a, b = torch.randint(n, (2, ), generator=gen).tolist()
        rel[a, b] = rel[b, a] = 1
    return rel


def make_frames(n, t, gen, spread=1.0):
    frames = torch.rand(n, n, t, t, generator=gen, dtype=torch.float64)
    u = torch.rand(n, n, t, t, generator=gen)
    pos = u < 0.35
    neg = u > 0.65
    return frames * spread, pos, neg


def grad_of(fn, x):
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    grad, = torch.autograd.grad(value, x, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    return value.detach(), grad


# ---------------------------------------------------------------------------
# The quad-linear surrogate
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('sigma', [0.05, 0.5])
def test_quadlinear_values_and_bound(sigma):
    x = torch.linspace(-2, 2, 40001, dtype=torch.float64)
    x = torch.cat([x, torch.tensor([-sigma, 0.0], dtype=torch.float64)])
    x = x.sort().values
    g = quadlinear(x, sigma)
    ref = torch.stack([g_loop(v, sigma) for v in x[::97]])
    torch.testing.assert_close(g[::97], ref, rtol=0, atol=ATOL)
    heaviside = (x > 0).double()
    assert bool((g >= heaviside).all())
    assert bool((g[1:] >= g[:-1]).all())  # non-decreasing
    # Convex: second differences on a uniform grid are non-negative.
    grid = torch.linspace(-3 * sigma, 3 * sigma, 6001, dtype=torch.float64)
    gg = quadlinear(grid, sigma)
    assert bool((gg[2:] - 2 * gg[1:-1] + gg[:-2] >= -1e-12).all())


@pytest.mark.parametrize('sigma', [0.05, 0.5])
def test_quadlinear_continuity_at_kinks(sigma):
    for point, value, slope in ((-sigma, 0.0, 0.0), (0.0, 1.0, 2 / sigma)):
        h = 1e-9
        x = torch.tensor([point - h, point, point + h],
                         dtype=torch.float64,
                         requires_grad=True)
        g = quadlinear(x, sigma)
        torch.testing.assert_close(
            g.detach(), torch.full_like(g, value), rtol=0, atol=1e-7)
        grad, = torch.autograd.grad(g.sum(), x)
        torch.testing.assert_close(
            grad, torch.full_like(grad, slope), rtol=0, atol=1e-6)


def test_quadlinear_gradcheck():
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(64, generator=gen, dtype=torch.float64) - 0.5) * 0.3
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: quadlinear(v, 0.05), (x, ))
    with pytest.raises(ValueError, match='sigma'):
        quadlinear(x, 0.0)


# ---------------------------------------------------------------------------
# Video-level AP
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('surrogate,sigma,rho', [('quadlinear', 0.05, 0.1),
                                                 ('quadlinear', 0.4, 0.7),
                                                 ('sigmoid', 0.05, 0.1)])
def test_video_ap_matches_loop(surrogate, sigma, rho):
    gen = torch.Generator().manual_seed(1)
    n = 8
    sim = torch.rand(n, n, generator=gen, dtype=torch.float64)
    rel = make_relevance(n, gen)
    temp = 0.1
    value, grad = grad_of(
        lambda s: quadlinear_ap_loss(s, rel, sigma, rho, surrogate, temp), sim)
    ref, ref_grad = grad_of(
        lambda s: video_ap_loss_loop(s, rel, sigma, rho, surrogate, temp), sim)
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)
    assert grad.abs().sum() > 0


def test_video_ap_module_weight_bool_relevance():
    gen = torch.Generator().manual_seed(2)
    sim = torch.rand(6, 6, generator=gen, dtype=torch.float64)
    rel = make_relevance(6, gen)
    loss = QuadLinearAPLoss(loss_weight=4.0)
    torch.testing.assert_close(
        loss(sim, rel.bool()),
        4 * video_ap_loss_loop(sim, rel),
        rtol=0,
        atol=ATOL)


def test_video_ap_perfect_ranking_is_zero():
    gen = torch.Generator().manual_seed(3)
    n = 6
    rel = make_relevance(n, gen)
    sim = torch.rand(n, n, generator=gen, dtype=torch.float64) * 0.3
    # Positives in [0.7, 0.8], negatives at most 0.3: margin > sigma.
    sim = torch.where(rel.bool(), 0.7 + sim / 3, sim)
    assert quadlinear_ap_loss(sim, rel).item() == 0.0


def test_video_ap_swap_raises_loss():
    rel = torch.eye(4, dtype=torch.float64)
    rel[0, 1] = rel[1, 0] = 1
    sim = torch.tensor([[1.0, 0.8, 0.3, 0.2], [0.8, 1.0, 0.2, 0.1],
                        [0.3, 0.2, 1.0, 0.4], [0.2, 0.1, 0.4, 1.0]],
                       dtype=torch.float64)
    base = quadlinear_ap_loss(sim, rel)
    swapped = sim.clone()
    swapped[0, 1], swapped[0, 2] = sim[0, 2], sim[0, 1]
    assert quadlinear_ap_loss(swapped, rel) > base
    assert base.item() == 0.0


def test_video_ap_single_positive_rows():
    gen = torch.Generator().manual_seed(4)
    n = 5
    sim = torch.rand(n, n, generator=gen, dtype=torch.float64)
    rel = torch.eye(n, dtype=torch.float64)
    value = quadlinear_ap_loss(sim, rel)
    # AP(q) = 1 / (1 + sum_{k != q} g(S[q, k] - S[q, q])).
    ap = []
    for q in range(n):
        others = [
            g_loop(sim[q, k] - sim[q, q], 0.05) for k in range(n) if k != q
        ]
        ap.append(1 / (1 + sum(others)))
    torch.testing.assert_close(value, 1 - sum(ap) / n, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        value, video_ap_loss_loop(sim, rel), rtol=0, atol=ATOL)


def test_video_ap_input_checks():
    sim = torch.rand(4, 4)
    rel = torch.eye(4)
    with pytest.raises(ValueError, match=r'\[N, N\].*\[4\]'):
        quadlinear_ap_loss(torch.rand(4), rel)
    with pytest.raises(ValueError, match=r'\[N, N\].*\[4, 3\]'):
        quadlinear_ap_loss(torch.rand(4, 3), rel)
    with pytest.raises(ValueError, match=r'\[4, 4\].*\[3, 3\]'):
        quadlinear_ap_loss(sim, torch.eye(3))
    bad = rel.clone()
    bad[2, 2] = 0
    with pytest.raises(ValueError, match=r'rows without positives: \[2\]'):
        quadlinear_ap_loss(sim, bad)
    with pytest.raises(ValueError, match='0/1'):
        quadlinear_ap_loss(sim, rel * 2)
    with pytest.raises(ValueError, match='surrogate'):
        quadlinear_ap_loss(sim, rel, surrogate='hinge')
    # A row with Y[q, q] = 0 but another positive is accepted.
    ok = rel.clone()
    ok[2, 2] = 0
    ok[2, 3] = 1
    assert torch.isfinite(quadlinear_ap_loss(sim, ok))


def test_video_ap_half_precision_is_computed_in_float32():
    gen = torch.Generator().manual_seed(5)
    sim = torch.rand(6, 6, generator=gen)
    rel = make_relevance(6, gen)
    out = quadlinear_ap_loss(sim.half(), rel)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, quadlinear_ap_loss(sim.half().float(),
                                                       rel))


# ---------------------------------------------------------------------------
# Frame-level AP
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('surrogate,sigma,rho', [('quadlinear', 0.05, 5.0),
                                                 ('quadlinear', 0.3, 0.5),
                                                 ('sigmoid', 0.05, 5.0)])
def test_frame_ap_matches_loop(surrogate, sigma, rho):
    gen = torch.Generator().manual_seed(6)
    n, t = 4, 5
    frames, pos, neg = make_frames(n, t, gen)
    rel = make_relevance(n, gen, extra=1)
    # One query frame without positives, one pair without any positive.
    pos[0, 0, 1] = False
    pos[1, 3] = False
    rel[1, 3] = rel[3, 1] = 1
    temp = 0.1
    value, grad = grad_of(
        lambda f: frame_quadlinear_ap_loss(f, pos, neg, rel, sigma, rho,
                                           surrogate, temp), frames)
    ref, ref_grad = grad_of(
        lambda f: frame_ap_loss_loop(f, pos, neg, rel, sigma, rho, surrogate,
                                     temp), frames)
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)
    assert grad.abs().sum() > 0
    # Non-relevant pairs receive no gradient.
    assert grad[~rel.bool()].abs().max() == 0


def test_frame_ap_pair_form_equals_4d_form():
    gen = torch.Generator().manual_seed(7)
    n, t = 4, 6
    frames, pos, neg = make_frames(n, t, gen)
    rel = make_relevance(n, gen)
    loss = FrameQuadLinearAPLoss(loss_weight=6.0)
    value, grad = grad_of(lambda f: loss(f, pos, neg, rel), frames)
    a, b = rel.nonzero(as_tuple=True)
    value_p, grad_p = grad_of(
        lambda f: loss(f, pos[a, b].double(), neg[a, b].double()), frames[a,
                                                                          b])
    torch.testing.assert_close(value, value_p, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad[a, b], grad_p, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        value,
        6 * frame_ap_loss_loop(frames, pos, neg, rel),
        rtol=0,
        atol=ATOL)


def test_frame_ap_padded_frames_ignored():
    gen = torch.Generator().manual_seed(8)
    n, t, valid_t = 3, 6, 4
    frames, pos, neg = make_frames(n, t, gen)
    rel = make_relevance(n, gen, extra=0)
    # Frames >= valid_t are padding: neither positive nor negative.
    pos[..., valid_t:] = False
    neg[..., valid_t:] = False
    pos[..., valid_t:, :] = False
    neg[..., valid_t:, :] = False
    value, grad = grad_of(lambda f: frame_quadlinear_ap_loss(f, pos, neg, rel),
                          frames)
    changed = frames.clone()
    changed[..., valid_t:] = 5.0
    changed[..., valid_t:, :] = -3.0
    value2, grad2 = grad_of(
        lambda f: frame_quadlinear_ap_loss(f, pos, neg, rel), changed)
    torch.testing.assert_close(value, value2, rtol=0, atol=0)
    torch.testing.assert_close(grad, grad2, rtol=0, atol=0)
    assert grad[..., valid_t:].abs().max() == 0
    assert grad[..., valid_t:, :].abs().max() == 0
    cropped = frame_quadlinear_ap_loss(frames[..., :valid_t, :valid_t],
                                       pos[..., :valid_t, :valid_t],
                                       neg[..., :valid_t, :valid_t], rel)
    torch.testing.assert_close(value, cropped, rtol=0, atol=ATOL)


def test_frame_ap_perfect_ranking_and_swap():
    t = 6
    pos = torch.zeros(1, t, t, dtype=torch.bool)
    neg = torch.zeros(1, t, t, dtype=torch.bool)
    pos[0, :, :2] = True
    neg[0, :, 3:] = True
    frames = torch.tensor([0.9, 0.8, 0.5, 0.4, 0.3, 0.1],
                          dtype=torch.float64).repeat(1, t, 1)
    assert frame_quadlinear_ap_loss(frames, pos, neg).item() == 0.0
    swapped = frames.clone()
    swapped[0, 0, 1], swapped[0, 0, 3] = 0.4, 0.8
    assert frame_quadlinear_ap_loss(swapped, pos, neg).item() > 0.0


def test_frame_ap_no_valid_pair_is_zero_with_graph():
    frames = torch.rand(2, 3, 3, dtype=torch.float64, requires_grad=True)
    none = torch.zeros(2, 3, 3, dtype=torch.bool)
    out = frame_quadlinear_ap_loss(frames, none, ~none)
    assert out.item() == 0.0
    out.backward()
    assert frames.grad.abs().max() == 0


def test_frame_ap_input_checks():
    f4 = torch.rand(3, 3, 4, 4)
    m4 = torch.rand(3, 3, 4, 4) < 0.5
    rel = torch.eye(3)
    with pytest.raises(ValueError, match=r'\[N, N, Ti, Tj\].*\[3, 4, 4\]'):
        frame_quadlinear_ap_loss(f4[0], m4[0], m4[0], rel)
    with pytest.raises(ValueError, match=r'\[P, Ti, Tj\].*\[3, 3, 4, 4\]'):
        frame_quadlinear_ap_loss(f4, m4, m4)
    with pytest.raises(
            ValueError, match=r'positives.*\[3, 3, 4, 4\].*'
            r'\[3, 3, 4, 3\]'):
        frame_quadlinear_ap_loss(f4, m4[..., :3], m4, rel)
    with pytest.raises(
            ValueError, match=r'negatives.*\[3, 4, 4\].*'
            r'\[3, 4, 3\]'):
        frame_quadlinear_ap_loss(f4[0], m4[0], m4[0, ..., :3])
    with pytest.raises(ValueError, match=r'relevance.*\[3, 3\].*\[2, 2\]'):
        frame_quadlinear_ap_loss(f4, m4, m4, torch.eye(2))
    with pytest.raises(ValueError, match='0/1'):
        frame_quadlinear_ap_loss(f4, m4.float() * 3, m4, rel)


def test_frame_ap_overlapping_masks_count_as_positive():
    gen = torch.Generator().manual_seed(9)
    n, t = 3, 5
    frames, pos, neg = make_frames(n, t, gen)
    rel = make_relevance(n, gen, extra=0)
    both = neg | (torch.rand(n, n, t, t, generator=gen) < 0.3)
    assert bool((both & pos).any())
    value, grad = grad_of(
        lambda f: frame_quadlinear_ap_loss(f, pos, both, rel), frames)
    ref, ref_grad = grad_of(lambda f: frame_ap_loss_loop(f, pos, both, rel),
                            frames)
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)


def test_quadlinear_ap_in_the_calling_form_of_mmaction2_heads():
    """loss_cls(cls_score [N, C], label [N]) == the [N, N] form."""
    from mmaction.registry import MODELS

    from hapvr_mm.models.losses import embedding_similarity, label_relevance
    torch.manual_seed(0)
    scores = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 2, 0, 1, 2, 2])
    loss = MODELS.build(dict(type='QuadLinearAPLoss', loss_weight=2.0))
    got = loss(scores, labels)
    x = F.normalize(scores, dim=1)
    sim = (1 + x @ x.t()) / 2
    rel = labels[:, None] == labels[None, :]
    torch.testing.assert_close(got, loss(sim, rel))
    torch.testing.assert_close(embedding_similarity(scores), sim)
    assert torch.equal(label_relevance(labels), rel)
    got.backward()
    assert scores.grad is not None and bool(scores.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match=r'cls_score \[N, C\] and label'):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='integer class labels'):
        label_relevance(torch.rand(4))
