"""Effect of ``tools/test.py --tune-malloc`` on a CPU retrieval test.

Synthetic HDF5 region features (random, unit-scale; ``T`` frames of
``R = 9`` regions of ``D = 512``) for a JSON benchmark of ``--queries``
queries and ``--database`` database videos; a HAP-VR model (similarity head
only, random weights: the cost does not depend on the weights) is evaluated
by ``tools/test.py`` in fresh processes, alternately without and with
``--tune-malloc`` (glibc malloc thresholds raised for the process). Printed
per run: the loop's own pairs/s over the database pass, the seconds of that
pass and of the whole process.

Usage::

    python benchmarks/similarities_malloc.py [--rounds 3] [--frames 60]
"""
import argparse
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import load_average


def write_inputs(tmp: str, args: argparse.Namespace) -> str:
    """Write the features, the annotation and the config; return it."""
    import h5py
    rng = np.random.default_rng(0)
    queries = [f'q{i}' for i in range(args.queries)]
    database = [f'd{i}' for i in range(args.database)]
    with h5py.File(osp.join(tmp, 'feats.h5'), 'w') as f:
        for vid in queries + database:
            x = rng.standard_normal((args.frames, 9, 512)).astype(np.float32)
            x /= np.linalg.norm(x, axis=-1, keepdims=True)
            f.create_dataset(vid, data=x.astype(np.float16))
    with open(osp.join(tmp, 'ann.json'), 'w') as f:
        json.dump(
            dict(
                queries=queries,
                database=database,
                relevance={q: database[:3]
                           for q in queries}), f)
    config = osp.join(tmp, 'config.py')
    ann = dict(type='JSON', ann_file=osp.join(tmp, 'ann.json'))
    with open(config, 'w') as f:
        f.write(f"""default_scope = 'mmaction'
custom_imports = dict(imports=['hapvr_mm'], allow_failed_imports=False)
model = dict(type='HAPVR', head=dict(type='SimilarityHead', dims=512),
             pseudo_labeler=None)
test_dataloader = dict(batch_size=8, num_workers=0, dataset=dict(
    type='RetrievalDataset', annotation={ann!r},
    feature_file={osp.join(tmp, 'feats.h5')!r}))
test_evaluator = dict(type='RetrievalAPMetric', annotation={ann!r})
test_cfg = dict(type='VideoRetrievalTestLoop', query_batch_size=8,
                target_batch_size=32, log_interval=1000)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
""")
    return config


def run_test(config: str, work_dir: str, tuned: bool) -> dict:
    """One tools/test.py process; its pairs/s and times."""
    cmd = [
        sys.executable,
        osp.join(ROOT, 'tools', 'test.py'), config, 'none', '--work-dir',
        work_dir
    ] + (['--tune-malloc'] if tuned else [])
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    rate = re.findall(r'([0-9.]+) pairs/s', proc.stdout)
    pairs = re.findall(r' (\d+) pairs,', proc.stdout)
    if not rate:
        raise RuntimeError('no pairs/s line in the output')
    tuned_line = 'glibc malloc thresholds raised' in proc.stdout
    if tuned_line != tuned:
        raise RuntimeError(f'--tune-malloc={tuned} but the log says '
                           f'tuned={tuned_line}')
    return dict(
        seconds=int(pairs[-1]) / float(rate[-1]),
        pairs_per_s=float(rate[-1]),
        wall=wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--queries', type=int, default=8)
    parser.add_argument('--database', type=int, default=192)
    parser.add_argument('--frames', type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = write_inputs(tmp, args)
        print(
            f'{args.queries} queries x {args.database} videos, T='
            f'{args.frames}, R=9, D=512, torch threads default; load '
            f'average at start: {load_average()}',
            flush=True)
        runs = {False: [], True: []}
        for r in range(args.rounds):
            for tuned in (False, True):
                out = run_test(config, osp.join(tmp, f'w{r}{int(tuned)}'),
                               tuned)
                runs[tuned].append(out)
                print(
                    f'  round {r}, tune_malloc={tuned!s:<5}: '
                    f'{out["pairs_per_s"]:7.1f} pairs/s, database pass '
                    f'{out["seconds"]:6.2f} s, process {out["wall"]:6.2f} '
                    's',
                    flush=True)
        med = {
            k: statistics.median(r['pairs_per_s'] for r in v)
            for k, v in runs.items()
        }
        print(f'median pairs/s: default {med[False]:.1f}, --tune-malloc '
              f'{med[True]:.1f} ({med[True] / med[False] - 1:+.1%}); load '
              f'average at end: {load_average()}')


if __name__ == '__main__':
    main()
