"""The faiss index of global descriptors behind the shortlist."""
import json
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from search_utils import make_model, random_videos

from hapvr_mm.search import (GlobalIndex, MemoryStore, global_recall,
                             recall_at_k, search)
from hapvr_mm.search import vector_index as vi

needs_faiss = pytest.mark.skipif(
    not vi.faiss_available(), reason='faiss is not installed')


def _unit(n, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=gen), dim=-1)


def _clustered(n, d, clusters, seed=0):
    """``n`` unit descriptors around ``clusters`` centres, and queries."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, d, generator=gen)
    label = torch.randint(0, clusters, (n, ), generator=gen)
    x = F.normalize(
        centres[label] + 0.5 * torch.randn(n, d, generator=gen), dim=-1)
    pick = torch.randint(0, n, (50, ), generator=gen)
    q = F.normalize(x[pick] + 0.2 * torch.randn(50, d, generator=gen), dim=-1)
    return x, q


@pytest.mark.parametrize('kind',
                         [pytest.param('flat', marks=needs_faiss), 'torch'])
def test_exact_top_k_equals_matmul(kind):
    x, q = _unit(3000, 32), _unit(20, 32, seed=1)
    index = GlobalIndex(x, kind=kind)
    assert index.exact and index.kind == kind
    scores, rows = index.search(q, 25)
    assert scores.shape == rows.shape == (20, 25)
    sim = q @ x.t()
    want = torch.topk(sim, 25, dim=1)
    assert np.array_equal(rows, want.indices.numpy())
    assert np.allclose(scores, want.values.numpy(), atol=1e-5)
    # a subset of rows
    subset = np.arange(1, 3000, 7)
    _, rows = index.search(q, 10, rows=subset)
    want = subset[torch.topk(sim[:, subset], 10, dim=1).indices.numpy()]
    assert np.array_equal(rows, want)
    assert global_recall(index, x, q, 100) == 1.0


@needs_faiss
def test_auto_kind_by_size():
    x = _unit(500, 16)
    assert GlobalIndex(x).kind == 'flat'
    assert GlobalIndex(x, exact_below=100).kind == 'ivf'
    with pytest.raises(ValueError, match='kind'):
        GlobalIndex(x, kind='lsh')
    with pytest.raises(ValueError, match='D=8'):
        GlobalIndex(x).search(_unit(2, 8), 3)


@needs_faiss
def test_approximate_recall_on_clustered_descriptors():
    x, q = _clustered(20000, 64, clusters=200)
    start = time.perf_counter()
    index = GlobalIndex(x, exact_below=10000)
    assert index.kind == 'ivf' and not index.exact
    recall = global_recall(index, x, q, 100)
    assert recall >= 0.95, recall
    # fewer lists visited, lower recall: the measurement is not vacuous
    index.set_nprobe(1)
    assert global_recall(index, x, q, 100) < recall
    assert time.perf_counter() - start < 20


def test_recall_at_k():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[1, 2, 9, 3], [8, 7, 6, 0]])
    assert recall_at_k(found, exact, 2) == pytest.approx((1 + 0) / 2)
    assert recall_at_k(found, exact, 4) == pytest.approx((3 / 4 + 3 / 4) / 2)
    with pytest.raises(ValueError, match='2 exact'):
        recall_at_k(found[:1], exact, 2)


@needs_faiss
@pytest.mark.parametrize('kind', ['flat', 'ivf'])
def test_save_load_round_trip(tmp_path, kind):
    path = str(tmp_path / 'index.h5')
    x, q = _clustered(4000, 16, clusters=20)
    built = GlobalIndex.load_or_build(path, x, kind=kind, nprobe=5)
    fpath, jpath = GlobalIndex.paths_for(path)
    meta = json.load(open(jpath))
    assert meta['n'] == 4000 and meta['d'] == 16 and meta['kind'] == kind
    assert meta['fingerprint'] == vi.descriptor_fingerprint(x)
    loaded = GlobalIndex.load(path, x)
    assert loaded is not None and loaded.kind == kind
    assert loaded.nprobe == built.nprobe
    for a, b in zip(built.search(q, 30), loaded.search(q, 30)):
        assert np.array_equal(a, b)
    # load_or_build reuses the saved file
    mtime = (tmp_path / 'index.h5.faiss').stat().st_mtime_ns
    GlobalIndex.load_or_build(path, x, kind=kind)
    assert (tmp_path / 'index.h5.faiss').stat().st_mtime_ns == mtime


@needs_faiss
def test_rebuilt_when_rows_are_added_or_changed(tmp_path):
    path = str(tmp_path / 'index.h5')
    x = _unit(300, 16)
    GlobalIndex.load_or_build(path, x)
    grown = torch.cat([x, _unit(5, 16, seed=3)])
    assert GlobalIndex.load(path, grown) is None
    index = GlobalIndex.load_or_build(path, grown)
    assert len(index) == 305
    assert json.load(open(path + '.faiss.json'))['n'] == 305
    _, rows = index.search(grown[-2:], 1)
    assert rows[:, 0].tolist() == [303, 304]
    # same count, one row changed: the fingerprint differs
    changed = grown.clone()
    changed[7] = changed[8]
    assert GlobalIndex.load(path, changed) is None
    assert GlobalIndex.load(path, grown) is not None
    # another kind asked for is rebuilt too
    assert GlobalIndex.load_or_build(path, grown, kind='ivf').kind == 'ivf'
    # a damaged file is rebuilt, not trusted
    (tmp_path / 'index.h5.faiss').write_bytes(b'garbage')
    assert GlobalIndex.load(path, grown) is None
    assert len(GlobalIndex.load_or_build(path, grown)) == 305


def test_without_faiss_falls_back_to_torch(monkeypatch, tmp_path):
    monkeypatch.setattr(vi, '_faiss', lambda: None)
    x, q = _unit(400, 16), _unit(3, 16, seed=1)
    with pytest.warns(UserWarning, match='faiss is not installed'):
        index = GlobalIndex(x, kind='ivf')
    assert index.kind == 'torch' and index.exact
    index = GlobalIndex.load_or_build(str(tmp_path / 'i.h5'), x)
    assert index.kind == 'torch'
    assert not (tmp_path / 'i.h5.faiss').exists()
    _, rows = index.search(q, 5)
    assert np.array_equal(rows, torch.topk(q @ x.t(), 5).indices.numpy())


def _store(n=40, q=3, seed=0):
    model = make_model(seed=seed)
    with torch.no_grad():
        feats = [model.index_video(v) for v in random_videos(n + q, seed)]
    glob = _unit(n + q, 8, seed=seed)
    return model, MemoryStore(feats[:n], glob[:n]), feats[n:], glob[n:]


def _same(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.rows.tolist() == rb.rows.tolist()
        assert np.allclose(ra.scores, rb.scores, atol=1e-6, equal_nan=True)
        assert np.allclose(ra.global_scores, rb.global_scores, atol=1e-6)


@pytest.mark.parametrize('kind',
                         [pytest.param('flat', marks=needs_faiss), 'torch'])
def test_search_unchanged_with_exact_index(kind):
    model, store, queries, qglob = _store()
    index = GlobalIndex(store.global_desc, kind=kind)
    cases = [
        dict(topk=5, shortlist=10),
        dict(topk=3, shortlist='20%', exclude=[4, None, 17]),
        dict(topk=4, shortlist=6, rows=range(3, 40, 2), exclude=[5, 6, 7]),
        dict(topk=None, shortlist=8),
        dict(topk=2, shortlist=5, rank_all=True),
    ]
    for kw in cases:
        dense = search(model, queries, store, query_globals=qglob, **kw)
        fast = search(
            model,
            queries,
            store,
            query_globals=qglob,
            global_index=index,
            **kw)
        _same(dense, fast)


@needs_faiss
def test_search_refuses_an_index_of_other_rows():
    model, store, queries, qglob = _store()
    index = GlobalIndex(store.global_desc[:30])
    with pytest.raises(ValueError, match='rebuild'):
        search(
            model,
            queries,
            store,
            shortlist=5,
            query_globals=qglob,
            global_index=index)
