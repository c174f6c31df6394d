"""Peak memory of the retrieval loop's gather and ``--save-similarities``.

Runs :class:`~hapvr_mm.engine.runner.VideoRetrievalTestLoop` itself, in
``--procs`` processes joined by gloo on the CPU, at FIVR-200K size by
default (100 queries x 225,960 database videos, synthetic 11-character
YouTube-like ids). The model is a stand-in whose features are one number
per video and whose similarity is a cheap closed form, so the run costs
almost nothing but the loop's own bookkeeping, the gather of the scores,
the metric and the similarities file. Each process reports:

* ``scoring``: its peak resident memory while the database is streamed
  (the per-rank score buffers), and its resident memory at the end of it;
* ``gather``: its peak resident memory from the end of the database to the
  end of the evaluation (the gather of the scores for the metric, the
  metric, and with ``save`` the second gather and the ``.npz`` written by
  the main rank), and the extra over its memory at the end of scoring.

Peaks are read from ``VmHWM`` after resetting it (``/proc/self/clear_refs``)
at each phase start. Example::

    python benchmarks/gather_memory.py              # eval, then eval + save
    python benchmarks/gather_memory.py --queries 10 --targets 5000  # quick
"""
import argparse
import json
import os
import os.path as osp
import random
import socket
import string
import sys
import tempfile
import time
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from common import load_average, read_status_kb, reset_peak_rss  # noqa

MIB = 1024.0


def youtube_ids(n: int, seed: int = 0) -> list:
    """``n`` distinct synthetic 11-character ids (YouTube alphabet)."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + '-_'
    out, seen = [], set()
    while len(out) < n:
        vid = ''.join(rng.choices(alphabet, k=11))
        if vid not in seen:
            seen.add(vid)
            out.append(vid)
    return out


class _Sample:
    """A data sample carrying only ``metainfo['video_id']``."""

    def __init__(self, vid: str) -> None:
        self.metainfo = {'video_id': vid}


class _Dataset:
    """Length, no metainfo and no annotation (no per-query targets)."""

    metainfo = None
    annotation = None

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class _Loader:
    """Batches of one-number features for a list of ids (a dataloader)."""

    def __init__(self, ids, offset, batch_size, shard_len):
        self.ids, self.offset, self.batch_size = ids, offset, batch_size
        self.dataset = _Dataset(len(ids))
        self.sampler = range(shard_len)

    def __len__(self) -> int:
        return (len(self.ids) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for s in range(0, len(self.ids), self.batch_size):
            chunk = self.ids[s:s + self.batch_size]
            values = torch.arange(
                self.offset + s,
                self.offset + s + len(chunk),
                dtype=torch.float32)
            yield dict(
                inputs=list(values.view(-1, 1).unbind(0)),
                data_samples=[_Sample(v) for v in chunk])


class _Model(torch.nn.Module):
    """Stand-in retriever: a video's feature is its index (one number)."""

    def index_video(self, x):
        """Return ``x`` (already a feature)."""
        return x

    def test_step(self, batch):
        """One output per video with its feature."""
        return [SimpleNamespace(features=x) for x in batch['inputs']]

    def video_similarity(self, queries, targets, indexed=True):
        """A cheap deterministic similarity ``[Q, T]`` in [-1, 1]."""
        q = torch.cat(queries).view(-1, 1)
        t = torch.cat(targets).view(1, -1)
        return torch.cos(q * 0.37 + t * 0.0011)


class _Runner:
    """The few runner attributes the loop uses; records phase peaks."""

    def __init__(self, work_dir, queries, targets, batch, n_batches):
        self.model = _Model()
        self.work_dir = work_dir
        self.seed = 0
        self._randomness_cfg = {}
        self.queries, self.targets = queries, targets
        self.batch, self.n_batches = batch, n_batches
        self.record = {}

    def build_dataloader(self, cfg, seed=None, diff_rank_seed=False):
        """Query loader (every rank) or this rank's contiguous shard."""
        if cfg['dataset']['split'] == 'queries':
            return _Loader(self.queries, 0, 16, len(self.queries))
        rank, world = dist.get_rank(), dist.get_world_size()
        n_blocks = (len(self.targets) + self.batch - 1) // self.batch
        per = (n_blocks + world - 1) // world
        lo = min(rank * per * self.batch, len(self.targets))
        hi = min((rank + 1) * per * self.batch, len(self.targets))
        self.n_batches = (hi - lo + self.batch - 1) // self.batch
        return _Loader(self.targets[lo:hi], 10**6 + lo, self.batch, hi - lo)

    def call_hook(self, name, **kwargs):
        """Phase boundaries: end of the database, end of the epoch."""
        if name.startswith('before_') and name.endswith('_epoch'):
            reset_peak_rss()
            self.record['t0'] = time.perf_counter()
        elif name.startswith('after_') and name.endswith('_iter') and \
                kwargs['batch_idx'] == self.n_batches - 1:
            self.record['score_peak'] = read_status_kb('VmHWM')
            self.record['score_end'] = read_status_kb('VmRSS')
            self.record['t1'] = time.perf_counter()
            reset_peak_rss()
        elif name.startswith('after_') and name.endswith('_epoch'):
            self.record['gather_peak'] = read_status_kb('VmHWM')
            self.record['t2'] = time.perf_counter()
            self.record['metrics'] = dict(kwargs['metrics'])


def _worker(rank, world, port, args, ann_file, ids, save, out_dir, queue):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world)
    from mmengine.evaluator import Evaluator

    import hapvr_mm  # noqa: F401
    from hapvr_mm.engine.runner import VideoRetrievalTestLoop
    from hapvr_mm.evaluation.metrics import RetrievalAPMetric
    queries, targets = ids
    runner = _Runner(out_dir, queries, targets, args.batch, 0)
    evaluator = Evaluator(
        [RetrievalAPMetric(annotation=dict(type='JSON', ann_file=ann_file))])
    loop = VideoRetrievalTestLoop(
        runner,
        dict(dataset=dict(type='stand-in')),
        evaluator,
        query_batch_size=args.queries,
        target_batch_size=args.batch,
        save_similarities=save,
        log_interval=10**9)
    loop.run()
    rec = runner.record
    queue.put(
        dict(
            rank=rank,
            save=bool(save),
            score_peak=rec['score_peak'] / MIB,
            score_end=rec['score_end'] / MIB,
            gather_peak=rec['gather_peak'] / MIB,
            gather_s=rec['t2'] - rec['t1'],
            metrics=rec['metrics']))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main() -> None:
    """Run the loop with and without saving; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--queries', type=int, default=100)
    parser.add_argument('--targets', type=int, default=225960)
    parser.add_argument('--procs', type=int, default=2)
    parser.add_argument(
        '--batch',
        type=int,
        default=1024,
        help='target_batch_size (database videos per batch)')
    parser.add_argument(
        '--modes',
        nargs='+',
        default=['eval', 'save'],
        choices=['eval', 'save'],
        help="'eval': metrics only; 'save': also --save-similarities (.npz)")
    args = parser.parse_args()
    ids = youtube_ids(args.queries + args.targets)
    queries, targets = ids[:args.queries], ids[args.queries:]
    print(f'load average at start: {load_average()}; {args.procs} processes '
          f'(gloo, CPU), {args.queries} queries x {args.targets} targets, '
          f'target_batch_size {args.batch}')
    ctx = mp.get_context('spawn')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ann_file = osp.join(tmp, 'ann.json')
        rel = {q: targets[i * 7:i * 7 + 5] for i, q in enumerate(queries)}
        with open(ann_file, 'w') as f:
            json.dump(
                dict(queries=queries, database=targets, relevance=rel), f)
        for mode in args.modes:
            save = 'similarities.npz' if mode == 'save' else False
            queue = ctx.Queue()
            port = _free_port()
            procs = [
                ctx.Process(
                    target=_worker,
                    args=(r, args.procs, port, args, ann_file,
                          (queries, targets), save, tmp, queue))
                for r in range(args.procs)
            ]
            for p in procs:
                p.start()
            got = sorted((queue.get() for _ in procs), key=lambda r: r['rank'])
            for p in procs:
                p.join()
                if p.exitcode:
                    raise SystemExit(f'a worker exited with {p.exitcode}')
            size = ''
            if save:
                size = f'{os.path.getsize(osp.join(tmp, save)) / 2**20:.1f}'
            for r in got:
                r['mode'], r['file'] = mode, size
            rows += got
    print('mode  rank  scoring peak  end of scoring  gather peak  '
          'gather extra  gather s  file MiB   (MiB)')
    for r in rows:
        print(f"{r['mode']:<5} {r['rank']:>4} {r['score_peak']:>13.0f} "
              f"{r['score_end']:>15.0f} {r['gather_peak']:>12.0f} "
              f"{r['gather_peak'] - r['score_end']:>13.0f} "
              f"{r['gather_s']:>9.1f} {r['file']:>9}")
    metrics = {k: v for k, v in rows[0]['metrics'].items()}
    print('metrics (rank 0, first mode):',
          ', '.join(f'{k}={v!r}' for k, v in metrics.items()))
    print(f'load average at end: {load_average()}')


if __name__ == '__main__':
    main()
