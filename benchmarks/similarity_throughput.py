"""Evaluation throughput of the HAP-VR similarity network on CPU.

Queries against batches of database videos (random unit region features,
R=9, D=512, fixed seed, already indexed by region attention), default torch
threads, inference mode. Two methods, alternated within this process, the
median of each reported:

* ``ours``: ``HAPVR.video_similarity(..., indexed=True)`` (blockwise
  TopK-Chamfer, lean comparator), including its list/padding handling;
* ``head``: the similarity head alone on the batched tensors (what
  ``video_similarity`` costs without its per-video copies);
* ``baseline``: the direct formulation: one region-level einsum over every
  pair (``frame_similarity_dense``), then the comparator written layer by
  layer (ReLU, masks, pool, as docs/method.md lists it), hardtanh and the video
  aggregation;
* ``gemm``: only the region-level matrix products that every exact float32
  method has to compute (no reduction, no comparator). ``bound`` =
  ``gemm / base`` in pairs/s is the largest speed-up over the baseline that
  any exact float32 method can reach on this machine.

Scenarios: one query against ``--batch`` videos of ``--frames`` frames
(the 3x target), several queries per pass, and videos of unequal lengths
(uniform in ``--min-len``..``--max-len`` frames, padded with masks).

Example::

    python benchmarks/similarity_throughput.py --batch 64 --passes 5
    python benchmarks/similarity_throughput.py --batch 64 --passes 5 \
        --tune-malloc
"""
import argparse
import os
import sys
import time
from typing import Callable, List

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import load_average, median


def direct_scores(head,
                  q: torch.Tensor,
                  t: torch.Tensor,
                  q_mask=None,
                  t_mask=None) -> torch.Tensor:
    """Direct formulation of docs/method.md s. 3 (eval range), ``[A, B]``."""
    from hapvr_mm.models.similarity.chamfer import (aggregate,
                                                    frame_similarity_dense)
    from hapvr_mm.models.similarity.video_comparator import pool_mask
    a, b = q.shape[0], t.shape[0]
    fsim = frame_similarity_dense(q, t, head.f2f_mode, head.f2f_topk_rate)
    maps = fsim.reshape(a * b, *fsim.shape[-2:])
    comp = head.comparator
    rows = cols = None
    if q_mask is not None:
        rows = q_mask[:, None].expand(a, b, -1).reshape(a * b, -1)
        cols = t_mask[None].expand(a, b, -1).reshape(a * b, -1)

    def apply(x):
        if rows is None:
            return x
        return x * (rows[:, None, :, None] & cols[:, None, None, :]).to(
            x.dtype)

    x = apply(maps.unsqueeze(1))
    x = apply(F.relu(comp.conv1(x)))
    x = F.max_pool2d(x, 2)
    if rows is not None:
        rows, cols = pool_mask(rows), pool_mask(cols)
    x = apply(x)
    x = apply(F.relu(comp.conv2(x)))
    x = F.max_pool2d(x, 2)
    if rows is not None:
        rows, cols = pool_mask(rows), pool_mask(cols)
    x = apply(x)
    x = apply(F.relu(comp.conv3(x)))
    x = apply(comp.fconv(x)).squeeze(1)
    return aggregate(
        F.hardtanh(x), head.v2v_mode, head.v2v_topk_rate, rows,
        cols).view(a, b)


def region_products(q: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The bare region-level matrix products of every pair, nothing else.

    Every exact float32 method must compute these ``A Tq R x B Tt R'``
    inner products, so their time bounds any speed-up: ``base / gemm``.
    Blocks of 2 target videos (a cache-sized block, as the fast path).
    """
    rows = q.reshape(-1, q.shape[-1])
    out = None
    for s in range(0, t.shape[0], 2):
        cols = t[s:s + 2].reshape(-1, t.shape[-1])
        out = torch.mm(rows, cols.t())
    return out


def bench(name: str, runs: List[Callable[[], torch.Tensor]], pairs: int,
          passes: int) -> None:
    """Alternate the methods ``passes`` times and print pairs/s.

    ``runs`` = (``HAPVR.video_similarity``, the head alone, baseline, the
    bare region products).
    """
    times = [[] for _ in runs]
    outs = [None] * len(runs)
    for _ in range(passes):
        for i, fn in enumerate(runs):
            start = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - start)
    ours, head, base, gemm = (pairs / median(t) for t in times)
    diff = max(float((o - outs[2]).abs().max()) for o in outs[:2])
    print(f'{name:<44} {ours:>8.1f} {head:>8.1f} {base:>8.1f} '
          f'{ours / base:>7.2f}x {head / base:>7.2f}x {diff:>10.2e} '
          f'{gemm:>8.1f} {gemm / base:>7.2f}x')


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--batch', type=int, default=64, help='database videos per pass')
    parser.add_argument('--frames', type=int, default=60, help='T')
    parser.add_argument(
        '--queries',
        type=int,
        nargs='+',
        default=[4],
        help='queries per pass for the multi-query rows')
    parser.add_argument('--min-len', type=int, default=30)
    parser.add_argument('--max-len', type=int, default=300)
    parser.add_argument(
        '--masked-batch',
        type=int,
        default=16,
        help='database videos per pass (unequal lengths)')
    parser.add_argument('--passes', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--tune-malloc',
        action='store_true',
        help='raise glibc malloc thresholds for the whole '
        'process (both methods), as the retrieval test loop '
        'does on CPU')
    args = parser.parse_args(argv)

    from mmaction.registry import MODELS

    import hapvr_mm  # noqa: F401
    torch.manual_seed(args.seed)
    model = MODELS.build(
        dict(type='HAPVR', head=dict(type='SimilarityHead', dims=512)))
    model.eval()
    head = model.head
    tuned = False
    if args.tune_malloc:
        from hapvr_mm.utils import tune_glibc_malloc
        tuned = tune_glibc_malloc()
    print(f'similarity throughput, CPU, torch {torch.__version__}, '
          f'threads={torch.get_num_threads()}, R=9, D=512, passes='
          f'{args.passes} (alternated, medians), malloc tuned: {tuned}, '
          f'load average at start: {load_average()}')
    print(f'{"scenario (pairs/s)":<44} {"ours":>8} {"head":>8} '
          f'{"base":>8} {"ours/b":>8} {"head/b":>8} {"max |diff|":>10} '
          f'{"gemm":>8} {"bound":>8}')

    def unit(*shape):
        return F.normalize(torch.randn(*shape), dim=-1)

    with torch.inference_mode():
        db = head.index(unit(args.batch, args.frames, 9, 512))
        for nq in [1] + [q for q in args.queries if q != 1]:
            qs = head.index(unit(nq, args.frames, 9, 512))
            bench(
                f'{nq} quer{"y" if nq == 1 else "ies"} x {args.batch} videos, '
                f'T={args.frames}', [
                    lambda: model.video_similarity(qs, db, indexed=True),
                    lambda: head(qs, db)['similarity'],
                    lambda: direct_scores(head, qs, db),
                    lambda: region_products(qs, db)
                ], nq * args.batch, args.passes)
        # unequal lengths
        lens = torch.randint(args.min_len, args.max_len + 1,
                             (args.masked_batch + 1, )).tolist()
        videos = [head.index(unit(n, 9, 512)) for n in lens]
        q_list, t_list = videos[:1], videos[1:]
        from hapvr_mm.models.data_preprocessors.hapvr_preprocessor import \
            pad_videos
        qp, qm = pad_videos(q_list)
        tp, tm = pad_videos(t_list)
        bench(
            f'1 query ({lens[0]} fr) x {args.masked_batch} videos '
            f'({args.min_len}-{args.max_len} fr)', [
                lambda: model.video_similarity(q_list, t_list, indexed=True),
                lambda: head(qp, tp, qm, tm)['similarity'],
                lambda: direct_scores(head, qp, tp, qm, tm),
                lambda: region_products(qp, tp)
            ], args.masked_batch, max(args.passes // 2, 2))
    print(f'load average at end: {load_average()}')


if __name__ == '__main__':
    main()
