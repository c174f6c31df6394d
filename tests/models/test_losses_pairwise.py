"""Tests of InfoNCE, SSHN and the similarity regularisation."""
import math

import pytest
import torch
from mmaction.registry import MODELS

import hapvr_mm  # noqa: F401
from hapvr_mm.models.losses.functional import (hard_negative_loss,
                                               info_nce_loss,
                                               self_similarity_loss,
                                               similarity_regularization)
from hapvr_mm.models.losses.infonce import InfoNCELoss
from hapvr_mm.models.losses.quadlinear_ap import (FrameQuadLinearAPLoss,
                                                  QuadLinearAPLoss)
from hapvr_mm.models.losses.similarity_reg import SimilarityRegularizationLoss
from hapvr_mm.models.losses.sshn import (HardNegativeLoss, SelfSimilarityLoss,
                                         SSHNLoss)

ATOL = 1e-10


# ---------------------------------------------------------------------------
# Loop transcriptions of docs/method.md section 4
# ---------------------------------------------------------------------------
def info_nce_loop(sim, rel, tau=0.03):
    n = sim.shape[0]
    rows = []
    for q in range(n):
        neg = sum(
            torch.exp(sim[q, k] / tau) for k in range(n) if rel[q, k] == 0)
        terms = []
        for j in range(n):
            if j == q or rel[q, j] != 1:
                continue
            e = torch.exp(sim[q, j] / tau)
            terms.append(-torch.log(e / (e + neg + 1e-6)))
        if terms:
            rows.append(sum(terms) / len(terms))
    return sum(rows) / len(rows)


def hard_negative_loop(sim, rel, eps=1e-3):
    n = sim.shape[0]
    terms = []
    for q in range(n):
        negs = [sim[q, k] for k in range(n) if rel[q, k] == 0]
        if not negs:
            continue
        hardest = negs[0]
        for v in negs[1:]:
            if v > hardest:
                hardest = v
        terms.append(-torch.log(torch.clamp(1 - hardest, min=eps)))
    return sum(terms) / len(terms)


def self_similarity_loop(sim, eps=1e-3):
    n = sim.shape[0]
    return -sum(torch.log(torch.clamp(sim[q, q], min=eps))
                for q in range(n)) / n


def reg_loop(values, masks=None):
    total = 0.0
    for i, v in enumerate(values):
        flat = v.reshape(-1)
        m = None if masks is None else masks[i].reshape(-1)
        for c in range(flat.numel()):
            if m is not None and not m[c]:
                continue
            total = total + torch.abs(torch.clamp(flat[c] + 1, max=0))
            total = total + torch.abs(torch.clamp(flat[c] - 1, min=0))
    return total


def make_relevance(n):
    rel = torch.eye(n, dtype=torch.float64)
    half = n // 2
    for i in range(half):
        rel[i, i + half] = rel[i + half, i] = 1
    rel[0, 1] = rel[1, 0] = 1
    return rel


def grad_of(fn, x):
    x = x.detach().clone().requires_grad_(True)
    value = fn(x)
    grad, = torch.autograd.grad(value, x)
    return value.detach(), grad


def rand_sim(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, n, generator=gen, dtype=torch.float64)


# ---------------------------------------------------------------------------
# InfoNCE
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('tau', [0.03, 0.5])
def test_info_nce_matches_loop(tau):
    sim = rand_sim(8, 0)
    rel = make_relevance(8)
    value, grad = grad_of(lambda s: info_nce_loss(s, rel, tau), sim)
    ref, ref_grad = grad_of(lambda s: info_nce_loop(s, rel, tau), sim)
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)
    loss = InfoNCELoss(temperature=tau, loss_weight=2.0)
    torch.testing.assert_close(
        loss(sim, rel.bool()), 2 * ref, rtol=0, atol=ATOL)


def test_info_nce_rows_without_other_positive_skipped():
    sim = rand_sim(5, 1)
    rel = torch.eye(5, dtype=torch.float64)
    rel[0, 3] = rel[3, 0] = 1
    torch.testing.assert_close(
        info_nce_loss(sim, rel), info_nce_loop(sim, rel), rtol=0, atol=ATOL)
    out = info_nce_loss(sim.requires_grad_(True), torch.eye(5))
    assert out.item() == 0.0
    out.backward()
    assert sim.grad.abs().max() == 0


def test_info_nce_no_overflow_float32():
    sim = torch.full((4, 4), 5.0)  # exp(5 / 0.03) overflows float32
    rel = torch.eye(4)
    rel[0, 2] = rel[2, 0] = rel[1, 3] = rel[3, 1] = 1
    out = info_nce_loss(sim, rel)
    # E[q, j] = n(q) / 2 (two negatives per row): loss = log(3).
    assert math.isclose(out.item(), math.log(3.0), rel_tol=1e-5)


# ---------------------------------------------------------------------------
# SSHN
# ---------------------------------------------------------------------------
def test_sshn_matches_loop():
    sim = rand_sim(8, 2)
    sim[3, 0] = 0.9995  # 1 - S below eps: clamped, no gradient
    rel = make_relevance(8)
    rel[5] = 1  # a row without negatives is left out
    rel[:, 5] = 1
    value, grad = grad_of(lambda s: hard_negative_loss(s, rel), sim)
    ref, ref_grad = grad_of(lambda s: hard_negative_loop(s, rel), sim)
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)
    sim[2, 2] = 1e-5  # below eps
    value, grad = grad_of(lambda s: self_similarity_loss(s), sim)
    ref, ref_grad = grad_of(lambda s: self_similarity_loop(s), sim)
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)
    assert grad[2, 2] == 0


def test_sshn_modules():
    sim = rand_sim(6, 3)
    rel = make_relevance(6)
    l_hn = hard_negative_loop(sim, rel)
    l_self = self_similarity_loop(sim)
    sshn = SSHNLoss(loss_weight=3.0)
    torch.testing.assert_close(
        sshn(sim, rel), 3 * (l_hn + l_self), rtol=0, atol=ATOL)
    terms = SSHNLoss(loss_weight=3.0, return_terms=True)(sim, rel)
    assert set(terms) == {'loss_hard_negative', 'loss_self'}
    torch.testing.assert_close(
        terms['loss_hard_negative'], 3 * l_hn, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        terms['loss_self'], 3 * l_self, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        HardNegativeLoss(loss_weight=2.0)(sim, rel),
        2 * l_hn,
        rtol=0,
        atol=ATOL)
    torch.testing.assert_close(
        SelfSimilarityLoss()(sim, rel), l_self, rtol=0, atol=ATOL)


def test_pairwise_input_checks():
    sim = torch.rand(4, 4)
    with pytest.raises(ValueError, match=r'\[N, N\].*\[4, 4, 1\]'):
        info_nce_loss(sim[..., None], torch.eye(4))
    with pytest.raises(ValueError, match=r'\[4, 4\].*\[4, 5\]'):
        hard_negative_loss(sim, torch.ones(4, 5))
    with pytest.raises(ValueError, match=r'\[N, N\].*\[2, 4\]'):
        self_similarity_loss(sim[:2])
    rel = torch.eye(4)
    rel[1, 1] = 0
    with pytest.raises(ValueError, match=r'without positives: \[1\]'):
        info_nce_loss(sim, rel)
    with pytest.raises(ValueError, match='temperature'):
        info_nce_loss(sim, torch.eye(4), temperature=0)


# ---------------------------------------------------------------------------
# Similarity regularisation
# ---------------------------------------------------------------------------
def test_similarity_regularization_matches_loop():
    gen = torch.Generator().manual_seed(4)
    values = [
        torch.randn(3, 4, generator=gen, dtype=torch.float64) * 2,
        torch.randn(2, 2, 5, generator=gen, dtype=torch.float64) * 2
    ]
    masks = [
        torch.rand(3, 4, generator=gen) < 0.6,
        (torch.rand(2, 2, 5, generator=gen) < 0.6).double()
    ]
    ref = reg_loop(values)
    assert ref > 0
    torch.testing.assert_close(
        similarity_regularization(values), ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        similarity_regularization(values[1]),
        reg_loop(values[1:]),
        rtol=0,
        atol=ATOL)
    loss = SimilarityRegularizationLoss(loss_weight=0.5)
    value, grad = grad_of(lambda v: loss(v, masks[1]), values[1])
    ref, ref_grad = grad_of(lambda v: 0.5 * reg_loop([v], masks[1:]),
                            values[1])
    torch.testing.assert_close(value, ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=ATOL)
    torch.testing.assert_close(
        similarity_regularization(values, masks),
        reg_loop(values, masks),
        rtol=0,
        atol=ATOL)
    # Masked cells are ignored whatever their value.
    changed = values[0].clone()
    changed[~masks[0]] = 100.0
    torch.testing.assert_close(
        similarity_regularization(changed, masks[0]),
        similarity_regularization(values[0], masks[0]),
        rtol=0,
        atol=0)
    inside = torch.rand(3, 3, dtype=torch.float64) * 2 - 1
    assert similarity_regularization(inside).item() == 0.0


def test_similarity_regularization_checks():
    v = torch.rand(3, 4)
    with pytest.raises(ValueError, match=r'\[3, 4\].*\[3, 5\]'):
        similarity_regularization(v, torch.ones(3, 5))
    with pytest.raises(ValueError, match='2 masks, received 1'):
        similarity_regularization([v, v], [torch.ones(3, 4)])
    with pytest.raises(ValueError, match='empty'):
        similarity_regularization([])


def test_losses_registered():
    for name in ('QuadLinearAPLoss', 'FrameQuadLinearAPLoss', 'InfoNCELoss',
                 'SSHNLoss', 'HardNegativeLoss', 'SelfSimilarityLoss',
                 'SimilarityRegularizationLoss'):
        loss = MODELS.build(dict(type=name, loss_weight=2.0))
        assert loss.loss_weight == 2.0
    assert isinstance(
        MODELS.build(dict(type='QuadLinearAPLoss')), QuadLinearAPLoss)
    built = MODELS.build(dict(type='FrameQuadLinearAPLoss'))
    assert isinstance(built, FrameQuadLinearAPLoss) and built.rho == 5.0
