"""Time ``tools/eval_similarities.py`` from process start to printed table.

FIVR-200K-sized synthetic similarities (100 queries x 225,960 database
videos, float32, the annotation of ``benchmarks/ap_metrics.py``) are written
in the compact form (``.npz``: query ids, target ids, ``[Q, T]`` scores, as
``tools/test.py --save-similarities`` writes them) and as the dict-of-dicts
pickle ``{query: {target: score}}``; ``tools/eval_similarities.py
--timing`` is then run on each in a fresh process, alternately. Printed per
run: seconds from the process start to the first line of the table, and the
tool's own load and metric times.

Usage::

    python benchmarks/similarities_io.py [--repeat 2] [--hard]
"""
import argparse
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.ap_metrics import fivr_scores, make_fivr
from benchmarks.common import load_average
from hapvr_mm.engine.runner import write_score_matrix, write_similarities


def run_tool(config: str, path: str) -> dict:
    """Run eval_similarities once; time its stages."""
    start = time.perf_counter()
    proc = subprocess.Popen([
        sys.executable,
        osp.join(ROOT, 'tools', 'eval_similarities.py'), config, path,
        '--timing'
    ],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL,
                            text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    to_table, load, metrics = None, None, None
    for line in proc.stdout:
        if line.startswith('load ') and 'metrics:' in line:
            parts = line.split()
            load = float(parts[-5])
            metrics = float(parts[-2])
        if line.startswith('Retrieval metrics') and to_table is None:
            to_table = time.perf_counter() - start
    if proc.wait() != 0 or to_table is None:
        raise RuntimeError(f'eval_similarities failed on {path}')
    return dict(total=to_table, load=load, metrics=metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument(
        '--hard',
        action='store_true',
        help='with an easy-duplicates list (12 metrics instead of 6)')
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        data, ann_file, easy_file, _ = make_fivr(tmp, rng)
        matrix = fivr_scores(data, '200k', rng)
        config = osp.join(tmp, 'config.py')
        easy = repr(easy_file) if args.hard else 'None'
        with open(config, 'w') as f:
            f.write(f"test_evaluator = dict(type='RetrievalAPMetric', "
                    f"annotation=dict(type='FIVR', ann_file={ann_file!r}, "
                    f"version='200k', easy_duplicates={easy}))\n")
        compact = write_score_matrix(matrix, osp.join(tmp, 'sims.npz'))
        pickled = write_similarities(
            {
                q: dict(zip(matrix.target_ids.tolist(), row.tolist()))
                for q, row in zip(matrix.query_ids.tolist(), matrix.scores)
            }, osp.join(tmp, 'sims.pkl'))
        del matrix
        q, t = len(data['200k']['queries']), len(data['200k']['database'])
        mb = {
            k: osp.getsize(v) / 2**20
            for k, v in (('c', compact), ('p', pickled))
        }
        print(
            f'{q} x {t} similarities; compact {mb["c"]:.0f} MB, dict '
            f'pickle {mb["p"]:.0f} MB; '
            f'load average at start: {load_average()}',
            flush=True)
        times = {'compact .npz': [], 'dict pickle': []}
        for _ in range(args.repeat):
            for name, path in (('compact .npz', compact), ('dict pickle',
                                                           pickled)):
                times[name].append(run_tool(config, path))
                r = times[name][-1]
                print(
                    f'  {name:<13} start to table {r["total"]:6.2f} s '
                    f'(load {r["load"]:6.2f} s, metrics '
                    f'{r["metrics"]:5.2f} s)',
                    flush=True)
        for name, runs in times.items():
            print(f'{name:<13} start to table: best '
                  f'{min(r["total"] for r in runs):.2f} s, median '
                  f'{statistics.median(r["total"] for r in runs):.2f} s; '
                  f'metrics: best {min(r["metrics"] for r in runs):.2f} s')
        print(f'load average at end: {load_average()}')


if __name__ == '__main__':
    main()
