"""Run an experiment table: configs x seeds, trained, evaluated, summarised.

    python tools/experiments.py ablation-demo --seeds 0 1 2
    python tools/experiments.py losses-demo --seeds 0 1 2 --iters 40
    python tools/experiments.py ablation --seeds 0 1 2 \\
        --launcher slurm --partition gpu        # GPUS=8 from the environment
    python tools/experiments.py ablation --seeds 0 1 2 --launcher pytorch \\
        --gpus 8                                # tools/dist_*.sh
    python tools/experiments.py A.py B.py --seeds 0 1 --baseline A

The first argument is a named set (``ablation``, ``losses`` and their
demo-scale twins ``ablation-demo``, ``losses-demo``; ``--list`` shows them)
or config files. Every (row, seed) run trains with ``tools/train.py``
(``--seed``, no validation) in ``WORK_DIR/<config name>/seed<k>`` and is
evaluated with ``tools/test.py`` (``metrics.json`` and
``similarities.npz`` in the same folder). Runs are resumable: a run with
``metrics.json`` is not repeated, a trained run is only evaluated, and an
interrupted training resumes from its last checkpoint; a work dir made
with other settings is refused (``--force`` starts such runs again).

The table (mean ± sample standard deviation over seeds per row and metric,
and the difference of the means to the baseline row) is printed and
written as Markdown and CSV (``--out PREFIX``: ``PREFIX.md``,
``PREFIX.csv``; default ``WORK_DIR/<set>``). A failed run is reported with
the end of its log; the others go on and the table shows what finished.
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from hapvr_mm.apis.experiments import (EXPERIMENT_SETS, TRAINED_FILE,
                                       ExperimentError, ExperimentSet, Run,
                                       check_run_settings, demo_data_options,
                                       final_checkpoint, format_command,
                                       format_markdown, plan_runs,
                                       read_metrics, rows_from_configs,
                                       run_commands, run_state, select_metrics,
                                       summarise, write_csv, write_json_atomic)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 1)[1])
    parser.add_argument(
        'experiment',
        nargs='*',
        help='a named set (see --list) or config files')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0], help='random seeds')
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'experiments'),
        help='root of the runs (default: work_dirs/experiments)')
    parser.add_argument(
        '--launcher',
        choices=['local', 'pytorch', 'slurm'],
        default='local',
        help='local: one process per run, one run after another; pytorch: '
        'tools/dist_train.sh / dist_test.sh with --gpus processes; slurm: '
        'tools/slurm_train.sh / slurm_test.sh on --partition')
    parser.add_argument('--gpus', type=int, default=1)
    parser.add_argument('--partition', help='Slurm partition')
    parser.add_argument(
        '--max-parallel',
        type=int,
        default=1,
        help='runs launched at once (for Slurm; default 1)')
    parser.add_argument(
        '--iters', type=int, help='training iterations (train_cfg.max_iters)')
    parser.add_argument(
        '--data',
        help='demo sets: the demo dataset folder (default: the configs\' '
        'data/demo)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='overrides of the training configs')
    parser.add_argument(
        '--test-cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='overrides of the evaluation')
    parser.add_argument('--baseline', help='row the differences are to')
    parser.add_argument(
        '--metrics',
        nargs='+',
        help='metric names or suffixes (default: every mAP and uAP)')
    parser.add_argument(
        '--out',
        help='PREFIX of PREFIX.md and PREFIX.csv (default: '
        'WORK_DIR/<set name>)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='print the commands of the runs still to do, run nothing')
    parser.add_argument(
        '--collect-only',
        action='store_true',
        help='run nothing: make the table from the finished runs')
    parser.add_argument(
        '--force',
        action='store_true',
        help='delete and redo runs whose work dir has other settings')
    parser.add_argument(
        '--list', action='store_true', help='list the named sets')
    return parser.parse_args(argv)


def list_sets() -> str:
    lines = []
    for name, exp in EXPERIMENT_SETS.items():
        lines.append(f'{name}: {exp.description} (baseline: {exp.baseline})')
        for row in exp.rows:
            kind = '' if row.train else ' [evaluation only]'
            lines.append(f'    {row.name:24s} {row.config}{kind}')
    return '\n'.join(lines)


def resolve_set(args) -> (str, ExperimentSet):
    """The set and its name from the positional arguments."""
    if len(args.experiment) == 1 and args.experiment[0] in EXPERIMENT_SETS:
        return args.experiment[0], EXPERIMENT_SETS[args.experiment[0]]
    unknown = [
        c for c in args.experiment if not c.endswith('.py')
        or not osp.isfile(osp.join(ROOT, c)) and not osp.isfile(c)
    ]
    if unknown:
        raise ExperimentError(
            f'not a named set nor a config file: {unknown} (sets: '
            f'{sorted(EXPERIMENT_SETS)})')
    configs = [osp.abspath(c) if osp.isfile(c) else c for c in args.experiment]
    return 'experiment', rows_from_configs(configs, args.baseline)


class Executor:
    """Runs the stages of runs and records what happened."""

    def __init__(self, args, name: str) -> None:
        self.args = args
        self.name = name
        self.failed: List[str] = []
        train, test = list(args.cfg_options), list(args.test_cfg_options)
        if args.data:
            data_train, data_test = demo_data_options(osp.abspath(args.data))
            train, test = data_train + train, data_test + test
        if args.iters:
            train += [
                f'train_cfg.max_iters={args.iters}',
                f'train_cfg.val_interval={args.iters}'
            ]
        self.train_options, self.test_options = train, test

    def settings(self, run: Run) -> dict:
        return dict(
            config=run.row.config,
            seed=run.seed,
            train=run.row.train,
            weights_from=None
            if run.depends_on is None else run.depends_on.work_dir,
            train_options=self.train_options if run.row.train else [],
            test_options=self.test_options)

    def commands(self,
                 run: Run,
                 resume: bool = False,
                 checkpoint: Optional[str] = None) -> Dict[str, List[str]]:
        a = self.args
        return run_commands(
            run,
            a.launcher,
            python=sys.executable,
            gpus=a.gpus,
            partition=a.partition,
            train_options=self.train_options,
            test_options=self.test_options,
            resume=resume,
            checkpoint=checkpoint)

    def _stage(self, run: Run, stage: str, cmd: List[str]) -> bool:
        log = osp.join(run.work_dir, f'{stage}.out')
        start = time.time()
        print(f'[exp] {run.label}: {stage} ... (log: {log})', flush=True)
        with open(log, 'w') as f:
            f.write(format_command(cmd) + '\n')
            f.flush()
            proc = subprocess.run(
                cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        took = time.time() - start
        if proc.returncode != 0:
            with open(log, errors='replace') as f:
                tail = ''.join(f.readlines()[-15:])
            print(
                f'[exp] {run.label}: {stage} FAILED (exit '
                f'{proc.returncode}, {took:.0f} s); end of {log}:\n{tail}',
                flush=True)
            self.failed.append(f'{run.label} ({stage})')
            return False
        print(f'[exp] {run.label}: {stage} done in {took:.0f} s', flush=True)
        return True

    def checkpoint(self, run: Run) -> Optional[str]:
        if run.row.train:
            return final_checkpoint(run.work_dir)
        if run.depends_on is not None:
            ckpt = final_checkpoint(run.depends_on.work_dir)
            if ckpt is None:
                raise ExperimentError(
                    f'{run.label} loads its weights from '
                    f'{run.depends_on.label}, which has no checkpoint in '
                    f'{run.depends_on.work_dir}')
            return ckpt
        return None

    def execute(self, run: Run) -> None:
        """Train (or resume) and evaluate one run, skipping what is done."""
        state = run_state(run)
        if state == 'done':
            print(
                f'[exp] {run.label}: done, skipped ({run.work_dir})',
                flush=True)
            return
        if run.row.train and state != 'trained':
            cmd = self.commands(run, resume=state == 'partial')['train']
            if not self._stage(run, 'train', cmd):
                return
            ckpt = final_checkpoint(run.work_dir)
            if ckpt is None:
                print(f'[exp] {run.label}: training left no checkpoint in '
                      f'{run.work_dir}')
                self.failed.append(f'{run.label} (train)')
                return
            write_json_atomic(
                osp.join(run.work_dir, TRAINED_FILE), dict(checkpoint=ckpt))
        try:
            ckpt = self.checkpoint(run)
        except ExperimentError as exc:
            print(f'[exp] {exc}', flush=True)
            self.failed.append(f'{run.label} (test)')
            return
        self._stage(run, 'test', self.commands(run, checkpoint=ckpt)['test'])

    def prepare(self, run: Run) -> bool:
        """Check (or, with --force, reset) a run's work dir."""
        try:
            check_run_settings(run, self.settings(run))
        except ExperimentError as exc:
            if not self.args.force:
                print(f'[exp] {exc}', flush=True)
                self.failed.append(f'{run.label} (settings)')
                return False
            print(f'[exp] --force: deleting {run.work_dir}', flush=True)
            shutil.rmtree(run.work_dir)
            check_run_settings(run, self.settings(run))
        return True


def dry_run(ex: Executor, runs: List[Run]) -> None:
    for run in runs:
        state = run_state(run)
        if state == 'done':
            print(f'# {run.label}: done')
            continue
        ckpt = '<final checkpoint>' if run.row.train else (
            f'<final checkpoint of {run.depends_on.label}>'
            if run.depends_on is not None else None)
        cmds = ex.commands(run, resume=state == 'partial', checkpoint=ckpt)
        print(f'# {run.label}: {state}')
        for stage in ('train', 'test'):
            if stage in cmds and not (stage == 'train' and state == 'trained'):
                print(format_command(cmds[stage]))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        print(list_sets())
        return 0
    if not args.experiment:
        print(
            'error: name a set or config files (--list shows the sets)',
            file=sys.stderr)
        return 2
    try:
        name, exp = resolve_set(args)
        baseline = args.baseline or exp.baseline
        exp.row(baseline)
        work_root = osp.abspath(args.work_dir)
        runs = plan_runs(exp, args.seeds, work_root)
        ex = Executor(args, name)
        if args.launcher != 'local' and args.launcher == 'slurm' and \
                not args.partition:
            raise ExperimentError('--launcher slurm needs --partition')
    except ExperimentError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    if args.dry_run:
        dry_run(ex, runs)
        return 0
    start = time.time()
    if not args.collect_only:
        todo = [r for r in runs if ex.prepare(r)]
        for phase in (True, False):  # training rows, then evaluation-only
            batch = [r for r in todo if r.row.train is phase]
            if args.max_parallel > 1:
                with ThreadPoolExecutor(args.max_parallel) as pool:
                    list(pool.map(ex.execute, batch))
            else:
                for run in batch:
                    ex.execute(run)
    results: Dict[str, Dict[int, Dict[str, float]]] = {}
    for run in runs:
        if run_state(run) == 'done':
            results.setdefault(run.row.name, {})[run.seed] = read_metrics(run)
    if not results:
        print('[exp] no finished run: no table', file=sys.stderr)
        return 1
    try:
        metrics = select_metrics(results, args.metrics)
    except ExperimentError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    table = summarise(exp, results, metrics, baseline)
    title = (f'{exp.description}: mean ± std over seeds '
             f'{" ".join(map(str, args.seeds))}; Δ = difference of the '
             f'means to "{baseline}"')
    text = format_markdown(table, metrics, baseline, title)
    prefix = args.out or osp.join(work_root, name)
    os.makedirs(osp.dirname(osp.abspath(prefix)), exist_ok=True)
    with open(prefix + '.md', 'w') as f:
        f.write(text)
    write_csv(prefix + '.csv', table, metrics)
    print('\n' + text)
    print(f'[exp] table written to {prefix}.md and {prefix}.csv '
          f'({time.time() - start:.0f} s)')
    if ex.failed:
        print(
            f'[exp] {len(ex.failed)} run(s) failed: '
            f'{"; ".join(ex.failed)}',
            file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    sys.exit(run_tool(main))
