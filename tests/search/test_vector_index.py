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
    assert meta['version'] == vi.SIDECAR_VERSION
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
    # same count, a probed row changed: the cheap fingerprint differs
    probed = int(vi.probe_rows(305)[3])
    changed = grown.clone()
    changed[probed] = changed[probed + 1]
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


# the memory-bounded kind and the cheap validity check (issue 21)


@needs_faiss
def test_ivfpq_recall_and_exact_rescore(tmp_path):
    x, q = _clustered(6000, 32, clusters=60)
    # isotropic descriptors: the rotation keeps all 32 dims
    index = GlobalIndex(x, kind='ivfpq', pq_m=4, nprobe=16, opq_dims=32)
    assert index.kind == 'ivfpq' and not index.exact
    # 4 bytes of code a vector instead of 128: the index is much smaller
    assert index.memory_bytes < 6000 * 32 * 4 / 2
    scores, rows = index.search(q, 50)
    assert rows.shape == (50, 50) and (rows >= 0).all()
    # the scores are the exact inner products of the returned rows, sorted
    want = (q.unsqueeze(1) * x[torch.from_numpy(rows)]).sum(-1).numpy()
    assert np.allclose(scores, want, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()
    recall = global_recall(index, x, q, 50)
    assert recall >= 0.9, recall
    # without the exact re-score of refine * k candidates recall falls
    index.refine = 1
    assert global_recall(index, x, q, 50) < recall
    index.refine = vi.DEFAULT_REFINE
    # save: the float16 copy is written, the loaded index re-scores from it
    path = str(tmp_path / 'index.h5')
    index.save(path)
    f16 = tmp_path / 'index.h5.faiss.f16'
    assert f16.stat().st_size == 6000 * 32 * 2
    loaded = GlobalIndex.load(path, x)
    assert loaded is not None and loaded.kind == 'ivfpq'
    assert isinstance(loaded._vectors, np.memmap)
    s2, r2 = loaded.search(q, 50)
    # the same candidates, re-scored from the float16 values on disk
    assert recall_at_k(r2, rows, 50) >= 0.98
    x16 = x.half().float()
    want = (q.unsqueeze(1) * x16[torch.from_numpy(r2)]).sum(-1).numpy()
    assert np.allclose(s2, want, atol=1e-5)


@needs_faiss
def test_auto_kind_by_memory_budget():
    assert vi.choose_kind(50, 512) == 'flat'
    assert vi.choose_kind(1_000_000, 512) == 'ivf'  # 1.9 GiB with ids
    assert vi.choose_kind(1_100_000, 512) == 'ivfpq'
    assert vi.choose_kind(10_000_000, 512, memory_budget='32GiB') == 'ivf'
    assert vi.choose_kind(200_000, 512, memory_budget='256MiB') == 'ivfpq'
    assert vi.parse_bytes('2GiB') == 2 << 30
    assert vi.parse_bytes('1.5GB') == 1_500_000_000
    assert vi.parse_bytes(1024) == 1024
    for bad in ('lots', '-1GiB', '2XB'):
        with pytest.raises(ValueError, match='memory size'):
            vi.parse_bytes(bad)
    x = _unit(3000, 16)
    assert GlobalIndex(
        x, exact_below=100, memory_budget='10KiB', pq_m=4).kind == 'ivfpq'


@needs_faiss
@pytest.mark.parametrize('kind', ['flat', 'ivf', 'ivfpq'])
def test_growth_adds_rows_without_retraining(tmp_path, monkeypatch, kind):
    path = str(tmp_path / 'index.h5')
    x, q = _clustered(4000, 16, clusters=20)
    ids = [f'v{i}' for i in range(4000)]
    kw = dict(kind=kind, ids=ids[:3000], tag='model-a')
    if kind == 'ivfpq':
        # 8 bytes of 4-bit codes for 16 dims: fine enough that a row's
        # own copy is among its 4 best candidates
        kw['pq_m'] = 8
    GlobalIndex.load_or_build(path, x[:3000], **kw)
    # an index grown by appending: rows added, nothing retrained
    monkeypatch.setattr(GlobalIndex, '_train', _no_retrain)
    monkeypatch.setattr(GlobalIndex, '__init__', _no_retrain)
    kw['ids'] = ids
    grown = GlobalIndex.load_or_build(path, x, **kw)
    assert len(grown) == 4000 and grown.kind == kind
    meta = json.load(open(path + '.faiss.json'))
    assert meta['n'] == 4000 and meta['ids'] == vi.ids_digest(ids)
    _, rows = grown.search(x[-3:], 1)
    assert rows[:, 0].tolist() == [3997, 3998, 3999]
    if kind == 'ivfpq':
        f16 = np.fromfile(path + '.faiss.f16', np.float16).reshape(-1, 16)
        assert np.array_equal(f16, x.half().numpy())
    # the grown files load as they are
    again = GlobalIndex.load(path, x, ids=ids, tag='model-a')
    assert again is not None and len(again) == 4000
    monkeypatch.undo()
    # more than doubled: rebuilt (and retrained)
    calls = []
    real = GlobalIndex.__init__

    def spy(self, *a, **k):
        calls.append(1)
        real(self, *a, **k)

    monkeypatch.setattr(GlobalIndex, '__init__', spy)
    big = torch.cat([x, x[:4100]])
    GlobalIndex.load_or_build(path, big, **dict(kw, ids=None, kind=kind))
    assert calls


def _no_retrain(*args, **kwargs):
    raise AssertionError('the grown index was rebuilt')


@needs_faiss
def test_cheap_validity_check(tmp_path, monkeypatch):
    path = str(tmp_path / 'index.h5')
    x = _unit(5000, 16)
    ids = [f'v{i}' for i in range(5000)]
    GlobalIndex.load_or_build(path, x, ids=ids, tag='model-a')
    assert GlobalIndex.load(path, x, ids=ids, tag='model-a') is not None
    # another model, other ids, a changed probed row, fewer rows: invalid
    assert GlobalIndex.load(path, x, ids=ids, tag='model-b') is None
    assert GlobalIndex.load(
        path, x, ids=ids[:-1] + ['w'], tag='model-a') is None
    changed = x.clone()
    changed[int(vi.probe_rows(5000)[-1])] *= -1
    assert GlobalIndex.load(path, changed, ids=ids, tag='model-a') is None
    assert GlobalIndex.load(
        path, x[:4999], ids=ids[:4999], tag='model-a') is None
    # the check reads at most 72 rows, whatever N
    read = []
    real = vi._rows

    def spy(desc, rows):
        read.append(len(rows))
        return real(desc, rows)

    monkeypatch.setattr(vi, '_rows', spy)
    assert GlobalIndex.load(path, x, ids=ids, tag='model-a') is not None
    assert sum(read) <= 72
    # an old (version 1) sidecar is not trusted
    meta = json.load(open(path + '.faiss.json'))
    meta['version'] = 1
    json.dump(meta, open(path + '.faiss.json', 'w'))
    assert GlobalIndex.load(path, x, ids=ids, tag='model-a') is None


def test_exact_top_k_streams_chunks():
    x, q = _unit(1000, 8), _unit(4, 8, seed=2)
    scores, rows = vi.exact_top_k(x.numpy(), q, 20, chunk=64)
    want = torch.topk(q @ x.t(), 20, dim=1)
    assert np.array_equal(rows, want.indices.numpy())
    assert np.allclose(scores, want.values.numpy(), atol=1e-6)


def _index_file(path, n=30, d=8):
    from hapvr_mm.search import IndexWriter
    attrs = dict(
        fingerprint='fp', fps=1.0, short_side=8, crop=8, max_frames=None)
    gen = torch.Generator().manual_seed(0)
    with IndexWriter(str(path), d, attrs) as w:
        for i in range(n):
            w.add(f'v{i}.mp4', torch.randn(3, 2, d, generator=gen),
                  F.normalize(torch.randn(d, generator=gen), dim=0))
    return str(path)


def test_video_index_reads_global_descriptors_lazily(tmp_path, monkeypatch):
    import h5py

    from hapvr_mm.search import VideoIndex
    path = _index_file(tmp_path / 'idx.h5')
    read = []
    real = h5py.Dataset.__getitem__

    def spy(self, key):
        read.append(self.name)
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, '__getitem__', spy)
    with VideoIndex(path) as idx:
        assert '/global' not in read  # opening reads no descriptor
        assert idx.global_shape == (30, 8)
        rows = [7, 2, 7, 29]
        part = idx.global_rows(rows)
        view = idx.global_view()
        assert view.shape == (30, 8)
        with pytest.raises(IndexError, match='row 30'):
            view[[1, 30]]
        chunks = torch.cat([c for _, c in idx.iter_global(chunk=7)])
        full = idx.global_desc  # loaded on first use, then kept
        assert full.shape == (30, 8) and torch.equal(chunks, full)
        assert torch.equal(part, full[rows])
        assert np.array_equal(view[3:9], full[3:9].numpy())


@needs_faiss
def test_search_from_index_file_uses_global_rows(tmp_path):
    from hapvr_mm.search import VideoIndex
    path = _index_file(tmp_path / 'idx.h5', n=30)
    model = make_model()
    with VideoIndex(path) as idx:
        queries = [idx.features(r) for r in (0, 5)]
        qglob = idx.global_rows([0, 5])
        index = GlobalIndex.load_or_build(
            path, idx.global_view(), ids=idx.ids, tag='fp')
        fast = search(
            model,
            queries,
            idx,
            topk=4,
            shortlist=8,
            query_globals=qglob,
            global_index=index)
        assert idx._global_desc is None  # nothing loaded all descriptors
        dense = search(
            model, queries, idx, topk=4, shortlist=8, query_globals=qglob)
        _same(dense, fast)


def test_benchmark_smoke(tmp_path):
    pytest.importorskip('faiss')
    import os.path as osp

    from hapvr_mm.utils import load_script
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    mod = load_script(osp.join(root, 'benchmarks', 'search_scale.py'))
    res = mod.main([
        '--smoke', '--threads', '1', '--work-dir',
        str(tmp_path / 'wd'), '--json',
        str(tmp_path / 'out.json')
    ])
    assert res['kind'] == 'ivfpq' and res['n'] == 4000
    assert 0.5 <= res['recall_at_k'] <= 1.0
    assert res['e2e_s']['median'] > 0 and res['index_mib'] >= 0
    assert json.load(open(tmp_path / 'out.json'))['k'] == 50
    assert not (tmp_path / 'wd').exists()  # its files are deleted


def test_hapvr_scores_in_length_order_are_unchanged():
    from hapvr_mm.search import hapvr_scores
    model = make_model()
    with torch.no_grad():
        feats = [
            model.index_video(v)
            for v in random_videos(12, seed=3, lengths=(2, 20))
        ]
    plain = MemoryStore(feats[2:], _unit(10, 8))
    timed = MemoryStore(feats[2:], _unit(10, 8))
    timed.num_frames = np.array([len(f) for f in feats[2:]])
    rows = [9, 0, 4, 4, 7, 1]
    a = hapvr_scores(model, feats[:2], plain, rows, block=3)
    b = hapvr_scores(model, feats[:2], timed, rows, block=3)
    assert torch.allclose(a, b, atol=1e-5)
    one = hapvr_scores(model, feats[:2], plain, [7], block=1)
    assert torch.allclose(b[:, 4:5], one, atol=1e-5)


@needs_faiss
def test_ivfpq_opq_two_level_lists_exact_choice(tmp_path, monkeypatch):
    """The compressed kind: an OPQ rotation to 4 dims a code byte, lists
    from two-level k-means (forced here on a small set), 4-bit fast-scan
    codes, and a search that visits exactly the ``nprobe`` lists whose
    centroids are nearest (not the HNSW graph's guess), after a reload
    too."""
    faiss = vi._faiss()
    monkeypatch.setattr(vi, 'TWO_LEVEL_FROM', 16)
    calls = []
    import faiss.contrib.clustering as fcc
    real = fcc.two_level_clustering

    def spy(*a, **k):
        calls.append(a[1:3])
        return real(*a, **k)

    monkeypatch.setattr(fcc, 'two_level_clustering', spy)
    x, q = _clustered(6000, 32, clusters=60)
    index = GlobalIndex(x, kind='ivfpq', pq_m=4, nlist=40, nprobe=8)
    assert calls == [(6, 40)]  # sqrt(40) groups, then 40 lists
    assert (index.nlist, index.pq_bytes, index.opq_dims) == (40, 4, 16)
    assert index.fast_scan and index._ivf.pq.nbits == 4
    assert isinstance(index._faiss, faiss.IndexPreTransform)
    # the lists visited: the exact top nprobe by centroid similarity
    xq = index._transform(q.numpy())
    rotate = index._faiss.chain.at(0)
    assert np.allclose(xq, rotate.apply_py(q.numpy()), atol=1e-5)
    lists, dis = index._choose_lists(xq)
    sim = xq @ index._centroids
    want = np.argsort(-sim, axis=1)[:, :8]
    assert np.array_equal(np.sort(lists, 1), np.sort(want, 1))
    assert np.allclose(dis, np.take_along_axis(sim, lists, 1))
    # and a search finds nothing outside them
    _, rows = index.search(q, 20)
    own = index._ivf.quantizer.search(
        index._transform(x[torch.from_numpy(rows[0])].numpy()), 1)[1]
    assert set(own[:, 0].tolist()) <= set(lists[0].tolist())
    index.set_nprobe(40)
    recall = global_recall(index, x, q, 50)
    assert recall >= 0.8, recall
    path = str(tmp_path / 'index.h5')
    index.save(path)
    loaded = GlobalIndex.load(path, x)
    assert loaded.opq_dims == 16 and loaded.fast_scan
    assert global_recall(loaded, x, q, 50) >= recall - 0.02
    # the defaults follow the size: N / 150 lists, one in eight searched
    assert vi.default_pq_nlist(10_000_000) == 65536
    assert vi.default_pq_nlist(1_000_000) == 6667
    # these descriptors spread over all 32 dimensions: keeping them all,
    # and 8-bit codes, beat the defaults
    full = GlobalIndex(
        x, kind='ivfpq', pq_m=4, nlist=40, opq_dims=32, fast_scan=False)
    full.set_nprobe(40)
    assert full.opq_dims == 32 and not full.fast_scan
    assert full.pq_bytes == 4 and full._ivf.pq.nbits == 8
    assert global_recall(full, x, q, 50) > recall
    whole = GlobalIndex(x, kind='ivfpq', pq_m=4)
    assert whole.nlist == vi.default_pq_nlist(6000) == 40
    assert whole.nprobe == 5  # one list in eight


@needs_faiss
def test_ivfpq_saved_without_rotation_still_loads(tmp_path):
    """An 'ivfpq' index saved before the OPQ rotation (a bare IndexIVFPQ
    over an HNSW quantizer) loads, searches and grows."""
    faiss = vi._faiss()
    x, q = _clustered(4000, 16, clusters=20)
    index = GlobalIndex(x, kind='ivfpq', pq_m=4)
    quantizer = faiss.IndexHNSWFlat(16, 32, faiss.METRIC_INNER_PRODUCT)
    bare = faiss.IndexIVFPQ(quantizer, 16, 20, 4, 8,
                            faiss.METRIC_INNER_PRODUCT)
    xn = x.numpy()
    bare.train(xn)
    bare.add(xn)
    index._faiss = bare
    path = str(tmp_path / 'index.h5')
    index.save(path)
    loaded = GlobalIndex.load(path, x)
    assert loaded is not None and loaded.opq_dims is None
    assert loaded.nlist == 20 and loaded.pq_bytes == 4
    loaded.set_nprobe(20)
    assert global_recall(loaded, x, q, 50) >= 0.9


@needs_faiss
def test_ivfpq_preload_maps_the_float16_copy(tmp_path):
    """preload() maps the whole float16 copy: same results, the array is
    no longer a lazy memory map, and saving again keeps the file."""
    x, q = _clustered(3000, 16, clusters=20)
    path = str(tmp_path / 'index.h5')
    index = GlobalIndex.load_or_build(path, x, kind='ivfpq', pq_m=8)
    before = index.search(q, 20)
    assert not GlobalIndex(x, kind='flat').preload()  # nothing to map
    assert index.preload()
    assert not isinstance(index._vectors, np.memmap)
    after = index.search(q, 20)
    assert np.array_equal(before[1], after[1])
    assert np.allclose(before[0], after[0])
    index.save(path)
    f16 = np.fromfile(path + '.faiss.f16', np.float16).reshape(-1, 16)
    assert np.array_equal(f16, x.half().numpy())
