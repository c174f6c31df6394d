import pytest
import torch

import hapvr_mm  # noqa: F401
from hapvr_mm.models.pseudo_labels import (FramePseudoLabeler,
                                           frame_pseudo_labels)


def loop_labels(emb, top_rate, bottom_rate, mask=None):
    """Loop transcription of docs/method.md section 4 (pseudo labels)."""
    n, t, _ = emb.shape
    if mask is None:
        mask = torch.ones(n, t, dtype=torch.bool)
    pos = torch.zeros(n, n, t, t, dtype=torch.bool)
    neg = torch.zeros(n, n, t, t, dtype=torch.bool)
    for a in range(n):
        for b in range(n):
            valid = [j for j in range(t) if mask[b, j]]
            tb = len(valid)
            k_top = max(round(tb * top_rate), 1)
            k_bot = max(round(tb * bottom_rate), 1)
            for i in range(t):
                if not mask[a, i] or tb == 0:
                    continue
                sims = []
                for j in valid:
                    u, v = emb[a, i], emb[b, j]
                    sims.append((float(u @ v / (u.norm() * v.norm())), j))
                ranked = sorted(sims, key=lambda s: -s[0])
                top = {j for _, j in ranked[:k_top]}
                bottom = {j for _, j in ranked[::-1][:k_bot]} - top
                for j in top:
                    pos[a, b, i, j] = True
                for j in bottom:
                    neg[a, b, i, j] = True
    return pos, neg


def test_matches_loop_transcription():
    torch.manual_seed(0)
    emb = torch.randn(3, 10, 6) * torch.rand(3, 10, 1)
    pos, neg = frame_pseudo_labels(emb, 0.35, 0.35)
    ref_pos, ref_neg = loop_labels(emb, 0.35, 0.35)
    assert pos.shape == neg.shape == (3, 3, 10, 10)
    assert pos.dtype == neg.dtype == torch.bool
    assert torch.equal(pos, ref_pos)
    assert torch.equal(neg, ref_neg)
    # round(10 * 0.35) = round(3.5) = 4 (half to even)
    assert torch.all(pos.sum(-1) == 4)
    assert torch.all(neg.sum(-1) == 4)
    assert not (pos & neg).any()
    # a frame is its own most similar frame
    eye = torch.eye(10, dtype=torch.bool)
    for a in range(3):
        assert torch.all(pos[a, a][eye])


@pytest.mark.parametrize('t,rate,k', [(28, 0.35, 10), (2, 0.1, 1),
                                      (20, 0.5, 10)])
def test_counts_per_row(t, rate, k):
    torch.manual_seed(1)
    emb = torch.randn(2, t, 4)
    pos, neg = frame_pseudo_labels(emb, rate, rate)
    assert torch.all(pos.sum(-1) == k)
    assert torch.all(neg.sum(-1) == k)
    assert not (pos & neg).any()


def test_asymmetric_rates_and_overlap():
    torch.manual_seed(2)
    emb = torch.randn(2, 5, 3)
    pos, neg = frame_pseudo_labels(emb, top_rate=0.8, bottom_rate=0.4)
    ref_pos, ref_neg = loop_labels(emb, 0.8, 0.4)
    assert torch.equal(pos, ref_pos) and torch.equal(neg, ref_neg)
    assert torch.all(pos.sum(-1) == 4)
    # 4 positives + 2 negatives > 5 frames: overlap goes to positives
    assert torch.all(neg.sum(-1) == 1)
    # single frame: positive only
    pos1, neg1 = frame_pseudo_labels(torch.randn(2, 1, 3))
    assert pos1.all() and not neg1.any()


def test_mask():
    torch.manual_seed(3)
    emb = torch.randn(3, 8, 5)
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[0, 6:] = False  # 6 valid frames
    mask[2, 3:] = False  # 3 valid frames
    pos, neg = frame_pseudo_labels(emb, 0.35, 0.35, mask=mask)
    ref_pos, ref_neg = loop_labels(emb, 0.35, 0.35, mask=mask)
    assert torch.equal(pos, ref_pos)
    assert torch.equal(neg, ref_neg)
    # padded frames j are neither, padded query frames i get nothing
    assert not pos[:, 0, :, 6:].any() and not neg[:, 2, :, 3:].any()
    assert not pos[2, :, 3:].any() and not neg[0, :, 6:].any()
    # counts follow the valid frames of b: round(6*.35)=2, round(3*.35)=1
    assert torch.all(pos[1, 0].sum(-1) == 2)
    assert torch.all(pos[1, 2].sum(-1) == 1)
    assert torch.all(neg[1, 2].sum(-1) == 1)
    # padded values must not influence the labels
    emb2 = emb.clone()
    emb2[~mask] = 1e3 * torch.randn(int((~mask).sum()), 5)
    pos2, neg2 = frame_pseudo_labels(emb2, 0.35, 0.35, mask=mask)
    assert torch.equal(pos2, pos) and torch.equal(neg2, neg)


def test_pairs_select_pairs():
    torch.manual_seed(4)
    emb = torch.randn(4, 6, 5)
    mask = torch.rand(4, 6) > 0.2
    pairs = torch.tensor([[0, 1], [2, 2], [3, 0], [1, 3]])
    pos, neg = frame_pseudo_labels(emb, mask=mask, pairs=pairs)
    full_pos, full_neg = frame_pseudo_labels(emb, mask=mask)
    assert pos.shape == (4, 6, 6)
    for p, (a, b) in enumerate(pairs.tolist()):
        assert torch.equal(pos[p], full_pos[a, b])
        assert torch.equal(neg[p], full_neg[a, b])


def test_wrapper_and_errors():
    labeler = FramePseudoLabeler(top_rate=0.5, bottom_rate=0.25)
    emb = torch.randn(2, 8, 3)
    pos, neg = labeler(emb)
    ref_pos, ref_neg = loop_labels(emb, 0.5, 0.25)
    assert torch.equal(pos, ref_pos) and torch.equal(neg, ref_neg)
    from mmaction.registry import MODELS
    built = MODELS.build(dict(type='FramePseudoLabeler', top_rate=0.3))
    assert isinstance(built, FramePseudoLabeler) and built.top_rate == 0.3
    with pytest.raises(ValueError, match='top_rate'):
        FramePseudoLabeler(top_rate=0)
    with pytest.raises(ValueError, match=r'\[N, T, C\]'):
        frame_pseudo_labels(torch.randn(8, 3))
    with pytest.raises(ValueError, match=r'mask must be \[N, T\] = \[2, 8\]'):
        frame_pseudo_labels(emb, mask=torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        frame_pseudo_labels(emb, pairs=torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match=r'\[P, 2\]'):
        frame_pseudo_labels(emb, pairs=torch.tensor([[0.0, 1.0]]))
