"""The CPU demo: demo data, untrained vs trained HAP-VR, mAP/uAP table.

Steps: write the demo benchmark (``tools/data/make_demo_dataset.py``) if it
is not there, then run ``tools/train.py`` on ``configs/demo/hapvr_demo.py``:
the untrained model is evaluated before the first iteration
(``ValidateAtStartHook``), the model is trained, and evaluated again at the
end. The two evaluations are read back from the run's ``scalars.json`` and
printed side by side.

Example:
    python tools/run_demo.py                 # the whole demo
    python tools/run_demo.py --max-iters 40  # shorter
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')
sys.path.insert(0, ROOT)

from hapvr_mm.apis.experiments import demo_data_options


def read_evaluations(work_dir: str) -> List[Tuple[int, Dict[str, float]]]:
    """Validation records ``(step, metrics)`` of the newest run in a dir.

    Args:
        work_dir (str): the training work dir.

    Returns:
        list: one ``(step, {metric: value})`` per validation, in order.
    """
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no scalars.json under {work_dir}/*/vis_data')
    out = []
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            metrics = {
                k: v
                for k, v in rec.items() if 'mAP' in k or 'uAP' in k
            }
            if metrics:
                out.append((int(rec.get('step', 0)), metrics))
    return out


def format_table(before: Dict[str, float], after: Dict[str, float]) -> str:
    """A before/after table of every metric."""
    lines = [
        f'{"metric":28s} {"untrained":>10s} {"trained":>10s} '
        f'{"change":>8s}'
    ]
    for key in before:
        b, a = before[key], after.get(key, float('nan'))
        lines.append(f'{key:28s} {b:10.4f} {a:10.4f} {a - b:+8.4f}')
    return '\n'.join(lines)


def train_command(python: str, work_dir: str, seed: int,
                  options: List[str]) -> List[str]:
    """The ``tools/train.py`` command line of the demo.

    ``--cfg-options`` is passed only with at least one option (argparse
    refuses the flag without a value).
    """
    cmd = [
        python,
        osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir', work_dir,
        '--seed',
        str(seed)
    ]
    return cmd + (['--cfg-options', *options] if options else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default=osp.join(ROOT, 'data', 'demo'))
    parser.add_argument(
        '--work-dir', default=osp.join(ROOT, 'work_dirs', 'hapvr_demo'))
    parser.add_argument('--max-iters', type=int, default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='*',
        default=[],
        help='more overrides for tools/train.py')
    args = parser.parse_args(argv)
    start = time.time()
    py = sys.executable
    ann = osp.join(args.data, 'eval', 'annotation.json')
    if not osp.isfile(ann):
        print(f'[demo] writing the demo benchmark to {args.data}', flush=True)
        subprocess.run([
            py,
            osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
            args.data, '--corrupt', '2'
        ],
                       check=True)
    else:
        print(f'[demo] using the demo benchmark in {args.data}', flush=True)
    opts = []
    if osp.abspath(args.data) != osp.join(ROOT, 'data', 'demo'):
        opts += demo_data_options(osp.abspath(args.data))[0]
    if args.max_iters:
        opts += [
            f'train_cfg.max_iters={args.max_iters}',
            f'train_cfg.val_interval={args.max_iters}'
        ]
    opts += list(args.cfg_options)
    cmd = train_command(py, args.work_dir, args.seed, opts)
    print('[demo] ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    evals = read_evaluations(args.work_dir)
    if len(evals) < 2:
        print(f'[demo] expected two evaluations, found {len(evals)}')
        return 1
    (s0, before), (s1, after) = evals[0], evals[-1]
    print(f'\n[demo] retrieval on the demo benchmark: untrained (iteration '
          f'{s0}) vs trained (iteration {s1})')
    print(format_table(before, after))
    print(f'[demo] done in {time.time() - start:.0f} s; logs and '
          f'checkpoints in {args.work_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
