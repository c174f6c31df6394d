"""Exhaustive and shortlisted search."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from search_utils import make_model, random_videos

from hapvr_mm.search import (MemoryStore, hapvr_scores, resolve_shortlist,
                             search)


@pytest.mark.parametrize('value,n,k', [(None, 50, 50), (7, 50, 7),
                                       ('7', 50, 7), (500, 50, 50),
                                       (0.05, 50, 3), ('0.05', 50, 3),
                                       ('5%', 50, 3), ('100%', 50, 50),
                                       (0.01, 20000, 200), ('1%', 3, 1),
                                       (1.0, 9, 9)])
def test_resolve_shortlist(value, n, k):
    assert resolve_shortlist(value, n) == k


@pytest.mark.parametrize('value', [0, '0', -3, '0%', 1.5, '150%', 'abc'])
def test_resolve_shortlist_rejects(value):
    with pytest.raises(ValueError, match='shortlist must be'):
        resolve_shortlist(value, 10)


class CountingStore(MemoryStore):
    """Records which rows were read (scored with HAP-VR)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = []

    def features(self, row):
        self.read.append(int(row))
        return super().features(row)


def _setup(n=12, q=2, seed=0):
    model = make_model(seed=seed)
    with torch.no_grad():
        feats = [model.index_video(v) for v in random_videos(n + q, seed)]
    gen = torch.Generator().manual_seed(seed)
    glob = F.normalize(torch.randn(n + q, 8, generator=gen), dim=-1)
    store = CountingStore(feats[:n], glob[:n])
    return model, store, feats[n:], glob[n:]


def test_exhaustive_equals_video_similarity():
    model, store, queries, qglob = _setup()
    expected = model.video_similarity(
        queries, [store.features(i) for i in range(len(store))], indexed=True)
    got = hapvr_scores(model, queries, store, range(len(store)), block=5)
    assert torch.allclose(got, expected, atol=1e-5)
    res = search(model, queries, store, topk=4, query_globals=qglob)
    for qi, r in enumerate(res):
        order = torch.argsort(expected[qi], descending=True)[:4]
        assert r.rows.tolist() == order.tolist()
        assert np.allclose(r.scores, expected[qi][order].numpy(), atol=1e-5)
        assert np.allclose(
            r.global_scores,
            (qglob[qi] @ store.global_desc.t())[order].numpy(),
            atol=1e-6)
        assert (np.diff(r.scores) <= 0).all()


def test_shortlist_scores_only_the_global_top_k():
    model, store, queries, qglob = _setup()
    glob = qglob @ store.global_desc.t()
    exhaustive = hapvr_scores(model, queries, store, range(len(store)))
    for qi in range(len(queries)):
        store.read.clear()
        res = search(
            model, [queries[qi]],
            store,
            topk=2,
            shortlist=4,
            query_globals=qglob[qi:qi + 1],
            rank_all=True)[0]
        top4 = torch.argsort(glob[qi], descending=True)[:4].tolist()
        assert sorted(store.read) == sorted(top4)  # nothing else scored
        head = res.rows[:2]  # topk cut is not applied with rank_all
        assert set(res.rows[:4].tolist()) == set(top4)
        assert np.allclose(
            res.scores[:4],
            np.sort(exhaustive[qi][top4].numpy())[::-1],
            atol=1e-5)
        # the rest follows in global-descriptor order, without a score
        rest = [
            r for r in torch.argsort(glob[qi], descending=True).tolist()
            if r not in top4
        ]
        assert res.rows[4:].tolist() == rest
        assert np.isnan(res.scores[4:]).all()
        assert head.tolist() == res.rows[:2].tolist()


def test_full_shortlist_equals_exhaustive_and_k_grows_to_topk():
    model, store, queries, qglob = _setup()
    ex = search(model, queries, store, topk=None, query_globals=qglob)
    full = search(
        model, queries, store, topk=None, shortlist=1.0, query_globals=qglob)
    for a, b in zip(ex, full):
        assert set(a.rows.tolist()) == set(b.rows.tolist())
        assert np.allclose(a.scores, b.scores, atol=1e-5)
    store.read.clear()
    res = search(
        model,
        queries[:1],
        store,
        topk=5,
        shortlist=1,
        query_globals=qglob[:1])
    assert len(res[0].rows) == 5 and len(store.read) == 5


def test_rows_subset_and_exclude():
    model, store, queries, qglob = _setup()
    rows = [1, 3, 5, 7, 9]
    for shortlist in (None, 3):
        res = search(
            model,
            queries,
            store,
            topk=None,
            shortlist=shortlist,
            query_globals=qglob,
            rows=rows,
            exclude=[3, None],
            rank_all=True)
        assert sorted(res[0].rows.tolist()) == [1, 5, 7, 9]
        assert sorted(res[1].rows.tolist()) == rows


def test_shortlist_needs_query_descriptors():
    model, store, queries, _ = _setup()
    with pytest.raises(ValueError, match='query_globals'):
        search(model, queries, store, shortlist=3)


def test_bfloat16_precision_is_close_and_scoped():
    """``precision='bfloat16'`` runs the region products in bfloat16:
    scores move by less than 1e-2 (not at all in float32), the default
    is float32 again after the call, and unknown values are refused."""
    model = make_model(dims=64, seed=1)
    with torch.no_grad():
        feats = [
            model.index_video(v)
            for v in random_videos(10, 1, lengths=(5, 12), regions=4, dims=64)
        ]
    store = MemoryStore(feats[:8], F.normalize(torch.randn(8, 64), dim=-1))
    exact = hapvr_scores(model, feats[8:], store, range(8))
    low = hapvr_scores(model, feats[8:], store, range(8), precision='bfloat16')
    diff = (low - exact).abs().max().item()
    assert 0 < diff < 1e-2, diff
    assert torch.equal(hapvr_scores(model, feats[8:], store, range(8)), exact)
    assert torch.equal(
        hapvr_scores(model, feats[8:], store, range(8), precision='float32'),
        exact)
    res = search(model, feats[8:], store, topk=8, precision='bfloat16')
    for qi, r in enumerate(res):
        assert np.allclose(r.scores, low[qi][r.rows].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match='precision'):
        search(model, feats[8:], store, precision='float64')


def test_prefetch_reads_in_a_helper_thread_same_scores():
    """Blocks after the first are read by a helper thread while the
    previous block is scored; the scores equal a plain read's, and a read
    error reaches the caller."""
    import threading
    model, store, queries, _ = _setup(n=12)
    where = []

    class Store(MemoryStore):

        def features(self, row):
            where.append(threading.get_ident())
            if row == 99:
                raise KeyError('row 99 is not in the index')
            return super().features(row)

    feats = [store.features(i) for i in range(12)]
    s2 = Store(feats + [feats[0]] * 88,
               store.global_desc[torch.arange(100) % 12])
    plain = hapvr_scores(
        model, queries, store, range(12), block=3, prefetch=False)
    where.clear()
    fetched = hapvr_scores(model, queries, s2, range(12), block=3)
    assert torch.equal(plain, fetched)
    assert len(where) == 12
    assert threading.get_ident() not in where
    with pytest.raises(KeyError, match='row 99'):
        hapvr_scores(model, queries, s2, [0, 1, 2, 99], block=2)
