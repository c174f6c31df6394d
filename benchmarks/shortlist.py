"""Shortlisted search against exhaustive search: quality and time per query.

Two parts (either or both):

* ``--index INDEX --annotation ANN``: retrieval quality on a labelled
  index (e.g. the demo benchmark indexed with the trained demo model). Each
  query of the annotation searches the annotation's database rows of the
  index, exhaustively and with shortlists of 1 %, 5 % and 20 % (``--fracs``)
  re-ranked by HAP-VR; the final ranking is the re-ranked shortlist, then
  the rest in global-descriptor order. Reported: the annotation's mAP (its
  own protocol; uAP is not reported, as it pools score values across
  queries and a shortlist has no score outside it) and the recall of the
  exhaustive top 10 (the share of the exhaustive top-10 videos found in
  the top 10 of the mode; with ``K <= 10`` that set is the global
  descriptor's top 10 whatever ``K``).
* ``--synthetic N``: time per query on an index of ``N`` videos (random
  unit region features, ``R=9``, ``D=512``, 30 to 60 frames, passed through
  the region attention of a random HAP-VR head; random unit global
  descriptors). To keep memory bounded the ``N`` entries reuse a pool of
  ``--pool`` distinct videos cyclically; every entry is still scored with
  its own HAP-VR computation, so the work per query is that of ``N``
  distinct videos. The features are in memory: the figures do not include
  reading an index from disk, which shortlisting reduces as well. On a
  shared machine the load changes within minutes, so the modes are
  interleaved: the exhaustive search of a query is timed as the sum of
  ``search`` over ``--chunks`` consecutive slices of the index (``rows=``;
  the same HAP-VR work as one call), and each shortlisted search of the
  same query runs between two of those slices. The medians over
  ``--queries`` queries of the wall time and of this process's CPU time
  and their ratios to exhaustive are printed with the load average.

Example::

    python tools/extract_features.py configs/demo/hapvr_demo.py \
        work_dirs/hapvr_demo/iter_80.pth --index --out demo_eval.h5
    python benchmarks/shortlist.py --index demo_eval.h5 \
        --annotation data/demo/eval/annotation.json
    python benchmarks/shortlist.py --synthetic 20000 --queries 2
"""
import argparse
import os
import statistics
import sys
import time
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import load_average


def _labels(fracs: Sequence[float]) -> List[str]:
    return ['exhaustive'] + [f'{100 * f:g}%' for f in fracs]


def quality(index_file: str,
            ann_file: str,
            ann_type: str,
            fracs: Sequence[float],
            topn: int = 10) -> Dict:
    """mAP and recall of the exhaustive top ``topn`` per search mode."""
    from hapvr_mm.datasets.annotations import load_annotation
    from hapvr_mm.search import VideoIndex, model_for_index, search

    ann = load_annotation(dict(type=ann_type, ann_file=ann_file))
    index = VideoIndex(index_file)
    model, _ = model_for_index(index)
    present = [q for q in ann.queries if q in index._row]
    db_rows = [index.row(t) for t in ann.targets if t in index._row]
    missing = len(ann.queries) - len(present)
    if missing:
        print(f'note: {missing} queries missing from the index')
    queries = [index.features(index.row(q)) for q in present]
    qglob = torch.stack([index.global_desc[index.row(q)] for q in present])
    exclude = [index.row(q) for q in present]
    out = {}
    exhaustive_top = None
    modes = [None] + list(fracs)
    for label, frac in zip(_labels(fracs), modes):
        start = time.perf_counter()
        res = search(
            model,
            queries,
            index,
            topk=None,
            shortlist=frac,
            query_globals=qglob,
            rows=db_rows,
            exclude=exclude,
            rank_all=True)
        seconds = (time.perf_counter() - start) / len(present)
        scores = {}
        for q, r in zip(present, res):
            ids = [index.ids[i] for i in r.rows]
            # scores that give the final ranking exactly (rank order)
            scores[q] = (ids, -np.arange(len(ids), dtype=np.float64))
        metrics = ann.evaluate(scores)
        tops = [list(r.rows[:topn]) for r in res]
        if exhaustive_top is None:
            exhaustive_top = tops
        recall = float(
            np.mean([
                len(set(a) & set(b)) / max(len(b), 1)
                for a, b in zip(tops, exhaustive_top)
            ]))
        k = int(np.isfinite(res[0].scores).sum()) if res else 0
        out[label] = dict(metrics=metrics, recall=recall, k=k, seconds=seconds)
    return out


class _PoolFeatures:
    """``N`` entries that reuse ``len(pool)`` feature tensors cyclically."""

    def __init__(self, pool: Sequence[torch.Tensor], n: int) -> None:
        self.pool, self.n = pool, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.pool[i % len(self.pool)]


def timing(n: int,
           fracs: Sequence[float],
           queries: int,
           pool: int,
           chunks: int = 20,
           seed: int = 0) -> Dict:
    """Median seconds per query of each search mode on a synthetic index."""
    from mmaction.registry import MODELS

    import hapvr_mm  # noqa: F401
    from hapvr_mm.search import MemoryStore, search

    torch.manual_seed(seed)
    model = MODELS.build(
        dict(type='HAPVR', head=dict(type='SimilarityHead', dims=512)))
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(30, 61, (pool + queries, ), generator=gen)
    with torch.no_grad():
        feats = [
            model.index_video(
                F.normalize(
                    torch.randn(int(t), 9, 512, generator=gen), dim=-1))
            for t in lengths
        ]
    store = MemoryStore(
        _PoolFeatures(feats[:pool], n),
        F.normalize(torch.randn(n, 512, generator=gen), dim=-1))
    qfeats = feats[pool:]
    qglob = F.normalize(torch.randn(queries, 512, generator=gen), dim=-1)
    labels = _labels(fracs)
    wall = {label: [] for label in labels}
    cpu = {label: [] for label in labels}
    bounds = np.linspace(0, n, chunks + 1).astype(int)
    # shortlist queries run between the slices of the exhaustive scan
    slots = {
        int(round((i + 1) * chunks / (len(fracs) + 1))): (label, frac)
        for i, (label, frac) in enumerate(zip(labels[1:], fracs))
    }

    def timed_search(**kw):
        start, start_cpu = time.perf_counter(), time.process_time()
        search(
            model, [qfeats[qi]],
            store,
            topk=10,
            query_globals=qglob[qi:qi + 1],
            **kw)
        return time.perf_counter() - start, time.process_time() - start_cpu

    qi = 0  # warm-up (allocator, oneDNN primitives), not timed
    timed_search(rows=range(0, min(n, 1024)))
    for qi in range(queries):
        ex_wall = ex_cpu = 0.0
        for c in range(chunks):
            w, p = timed_search(rows=range(bounds[c], bounds[c + 1]))
            ex_wall, ex_cpu = ex_wall + w, ex_cpu + p
            if c + 1 in slots:
                label, frac = slots[c + 1]
                w, p = timed_search(shortlist=frac)
                wall[label].append(w)
                cpu[label].append(p)
                print(
                    f'  query {qi}: {label:>10s} {w:9.3f} s wall '
                    f'{p:9.3f} s CPU (load {load_average()})',
                    flush=True)
        wall['exhaustive'].append(ex_wall)
        cpu['exhaustive'].append(ex_cpu)
        print(
            f'  query {qi}: exhaustive {ex_wall:9.3f} s wall {ex_cpu:9.3f}'
            f' s CPU (load {load_average()})',
            flush=True)
    return {
        k: (statistics.median(wall[k]), statistics.median(cpu[k]))
        for k in labels
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--index', help='a search index with labels')
    parser.add_argument('--annotation', help='its annotation file')
    parser.add_argument('--annotation-type', default='JSON')
    parser.add_argument(
        '--fracs',
        type=float,
        nargs='+',
        default=[0.01, 0.05, 0.2],
        help='shortlist fractions (default 0.01 0.05 0.2)')
    parser.add_argument(
        '--synthetic',
        type=int,
        default=0,
        help='videos of the synthetic index for timing (0: skip)')
    parser.add_argument('--queries', type=int, default=2)
    parser.add_argument('--pool', type=int, default=512)
    parser.add_argument(
        '--chunks',
        type=int,
        default=20,
        help='slices of the exhaustive scan (shortlists run between them)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument(
        '--no-tune-malloc',
        action='store_true',
        help="keep glibc's malloc defaults (by default the mmap/trim "
        'thresholds are raised, hapvr_mm.utils.tune_glibc_malloc: without '
        'it the time of one search varied 20x between runs here)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_tune_malloc:
        from hapvr_mm.utils import tune_glibc_malloc
        print(f'glibc malloc tuned: {tune_glibc_malloc()}')
    print(f'load average at start: {load_average()}; torch threads '
          f'{torch.get_num_threads()}')
    if args.index:
        if not args.annotation:
            parser.error('--index needs --annotation')
        res = quality(args.index, args.annotation, args.annotation_type,
                      args.fracs)
        # uAP pools scores across queries: undefined for rank-only lists
        names = [n for n in next(iter(res.values()))['metrics'] if 'mAP' in n]
        print(f'\nquality on {args.index} ({args.annotation})')
        print(f'{"mode":>10s} {"K":>6s} ' + ' '.join(f'{n:>10s}'
                                                     for n in names) +
              f' {"R@10(exh)":>10s} {"s/query":>8s}')
        for label, r in res.items():
            print(f'{label:>10s} {r["k"]:>6d} ' +
                  ' '.join(f'{r["metrics"][n]:10.4f}' for n in names) +
                  f' {r["recall"]:10.3f} {r["seconds"]:8.3f}')
    if args.synthetic:
        print(f'\ntiming: synthetic index of {args.synthetic} videos '
              f'(pool {args.pool}), {args.queries} queries')
        med = timing(args.synthetic, args.fracs, args.queries, args.pool,
                     args.chunks)
        base, base_cpu = med['exhaustive']
        print(f'{"mode":>10s} {"wall s/q":>10s} {"speed-up":>9s} '
              f'{"CPU s/q":>10s} {"speed-up":>9s}')
        for label, (sec, sec_cpu) in med.items():
            print(f'{label:>10s} {sec:10.3f} {base / sec:8.1f}x '
                  f'{sec_cpu:10.3f} {base_cpu / sec_cpu:8.1f}x')
        print(f'load average at end: {load_average()}')


if __name__ == '__main__':
    main()
