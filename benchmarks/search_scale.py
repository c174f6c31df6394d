"""The global stage of search at 1M-10M videos: memory, latency, recall.

One command builds a synthetic collection of ``--n`` global descriptors on
disk, indexes it with :class:`hapvr_mm.search.GlobalIndex` and prints:

* build: seconds to train and fill the vector index, the process's peak
  resident memory during the build (``VmHWM``, anonymous memory: the
  descriptors are streamed from the file in chunks, never all held) and
  the index's own size in memory (its serialised faiss size);
* global stage: seconds per single query (median and p95 over
  ``--queries`` queries, ``--threads`` threads) for the top ``--k``
  (1000) and the top ``--topn`` (100), including the exact re-score of the
  candidates from the float16 descriptors on disk (``'ivfpq'``);
* recall@k of the index's top ``k`` against the exact top ``k`` (computed by
  streaming all descriptors through a matrix product);
* end to end: seconds per query of "top ``--topn`` re-ranked by HAP-VR":
  the global stage, reading the ``topn`` candidates' indexed features from
  an HDF5 re-rank store on disk, and the paper configuration's similarity
  head (configs/_base_/models/hapvr_r50_pca512.py, random weights: the cost
  does not depend on them) on them, in float32 and/or bfloat16 region
  products (``--precision``); ``hapvr_scores`` reads the next block of
  candidates while it scores one, so reading and scoring are one figure.

Synthetic data (fixed ``--seed``, generated chunk by chunk, float16 on
disk, ``D = 512``): ``max(16, n / 1000)`` cluster centres and per-row
noise, both Gaussian with a decaying spectrum (dimension ``j`` has standard
deviation proportional to ``(j + 1) ** -0.5``, as PCA-whitened-then-reduced
descriptors have), ``x = normalise(centre + 0.8 * noise)``; a fifth of the
rows are near-duplicates of another row of their chunk (``0.15 *`` noise
added). Queries are near-duplicates of random rows (``0.3 *`` noise). This
gives the index real neighbourhoods: isotropic noise would make every
descriptor equally far from every other and every approximate index look
bad, which real descriptors are not.

The re-rank store has ``--store-videos`` videos of 30 to 180 frames (1
frame a second), ``R = 9`` regions, ``D = 512``, float16, random unit
vectors: candidate row ``r`` reads store video ``r % store_videos``.

Example::

    python benchmarks/search_scale.py --n 1000000 --json scale_1m.json
    python benchmarks/search_scale.py --n 10000000 --json scale_10m.json
    python benchmarks/search_scale.py --smoke          # seconds, tiny sizes

The descriptor file (``--n * 1 KiB``) is deleted at the end unless
``--keep``; the same command regenerates it.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import statistics
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(HERE))
sys.path.insert(0, HERE)

from common import load_average, read_status_kb, reset_peak_rss  # noqa: E402

GEN_CHUNK = 65536


def spectrum(d: int) -> np.ndarray:
    """Per-dimension scale of the synthetic noise, unit expected norm."""
    s = (np.arange(d, dtype=np.float64) + 1)**-0.5
    return (s / np.sqrt((s**2).sum())).astype(np.float32)


def centres(n: int, d: int, seed: int) -> np.ndarray:
    """``max(16, n // 1000)`` unit cluster centres ``[C, D]``."""
    rng = np.random.default_rng([seed, 0])
    c = rng.standard_normal((max(16, n // 1000), d), np.float32) * spectrum(d)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def generate(path: str, n: int, d: int, seed: int) -> None:
    """Write ``n`` synthetic unit descriptors as raw float16 ``[n, d]``."""
    cen, spec = centres(n, d, seed), spectrum(d)
    with open(path + '.tmp', 'wb') as f:
        for ci, s in enumerate(range(0, n, GEN_CHUNK)):
            m = min(GEN_CHUNK, n - s)
            rng = np.random.default_rng([seed, 1, ci])
            label = rng.integers(0, len(cen), m)
            x = cen[label] + 0.8 * rng.standard_normal(
                (m, d), np.float32) * spec
            dup = np.flatnonzero(rng.random(m) < 0.2)
            src = rng.integers(0, m, len(dup))
            x[dup] = x[src] + 0.15 * rng.standard_normal(
                (len(dup), d), np.float32) * spec
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            f.write(x.astype(np.float16).tobytes())
    os.replace(path + '.tmp', path)


class RawRows:
    """``[n, d]`` float16 rows of a raw file, read with ``pread`` (no
    memory map, so reading them adds nothing to resident memory)."""

    def __init__(self, path: str, n: int, d: int) -> None:
        self.path, self.shape = path, (n, d)
        self.fd = os.open(path, os.O_RDONLY)
        self.row_bytes = 2 * d

    def _read(self, start: int, count: int) -> np.ndarray:
        buf = os.pread(self.fd, count * self.row_bytes, start * self.row_bytes)
        return np.frombuffer(buf, np.float16).reshape(count, self.shape[1])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, _ = key.indices(self.shape[0])
            return self._read(start, max(0, stop - start))
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        return np.concatenate([self._read(int(r), 1) for r in rows]) \
            if len(rows) else np.zeros((0, self.shape[1]), np.float16)


def queries_for(path: str, n: int, d: int, count: int,
                seed: int) -> np.ndarray:
    """``count`` near-duplicate queries of random rows, float32 unit."""
    rng = np.random.default_rng([seed, 2])
    rows = RawRows(path, n, d)
    src = rows[np.sort(rng.choice(n, count, replace=False))].astype(np.float32)
    q = src + 0.3 * rng.standard_normal(src.shape, np.float32) * spectrum(d)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def write_store(path: str,
                videos: int,
                d: int,
                seed: int,
                min_t: int = 30,
                max_t: int = 180) -> List[int]:
    """An HDF5 re-rank store of random unit float16 ``[T, 9, D]`` videos."""
    import h5py
    rng = np.random.default_rng([seed, 3])
    lengths = rng.integers(min_t, max_t + 1, videos).tolist()
    with h5py.File(path, 'w') as h5:
        grp = h5.create_group('features')
        for i, t in enumerate(lengths):
            x = rng.standard_normal((t, 9, d), np.float32)
            x /= np.linalg.norm(x, axis=-1, keepdims=True)
            grp.create_dataset(f'{i:08d}', data=x.astype(np.float16))
    return lengths


class H5Store:
    """Candidate row ``r`` -> store video ``r % videos`` (float32)."""

    def __init__(self, path: str, videos: int, lengths: List[int]) -> None:
        import h5py
        self.h5, self.videos = h5py.File(path, 'r'), videos
        self.lengths = np.asarray(lengths)

    def __len__(self) -> int:
        return 1 << 62

    def features(self, row: int) -> torch.Tensor:
        ds = self.h5['features'][f'{int(row) % self.videos:08d}']
        return torch.from_numpy(np.asarray(ds[()], dtype=np.float32))


def paper_head_model(d: int = 512):
    """HAP-VR with the paper configuration's similarity head, no backbone
    (its width set to ``d``: 512 in the paper)."""
    from mmaction.registry import MODELS
    from mmengine.config import Config

    import hapvr_mm  # noqa: F401
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(HERE), 'configs', '_base_', 'models',
            'hapvr_r50_pca512.py'))
    torch.manual_seed(0)
    head = dict(cfg.model.head, dims=d)
    model = MODELS.build(dict(type='HAPVR', head=head))
    return model.eval()


def _stats(values: List[float]) -> Dict[str, float]:
    arr = np.asarray(values)
    return dict(
        median=float(statistics.median(values)),
        p95=float(np.percentile(arr, 95)),
        mean=float(arr.mean()))


def run(n: int,
        d: int = 512,
        kind: str = 'auto',
        queries: int = 100,
        k: int = 1000,
        topn: int = 100,
        e2e_queries: int = 20,
        store_videos: int = 1000,
        threads: int = 2,
        seed: int = 0,
        work_dir: str = 'work_dirs/search_scale',
        keep: bool = False,
        nprobe: Optional[int] = None,
        nlist: Optional[int] = None,
        pq_m: Optional[int] = None,
        refine: int = 16,
        memory_budget: str = '2GiB',
        min_t: int = 30,
        max_t: int = 180,
        train_size: Optional[int] = None,
        sweep_nprobe=(),
        sweep_refine=(4, ),
        reuse: bool = False,
        opq_dims: Optional[int] = None,
        fast_scan: bool = True,
        preload: bool = True,
        precisions=('float32', )) -> Dict:
    """Build, time and check a global index of ``n`` synthetic videos."""
    import faiss

    from hapvr_mm.search import GlobalIndex, recall_at_k
    from hapvr_mm.search.vector_index import choose_kind, exact_top_k
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)
    os.makedirs(work_dir, exist_ok=True)
    index_path = osp.join(work_dir, f'scale_{n}.h5')
    desc_path = index_path + '.faiss.f16'  # the 'ivfpq' float16 copy
    out = dict(
        n=n,
        d=d,
        queries=queries,
        k=k,
        topn=topn,
        threads=threads,
        load_start=load_average())
    t0 = time.perf_counter()
    if not (reuse and osp.isfile(desc_path)
            and osp.getsize(desc_path) == n * d * 2):
        generate(desc_path, n, d, seed)
    out['generate_s'] = time.perf_counter() - t0
    print(
        f'generated {n} x {d} float16 descriptors in '
        f'{out["generate_s"]:.1f} s ({desc_path})',
        flush=True)
    qs = queries_for(desc_path, n, d, queries, seed)
    source = RawRows(desc_path, n, d)
    kind = choose_kind(n, d, memory_budget=memory_budget) \
        if kind == 'auto' else kind
    out['kind'] = kind
    rss0 = read_status_kb('VmRSS')
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    index = GlobalIndex(
        source,
        kind=kind,
        nlist=nlist,
        nprobe=nprobe,
        pq_m=pq_m,
        refine=refine,
        train_size=train_size,
        opq_dims=opq_dims,
        fast_scan=fast_scan)
    out['build_s'] = time.perf_counter() - t0
    out['build_peak_rss_mib'] = read_status_kb('VmHWM') / 1024
    out['build_peak_rss_reset'] = reset
    out['rss_before_build_mib'] = rss0 / 1024
    index.save(index_path)
    t0 = time.perf_counter()
    out['preloaded'] = bool(preload and index.preload())
    out['preload_s'] = time.perf_counter() - t0
    out['index_mib'] = index.memory_bytes / 2**20
    out['rss_after_build_mib'] = read_status_kb('VmRSS') / 1024
    out['nlist'] = index.nlist
    out['nprobe'] = index.nprobe
    out['refine'] = index.refine if kind == 'ivfpq' else None
    out['pq_m'] = index.pq_bytes
    out['opq_dims'] = index.opq_dims
    out['fast_scan'] = index.fast_scan
    print(
        f'built {kind} in {out["build_s"]:.1f} s, index '
        f'{out["index_mib"]:.0f} MiB, peak RSS '
        f'{out["build_peak_rss_mib"]:.0f} MiB',
        flush=True)
    # the exact top k, streaming the descriptors
    t0 = time.perf_counter()
    _, truth = exact_top_k(source, qs, k)
    out['exact_s_per_query'] = (time.perf_counter() - t0) / queries
    # global stage, one query at a time
    index.search(qs[:1], k)  # warm-up
    lat = {k: [], topn: []}
    found = []
    for cut in (k, topn):
        for i in range(queries):
            t0 = time.perf_counter()
            _, rows = index.search(qs[i:i + 1], cut)
            lat[cut].append(time.perf_counter() - t0)
            if cut == k:
                found.append(rows[0])
    out['global_ms_k'] = {key: 1e3 * v for key, v in _stats(lat[k]).items()}
    out['global_ms_topn'] = {
        key: 1e3 * v
        for key, v in _stats(lat[topn]).items()
    }
    out['recall_at_k'] = recall_at_k(np.stack(found), truth, k)
    out['recall_at_topn'] = recall_at_k(np.stack(found), truth, topn)
    print(
        f'global stage {out["global_ms_k"]["median"]:.1f} ms/query '
        f'(top {k}), recall@{k} {out["recall_at_k"]:.4f}',
        flush=True)
    # other nprobe / refine settings of the same index (queries only)
    out['sweep'] = []
    for probe in sweep_nprobe if index.nprobe else ():
        for ref in sweep_refine if kind == 'ivfpq' else (index.refine, ):
            index.set_nprobe(probe)
            index.refine = ref
            times, rows_ = [], []
            for i in range(queries):
                t0 = time.perf_counter()
                _, rows = index.search(qs[i:i + 1], k)
                times.append(time.perf_counter() - t0)
                rows_.append(rows[0])
            row = dict(
                nprobe=index.nprobe,
                refine=ref,
                median_ms=1e3 * statistics.median(times),
                p95_ms=1e3 * float(np.percentile(times, 95)),
                recall=recall_at_k(np.stack(rows_), truth, k))
            out['sweep'].append(row)
            print(
                f'  nprobe {row["nprobe"]:5d} refine {ref}: '
                f'{row["median_ms"]:.1f} ms (p95 {row["p95_ms"]:.1f}), '
                f'recall@{k} {row["recall"]:.4f}',
                flush=True)
    index.set_nprobe(out['nprobe'])
    index.refine = refine
    out['rss_after_queries_mib'] = read_status_kb('VmRSS') / 1024
    out['rss_anon_after_queries_mib'] = read_status_kb('RssAnon') / 1024
    # end to end: top topn re-ranked by HAP-VR from an HDF5 store on disk
    store_path = osp.join(work_dir, f'rerank_store_{store_videos}.h5')
    out['e2e_s'] = None
    if e2e_queries > 0:
        lengths = write_store(store_path, store_videos, d, seed, min_t, max_t)
        out['store_videos'] = store_videos
        out['store_mib'] = os.path.getsize(store_path) / 2**20
        out['store_mean_frames'] = float(np.mean(lengths))
        model = paper_head_model(d)
        store = H5Store(store_path, store_videos, lengths)
        rng = np.random.default_rng([seed, 4])
        qfeats = []
        with torch.no_grad():
            for _ in range(e2e_queries):
                t = int(rng.integers(min_t, max_t + 1))
                x = torch.from_numpy(
                    rng.standard_normal((t, 9, d), np.float32))
                qfeats.append(
                    model.index_video(
                        torch.nn.functional.normalize(x, dim=-1)))
        out['e2e'] = {}
        for prec in precisions:
            out['e2e'][prec] = _time_e2e(index, qs, store, model, qfeats, topn,
                                         e2e_queries, prec)
        first = out['e2e'][precisions[0]]
        out['e2e_s'], out['e2e_parts_median_s'] = first['s'], first['parts']
        store.h5.close()
    out['load_end'] = load_average()
    if not keep:
        for p in (desc_path, index_path + '.faiss', index_path + '.faiss.json',
                  store_path):
            if osp.exists(p):
                os.remove(p)
    return out


def _time_e2e(index, qs: np.ndarray, store: 'H5Store', model,
              qfeats: List[torch.Tensor], topn: int, count: int,
              precision: str) -> Dict:
    """Seconds per query of the global stage, then reading the ``topn``
    candidates from the store and scoring them with HAP-VR in
    ``precision`` (:func:`hapvr_scores` reads a block while it scores the
    previous one, so reading and scoring are timed together)."""
    from hapvr_mm.search import hapvr_scores
    e2e, parts = [], dict(global_s=[], rerank_s=[])
    queries = len(qs)
    with torch.no_grad():
        for i in range(count + 1):
            t0 = time.perf_counter()
            _, rows = index.search(qs[i % queries:i % queries + 1], topn)
            t1 = time.perf_counter()
            cand = _Candidates(store, rows[0][rows[0] >= 0])
            hapvr_scores(
                model, [qfeats[i % count]],
                cand,
                range(len(cand)),
                precision=precision)
            t2 = time.perf_counter()
            if i == 0:
                continue  # warm-up
            e2e.append(t2 - t0)
            parts['global_s'].append(t1 - t0)
            parts['rerank_s'].append(t2 - t1)
    return dict(
        s=_stats(e2e),
        parts={
            key: statistics.median(v)
            for key, v in parts.items()
        })


class _Candidates:
    """A query's candidate rows of the store, as a store of their own
    (with their frame counts, so that blocks are scored by length)."""

    def __init__(self, store: 'H5Store', rows: np.ndarray) -> None:
        self.store, self.rows = store, rows
        self.num_frames = store.lengths[rows % store.videos]

    def __len__(self) -> int:
        return len(self.rows)

    def features(self, i: int) -> torch.Tensor:
        return self.store.features(self.rows[i])


def format_table(res: Dict) -> str:
    """The figures of :func:`run` as a text table."""
    g, gt, e = res['global_ms_k'], res['global_ms_topn'], res['e2e_s']
    lines = [
        f'videos                      {res["n"]:,} x {res["d"]}',
        f'index kind                  {res["kind"]} (nlist {res["nlist"]}, '
        f'nprobe {res["nprobe"]}, PQ bytes {res["pq_m"]}, OPQ dims '
        f'{res.get("opq_dims")}, fast scan {res.get("fast_scan")}, refine '
        f'{res["refine"]})',
        f'generate descriptors        {res["generate_s"]:.1f} s',
        f'build (train + add)         {res["build_s"]:.1f} s',
        f'preload float16 copy        {res.get("preload_s", 0):.2f} s '
        f'(mapped: {res.get("preloaded")})',
        f'peak RSS during build       {res["build_peak_rss_mib"]:.0f} MiB'
        f' (before: {res["rss_before_build_mib"]:.0f} MiB)',
        f'index in memory             {res["index_mib"]:.0f} MiB',
        f'RSS after queries           {res["rss_after_queries_mib"]:.0f} MiB'
        f' (anonymous {res["rss_anon_after_queries_mib"]:.0f} MiB)',
        f'global stage, top {res["k"]:<5d}    median {g["median"]:.1f} ms, '
        f'p95 {g["p95"]:.1f} ms',
        f'global stage, top {res["topn"]:<5d}    median {gt["median"]:.1f} '
        f'ms, p95 {gt["p95"]:.1f} ms',
        f'exact (streamed) per query  {res["exact_s_per_query"]:.2f} s',
        f'recall@{res["k"]:<5d} vs exact     {res["recall_at_k"]:.4f}',
        f'recall@{res["topn"]:<5d} vs exact     {res["recall_at_topn"]:.4f}',
        f'load average                start {res["load_start"]}, end '
        f'{res["load_end"]}',
    ]
    if e is not None:
        for prec, row in res['e2e'].items():
            e, parts = row['s'], row['parts']
            lines.append(f'end to end, top {res["topn"]} re-ranked, {prec} '
                         f'median {e["median"]:.3f} s, p95 {e["p95"]:.3f} s '
                         f'(global {parts["global_s"]:.3f} + read and HAP-VR '
                         f'{parts["rerank_s"]:.3f})')
        lines += [
            f're-rank store               {res["store_videos"]} videos, '
            f'{res["store_mean_frames"]:.0f} frames on average, '
            f'{res["store_mib"]:.0f} MiB'
        ]
    for row in res.get('sweep', []):
        lines.append(f'  nprobe {row["nprobe"]:5d} refine {row["refine"]}: '
                     f'{row["median_ms"]:.1f} ms (p95 {row["p95_ms"]:.1f}),'
                     f' recall@{res["k"]} {row["recall"]:.4f}')
    return '\n'.join(lines)


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--n', type=int, default=1_000_000, help='descriptors (1000000)')
    parser.add_argument(
        '--d', type=int, default=512, help='descriptor width (512)')
    parser.add_argument(
        '--kind',
        default='auto',
        choices=['auto', 'flat', 'ivf', 'ivfpq'],
        help='vector index (auto: by size and --index-memory)')
    parser.add_argument(
        '--queries',
        type=int,
        default=100,
        help='queries timed and scored for recall (100)')
    parser.add_argument(
        '--k', type=int, default=1000, help='recall cut-off (1000)')
    parser.add_argument(
        '--topn',
        type=int,
        default=100,
        help='candidates re-ranked by HAP-VR end to end (100)')
    parser.add_argument(
        '--e2e-queries',
        type=int,
        default=20,
        help='queries timed end to end (20; 0 skips that part)')
    parser.add_argument(
        '--store-videos',
        type=int,
        default=1000,
        help='videos of the on-disk re-rank store (1000)')
    parser.add_argument(
        '--threads', type=int, default=2, help='faiss/torch threads (2)')
    parser.add_argument(
        '--nprobe', type=int, default=None, help='IVF lists per query')
    parser.add_argument('--nlist', type=int, default=None, help='IVF lists')
    parser.add_argument(
        '--pq-m', type=int, default=None, help='PQ bytes per code (64)')
    parser.add_argument(
        '--refine',
        type=int,
        default=16,
        help='ivfpq: candidates re-scored exactly, per result (16)')
    parser.add_argument(
        '--precision',
        nargs='+',
        choices=['float32', 'bfloat16'],
        default=['float32'],
        help='HAP-VR region products timed end to end (float32; give '
        'both to time both)')
    parser.add_argument(
        '--opq-dims',
        type=int,
        default=None,
        help='ivfpq: dims the OPQ rotation keeps (4 per code byte)')
    parser.add_argument(
        '--no-preload',
        action='store_true',
        help='ivfpq: re-score through a plain memory map of the float16 '
        'copy (a page fault per new page) instead of mapping it all first')
    parser.add_argument(
        '--no-fast-scan',
        action='store_true',
        help='ivfpq: 8-bit PQ codes instead of 4-bit fast-scan ones')
    parser.add_argument(
        '--train-size',
        type=int,
        default=None,
        help='descriptors k-means trains on')
    parser.add_argument(
        '--sweep-nprobe',
        type=int,
        nargs='*',
        default=[],
        help='also time and check these nprobe values (queries only)')
    parser.add_argument(
        '--sweep-refine',
        type=int,
        nargs='*',
        default=[4],
        help="with --sweep-nprobe, these refine factors ('ivfpq')")
    parser.add_argument(
        '--index-memory',
        default='2GiB',
        help='memory budget of --kind auto (2GiB)')
    parser.add_argument('--seed', type=int, default=0, help='data seed (0)')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/search_scale',
        help='where the descriptor and store files go')
    parser.add_argument(
        '--keep',
        action='store_true',
        help='keep the descriptor file at the end')
    parser.add_argument(
        '--reuse',
        action='store_true',
        help='keep a descriptor file of the right size already in '
        '--work-dir (the same seed generates the same file)')
    parser.add_argument('--json', help='also write the figures here')
    parser.add_argument(
        '--smoke',
        action='store_true',
        help='tiny sizes (seconds): checks the command runs')
    args = parser.parse_args(argv)
    kw = dict(
        n=args.n,
        d=args.d,
        kind=args.kind,
        queries=args.queries,
        k=args.k,
        topn=args.topn,
        e2e_queries=args.e2e_queries,
        store_videos=args.store_videos,
        threads=args.threads,
        nprobe=args.nprobe,
        nlist=args.nlist,
        pq_m=args.pq_m,
        refine=args.refine,
        memory_budget=args.index_memory,
        seed=args.seed,
        work_dir=args.work_dir,
        keep=args.keep,
        train_size=args.train_size,
        sweep_nprobe=args.sweep_nprobe,
        sweep_refine=args.sweep_refine,
        reuse=args.reuse,
        opq_dims=args.opq_dims,
        fast_scan=not args.no_fast_scan,
        preload=not args.no_preload,
        precisions=args.precision)
    if args.smoke:
        kw.update(
            n=4000,
            d=64,
            kind='ivfpq' if args.kind == 'auto' else args.kind,
            queries=10,
            k=50,
            topn=10,
            e2e_queries=2,
            store_videos=4,
            min_t=3,
            max_t=6,
            pq_m=8,
            sweep_nprobe=[4],
            sweep_refine=[1, 4])
    print(
        f'uptime: {load_average()}; {os.cpu_count()} CPUs, '
        f'{kw["threads"]} threads',
        flush=True)
    res = run(**kw)
    print(format_table(res), flush=True)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    if not args.keep and not os.listdir(kw['work_dir']):
        shutil.rmtree(kw['work_dir'], ignore_errors=True)
    return res


if __name__ == '__main__':
    main()
