"""FastAP loss against pytorch-metric-learning and hand-computed cases.

The comparisons with pytorch-metric-learning (requirements/tests.txt) are
skipped when it is not installed; the other tests always run.
"""
import os.path as osp

import pytest
import torch
from mmaction.registry import MODELS
from mmengine.config import Config

from hapvr_mm.models.losses import (FastAPLoss, embedding_similarity,
                                    fast_ap_loss, label_relevance)
from hapvr_mm.models.retrievers.hapvr import build_losses

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    ROOT, 'configs', 'hapvr',
    'hapvr_r50-pca512_dino-vits16_2xb64-w28-30k_vcdb-ssl_fivr5k_fast-ap.py')


@pytest.fixture
def pml_losses():
    return pytest.importorskip('pytorch_metric_learning.losses')


def _batch(seed, n=24, dim=16, classes=6, singletons=3):
    """Random embeddings and labels; a few classes hold a single item."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n + singletons, dim, generator=g, dtype=torch.float64)
    labels = torch.cat([
        torch.randint(0, classes, (n, ), generator=g),
        torch.arange(singletons) + 1000
    ])
    perm = torch.randperm(n + singletons, generator=g)
    return emb[perm], labels[perm]


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('num_bins', [10, 4])
def test_matches_pytorch_metric_learning(seed, num_bins, pml_losses):
    emb, labels = _batch(seed)
    ref_emb = emb.clone().requires_grad_()
    ours_emb = emb.clone().requires_grad_()
    ref = pml_losses.FastAPLoss(num_bins=num_bins)(ref_emb, labels)
    ours = fast_ap_loss(
        embedding_similarity(ours_emb), label_relevance(labels), num_bins)
    ref.backward()
    ours.backward()
    assert ours.item() == pytest.approx(ref.item(), abs=1e-5)
    assert ours_emb.grad.abs().max() > 0
    torch.testing.assert_close(
        ours_emb.grad, ref_emb.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('seed', range(3))
def test_head_form_matches_pytorch_metric_learning(seed, pml_losses):
    emb, labels = _batch(seed)
    emb = emb.float()
    ref_emb = emb.clone().requires_grad_()
    head_emb = emb.clone().requires_grad_()
    ref = pml_losses.FastAPLoss(num_bins=10)(ref_emb, labels)
    loss = FastAPLoss(loss_weight=4.0)
    head = loss(head_emb, labels)  # loss_cls(cls_score [N, C], label [N])
    (ref * 4).backward()
    head.backward()
    assert head.item() == pytest.approx(4 * ref.item(), abs=4e-5)
    torch.testing.assert_close(
        head_emb.grad, ref_emb.grad, atol=1e-5, rtol=1e-4)
    # the retrieval form gives the same value
    retrieval = loss(embedding_similarity(emb), label_relevance(labels))
    assert retrieval.item() == pytest.approx(head.item(), abs=1e-6)


def _tiny():
    """Three items: 0 and 1 relevant, 2 alone (no positive)."""
    # distances D = 4 (1 - S): D[0,1] = 0.6, D[0,2] = 0.5, D[1,2] = 4
    sim = torch.tensor([[1.0, 0.85, 0.875], [0.85, 1.0, 0.0],
                        [0.875, 0.0, 1.0]],
                       dtype=torch.float64)
    rel = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    return sim, rel


def test_hand_computed_three_items():
    """num_bins=10: edges 0, 0.4, ..., 4 and bin width 0.4.

    Row 0: the positive at D=0.6 is split 0.5/0.5 over edges 0.4 and 0.8,
    the negative at D=0.5 0.75/0.25: h+ = (0, .5, .5), H+ = (0, .5, 1),
    H = (0, 1.25, 2); FastAP = .5*.5/1.25 + .5*1/2 = 0.45 (true AP 0.5).
    Row 1: its negative sits at D=4, after both halves of its positive:
    FastAP = 1. Row 2 has no positive and is ignored.
    """
    sim, rel = _tiny()
    loss = fast_ap_loss(sim, rel, num_bins=10)
    assert loss.item() == pytest.approx(1 - (0.45 + 1) / 2, abs=1e-12)


def test_hand_computed_with_self():
    """With the diagonal in the list, each query is a positive at D=0.

    Row 0: h+ = (1, .5, .5), H+ = (1, 1.5, 2), H = (1, 2.25, 3);
    FastAP = (1 + .5*1.5/2.25 + .5*2/3) / 2 = 5/6. Rows 1 and 2: 1.
    """
    sim, rel = _tiny()
    loss = fast_ap_loss(sim, rel, num_bins=10, exclude_self=False)
    assert loss.item() == pytest.approx(1 - (5 / 6 + 2) / 3, abs=1e-12)


def test_gradient_matches_finite_differences():
    sim, rel = _tiny()
    # move off the bin edges, where the kernel has a kink
    sim = (sim + 0.013 * torch.rand(3, 3, dtype=torch.float64)).clamp(0, 1)
    sim.requires_grad_()
    assert torch.autograd.gradcheck(lambda s: fast_ap_loss(s, rel), (sim, ))


def test_perfect_ranking_has_zero_loss():
    # positives within the first bin, negatives from the third bin on
    sim = torch.tensor([[1.0, 0.95, 0.7, 0.5], [0.95, 1.0, 0.6, 0.2],
                        [0.7, 0.6, 1.0, 0.3], [0.5, 0.2, 0.3, 1.0]])
    labels = torch.tensor([0, 0, 1, 2])
    loss = fast_ap_loss(sim, label_relevance(labels))
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


def test_no_positive_row_gives_zero_with_grad():
    emb = torch.randn(5, 4, requires_grad=True)
    labels = torch.arange(5)  # every item its own class
    loss = FastAPLoss()(emb, labels)
    assert loss.item() == 0
    loss.backward()
    assert emb.grad is not None and not emb.grad.any()


def test_half_precision_is_computed_in_float32():
    emb, labels = _batch(0)
    sim = embedding_similarity(emb.float())
    rel = label_relevance(labels)
    ref = fast_ap_loss(sim, rel)
    half = fast_ap_loss(sim.half(), rel)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(ref.item(), abs=5e-3)


def test_registered_and_named():
    loss = MODELS.build(dict(type='FastAPLoss', num_bins=8, loss_weight=4.0))
    assert isinstance(loss, FastAPLoss)
    assert loss.default_name == 'loss_video_ap'
    assert loss.inputs == ('similarity', 'relevance')
    assert 'num_bins=8' in repr(loss) and 'loss_weight=4.0' in repr(loss)
    sim, rel = _tiny()
    assert loss(sim,
                rel).item() == pytest.approx(4 *
                                             fast_ap_loss(sim, rel, 8).item())


def test_bad_inputs():
    sim, rel = _tiny()
    with pytest.raises(ValueError, match=r'\[N, N\]'):
        fast_ap_loss(sim[:2], rel)
    with pytest.raises(ValueError, match='relevance of shape'):
        fast_ap_loss(sim, rel[:2, :2])
    with pytest.raises(ValueError, match='0/1'):
        fast_ap_loss(sim, rel * 2)
    for bins in (0, 2.5, True):
        with pytest.raises(ValueError, match='num_bins'):
            fast_ap_loss(sim, rel, num_bins=bins)
    with pytest.raises(ValueError, match='non-empty'):
        fast_ap_loss(sim[:0, :0], rel[:0, :0])
    with pytest.raises(ValueError, match=r'cls_score \[N, C\]'):
        FastAPLoss()(torch.randn(4, 3), torch.arange(5))
    with pytest.raises(ValueError, match='integer class labels'):
        FastAPLoss()(torch.randn(4, 3), torch.rand(4))


def test_fast_ap_ablation_config():
    cfg = Config.fromfile(CONFIG)
    losses = build_losses(cfg.model.losses)
    assert set(losses) == {
        'loss_nce', 'loss_video_ap', 'loss_hard_negative', 'loss_self',
        'loss_reg'
    }
    video_ap = losses['loss_video_ap']
    assert isinstance(video_ap, FastAPLoss)
    assert video_ap.num_bins == 10 and video_ap.loss_weight == 4.0
    assert not any(loss.needs_teacher for loss in losses.values())
