"""Under autocast, the terms that rank or reduce stay in float32."""
import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

from hapvr_mm.models.losses.functional import embedding_similarity
from hapvr_mm.models.precision import autocast_dtype, float32_region
from hapvr_mm.models.pseudo_labels import frame_pseudo_labels
from hapvr_mm.utils.dtype_audit import DtypeRecorder

LOW = [torch.float16, torch.bfloat16]


def test_autocast_helpers():
    assert autocast_dtype('cpu') is None
    assert autocast_dtype('meta') is None  # a device type without autocast
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert autocast_dtype('cpu') == torch.bfloat16
        a = torch.randn(3, 3)
        assert (a @ a).dtype == torch.bfloat16
        with float32_region('cpu'):
            assert (a @ a).dtype == torch.float32
    with float32_region('meta'):  # no-op where autocast does not exist
        pass


@pytest.mark.parametrize('dtype', LOW)
def test_pseudo_labels_equal_float32_under_autocast(dtype):
    gen = torch.Generator().manual_seed(0)
    # close frames: many near-ties that half-precision products reorder
    base = torch.randn(4, 1, 384, generator=gen)
    emb = base + 0.05 * torch.randn(4, 16, 384, generator=gen)
    pairs = torch.tensor([[0, 1], [1, 0], [2, 3], [0, 0]])
    ref = frame_pseudo_labels(emb, 0.35, 0.35, pairs=pairs)
    with torch.autocast('cpu', dtype=dtype):
        got = frame_pseudo_labels(emb, 0.35, 0.35, pairs=pairs)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


@pytest.mark.parametrize('dtype', LOW)
def test_embedding_similarity_is_float32_under_autocast(dtype):
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    ref = embedding_similarity(x)
    with torch.autocast('cpu', dtype=dtype):
        got = embedding_similarity(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def _paper_model():
    head = dict(type='SimilarityHead', dims=64)
    losses = dict(
        loss_nce=dict(type='InfoNCELoss', temperature=0.03),
        loss_video_ap=dict(
            type='QuadLinearAPLoss', sigma=0.05, rho=0.1, loss_weight=4.0),
        loss_hard_negative=dict(type='HardNegativeLoss', loss_weight=3.0),
        loss_self=dict(type='SelfSimilarityLoss', loss_weight=3.0),
        loss_reg=dict(type='SimilarityRegularizationLoss'),
        loss_frame_ap=dict(
            type='FrameQuadLinearAPLoss', sigma=0.05, rho=5.0,
            loss_weight=6.0))
    return MODELS.build(dict(type='HAPVR', head=head, losses=losses))


@pytest.mark.parametrize('dtype', LOW)
def test_losses_and_pseudo_labels_compute_in_float32(dtype):
    torch.manual_seed(0)
    model = _paper_model()
    n, t = 8, 8
    feats = F.normalize(torch.randn(n, t, 9, 64), dim=-1)
    rel = torch.eye(n)
    idx = torch.arange(n // 2)
    rel[idx, idx + n // 2] = rel[idx + n // 2, idx] = 1
    emb = torch.randn(n, t, 32)
    rec = DtypeRecorder()
    with rec, torch.autocast('cpu', dtype=dtype):
        losses = model.loss(feats, rel, None, emb)
    low = rec.low_precision()
    assert 'head' in low  # autocast is active in the head ...
    # ... and never in the losses (surrogates, regularisation, reductions)
    # or the pseudo labels' similarities and top-k
    assert 'losses' not in low and 'pseudo labels' not in low, low
    assert set(rec.stage_dtypes()) >= {'losses', 'pseudo labels'}
    assert all(v.dtype == torch.float32 for v in losses.values())
