"""Region attention, comparator and the similarity head."""
import pytest
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS

from hapvr_mm.models.similarity import aggregate, frame_similarity


def build_head(**kw):
    cfg = dict(type='SimilarityHead', dims=8)
    cfg.update(kw)
    return MODELS.build(cfg).double()


def test_region_attention_formula():
    torch.manual_seed(0)
    att = MODELS.build(dict(type='RegionAttention', dims=6)).double()
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    w = att.proj.weight
    u = att.context[:, 0]
    ref = torch.zeros_like(x)
    for i in range(2):
        for j in range(3):
            a = torch.sigmoid(u @ torch.tanh(w @ x[i, j] + att.proj.bias))
            ref[i, j] = x[i, j] * a
    torch.testing.assert_close(att(x), ref)
    assert torch.all(att.proj.bias == 0)
    with pytest.raises(ValueError, match=r'\[\.\.\., 6\]'):
        att(torch.zeros(2, 5))


def loop_comparator(comp, sim):
    """The comparator on one unpadded map, written out layer by layer."""
    x = sim[None, None]
    x = F.max_pool2d(
        F.relu(F.conv2d(x, comp.conv1.weight, comp.conv1.bias, padding=1)), 2)
    x = F.max_pool2d(
        F.relu(F.conv2d(x, comp.conv2.weight, comp.conv2.bias, padding=1)), 2)
    x = F.relu(F.conv2d(x, comp.conv3.weight, comp.conv3.bias, padding=1))
    return F.conv2d(x, comp.fconv.weight, comp.fconv.bias)[0, 0]


def test_comparator_padding_never_changes_output():
    torch.manual_seed(1)
    comp = MODELS.build(dict(type='VideoComparator')).double()
    for conv in (comp.conv1, comp.conv2, comp.conv3, comp.fconv):
        torch.nn.init.normal_(conv.bias, std=0.1)
    lengths = [(9, 13), (16, 5), (11, 11)]
    padded = torch.randn(3, 20, 20, dtype=torch.float64)
    rows = torch.zeros(3, 20, dtype=torch.bool)
    cols = torch.zeros(3, 20, dtype=torch.bool)
    for b, (tq, tt) in enumerate(lengths):
        rows[b, :tq] = True
        cols[b, :tt] = True
    out, prow, pcol = comp(padded, rows, cols)
    assert out.shape == (3, 5, 5)
    for b, (tq, tt) in enumerate(lengths):
        ref = loop_comparator(comp, padded[b, :tq, :tt])
        assert ref.shape == (tq // 4, tt // 4)
        assert int(prow[b].sum()) == tq // 4
        assert int(pcol[b].sum()) == tt // 4
        torch.testing.assert_close(out[b, :tq // 4, :tt // 4], ref)
        # padded cells are zero
        assert torch.all(out[b][~(prow[b][:, None] & pcol[b][None])] == 0)


def test_comparator_rejects_bad_shapes():
    comp = MODELS.build(dict(type='VideoComparator'))
    with pytest.raises(ValueError, match=r'\[B, Tq, Tt\]'):
        comp(torch.zeros(8, 8))
    with pytest.raises(ValueError, match='at least 4'):
        comp(torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match='masks'):
        comp(torch.zeros(1, 8, 8), torch.ones(1, 7, dtype=torch.bool))


def test_head_scores_follow_method():
    torch.manual_seed(2)
    head = build_head()
    q = F.normalize(torch.randn(2, 12, 4, 8, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(3, 10, 4, 8, dtype=torch.float64), dim=-1)
    qi, ti = head.index(q), head.index(t)
    out = head(qi, ti, train=False)
    fsim = frame_similarity(qi, ti, 'topk_chamfer', 0.1)
    torch.testing.assert_close(out['frame_similarity'], fsim)
    for a in range(2):
        for b in range(3):
            v = loop_comparator(head.comparator, fsim[a, b])
            torch.testing.assert_close(out['raw'][a, b], v)
            ev = aggregate(F.hardtanh(v)[None], 'topk_chamfer', 0.03)[0]
            torch.testing.assert_close(out['similarity'][a, b], ev)
    train = head(qi, ti, train=True)['similarity']
    torch.testing.assert_close(train, out['similarity'] / 2 + 0.5)
    assert float(out['similarity'].abs().max()) <= 1
    sym = build_head(symmetric=True)
    sym.load_state_dict(head.state_dict())
    s1 = sym(qi, ti)['similarity']
    s2 = head(ti, qi)['similarity'].t()
    torch.testing.assert_close(s1, (out['similarity'] + s2) / 2)


def test_head_without_comparator_and_modes():
    torch.manual_seed(3)
    for mode in ('chamfer', 'max', 'average'):
        head = build_head(
            comparator=None, attention=False, f2f_mode=mode, v2v_mode=mode)
        q = torch.randn(2, 3, 4, 8, dtype=torch.float64)
        out = head(q, q)
        fs = frame_similarity(q, q, mode)
        ref = aggregate(F.hardtanh(fs).flatten(0, 1), mode).view(2, 2)
        torch.testing.assert_close(out['similarity'], ref)
        assert 'raw' not in out
    with pytest.raises(ValueError, match='aggregation'):
        build_head(v2v_mode='median')
