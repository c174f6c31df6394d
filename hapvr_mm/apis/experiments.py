"""Experiment tables: several configs x several seeds, trained, evaluated
and summarised as mean +- std with differences to a baseline row.

The pieces a runner needs, kept free of process handling so that they can
be tested on their own (``tools/experiments.py`` runs the commands):

* :data:`EXPERIMENT_SETS`: the paper's tables (``ablation``, ``losses``)
  and their demo-scale twins (``ablation-demo``, ``losses-demo``: the same
  losses and switches on the demo data and backbone);
* :func:`plan_runs`: one :class:`Run` per (row, seed), each with its own
  work dir ``WORK_ROOT/<config name>/seed<k>``, shared by every set that
  uses the same config (a run is never trained twice);
* :func:`run_commands`: the training and evaluation command lines of a
  run for a launcher (``local``, ``pytorch`` = ``tools/dist_*.sh``,
  ``slurm`` = ``tools/slurm_*.sh``);
* :func:`run_state` / :func:`check_run_settings`: what is already done
  (a run is done when its ``metrics.json`` exists) and a refusal to mix
  runs of different settings in one work dir;
* :func:`summarise`, :func:`format_markdown`, :func:`write_csv`: the table.
"""
import csv
import json
import math
import os
import os.path as osp
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    'ExperimentRow', 'ExperimentSet', 'EXPERIMENT_SETS', 'Run', 'plan_runs',
    'run_commands', 'run_state', 'check_run_settings', 'final_checkpoint',
    'read_metrics', 'summarise', 'select_metrics', 'format_markdown',
    'write_csv', 'demo_data_options', 'jsonable_metrics', 'write_json_atomic',
    'format_command', 'ExperimentError', 'rows_from_configs'
]

#: file of a run's work dir holding its evaluation metrics (written last)
METRICS_FILE = 'metrics.json'
#: file of a run's work dir recording its settings
RUN_FILE = 'run.json'
#: marker of a finished training stage
TRAINED_FILE = 'train_done.json'


class ExperimentError(ValueError):
    """A set, row, run or work dir that cannot be used as asked."""


@dataclass(frozen=True)
class ExperimentRow:
    """One row of an experiment table.

    Args:
        name (str): the row label (unique in its set).
        config (str): config file, relative to the repository root or
            absolute.
        train (bool): train the config before evaluating it. False for
            an evaluation-only row (e.g. a no-training baseline).
            Defaults to True.
        weights_from (str, optional): for an evaluation-only row, the name
            of the training row whose final checkpoint (same seed) is
            loaded; its keys that the row's model has are used (e.g. the
            frozen backbone). Defaults to None (untrained weights).
        note (str): what the row is, for the table's legend.
    """
    name: str
    config: str
    train: bool = True
    weights_from: Optional[str] = None
    note: str = ''


@dataclass(frozen=True)
class ExperimentSet:
    """A named experiment: its rows and the baseline row of the diffs.

    Args:
        rows (tuple[ExperimentRow]): the rows, in table order.
        baseline (str): the row the differences are taken to.
        description (str): one line shown above the table.
    """
    rows: Tuple[ExperimentRow, ...]
    baseline: str
    description: str = ''

    def __post_init__(self) -> None:
        names = [r.name for r in self.rows]
        if len(set(names)) != len(names):
            raise ExperimentError(f'duplicate row names in {names}')
        if self.baseline not in names:
            raise ExperimentError(f'baseline {self.baseline!r} is not one '
                                  f'of the rows {names}')
        for row in self.rows:
            if row.weights_from is None:
                continue
            if row.train:
                raise ExperimentError(
                    f'row {row.name!r}: weights_from is for evaluation-only '
                    'rows (train=False)')
            src = [r for r in self.rows if r.name == row.weights_from]
            if not src or not src[0].train:
                raise ExperimentError(
                    f'row {row.name!r}: weights_from={row.weights_from!r} '
                    'must name a training row of the same set')

    def row(self, name: str) -> ExperimentRow:
        """The row called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise ExperimentError(f'no row {name!r}; rows: '
                              f'{[r.name for r in self.rows]}')


_PAPER = 'configs/hapvr/hapvr_r50-pca512_dino-vits16_2xb64-w28-30k_' \
    'vcdb-ssl_fivr5k_{}.py'
_DEMO = 'configs/demo/hapvr_demo_{}.py'


def _rows(pattern: str, names: Sequence[Tuple[str, str, str]],
          baseline: Optional[ExperimentRow]) -> Tuple[ExperimentRow, ...]:
    rows = [] if baseline is None else [baseline]
    rows += [ExperimentRow(n, pattern.format(s), note=t) for n, s, t in names]
    return tuple(rows)


_ABLATION = (
    ('pair-wise', 'pairwise', 'L_nce + L_hn + L_self + L_reg (S2VS)'),
    ('+ video AP', 'video-ap', '+ video-level QuadLinear-AP'),
    ('+ frame AP', 'frame-ap',
     '+ frame-level QuadLinear-AP with pseudo labels (HAP-VR)'),
)
_LOSSES = (
    ('InfoNCE', 'pairwise', 'pair-wise losses only'),
    ('Smooth-AP', 'sigmoid-ap', 'sigmoid surrogate at both levels'),
    ('FastAP (video)', 'fast-ap', 'pair-wise + video-level FastAP'),
    ('QuadLinear-AP (video)', 'video-ap',
     'pair-wise + video-level QuadLinear-AP'),
    ('QuadLinear-AP', 'frame-ap', 'QuadLinear-AP at both levels (HAP-VR)'),
)
_PAPER_CHAMFER = ExperimentRow(
    'Chamfer (no training)',
    'configs/hapvr/frame-retriever_r50-pca512_chamfer_test_fivr5k.py',
    train=False,
    note='frozen backbone features, plain Chamfer similarity')
_DEMO_CHAMFER = ExperimentRow(
    'Chamfer (no training)',
    'configs/demo/frame-retriever_chamfer_demo.py',
    train=False,
    weights_from='+ frame AP',
    note='the same frozen backbone, plain Chamfer similarity')
_DEMO_CHAMFER_LOSSES = ExperimentRow(
    _DEMO_CHAMFER.name,
    _DEMO_CHAMFER.config,
    train=False,
    weights_from='QuadLinear-AP',
    note=_DEMO_CHAMFER.note)

#: the named experiments of ``tools/experiments.py``
EXPERIMENT_SETS: Dict[str, ExperimentSet] = {
    'ablation':
    ExperimentSet(
        _rows(_PAPER, _ABLATION, _PAPER_CHAMFER), 'pair-wise',
        'HAP-VR components (paper recipe, VCDB-SSL -> FIVR-5K)'),
    'losses':
    ExperimentSet(
        _rows(_PAPER, _LOSSES, _PAPER_CHAMFER), 'InfoNCE',
        'ranking losses (paper recipe, VCDB-SSL -> FIVR-5K)'),
    'ablation-demo':
    ExperimentSet(
        _rows(_DEMO, _ABLATION, _DEMO_CHAMFER), 'pair-wise',
        'HAP-VR components on the CPU demo'),
    'losses-demo':
    ExperimentSet(
        _rows(_DEMO, _LOSSES, _DEMO_CHAMFER_LOSSES), 'InfoNCE',
        'ranking losses on the CPU demo'),
}


def rows_from_configs(configs: Sequence[str],
                      baseline: Optional[str] = None) -> ExperimentSet:
    """An ad-hoc set: one training row per config, named by its file.

    Args:
        configs (list[str]): config files.
        baseline (str, optional): row name (a config's file name without
            ``.py``) or config path of the baseline; defaults to the first.

    Returns:
        ExperimentSet: the set.
    """
    if not configs:
        raise ExperimentError('no config given')
    rows = tuple(ExperimentRow(_config_name(c), c) for c in configs)
    if baseline is not None and baseline.endswith('.py'):
        baseline = _config_name(baseline)
    return ExperimentSet(rows, baseline or rows[0].name, 'configs')


def _config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


@dataclass
class Run:
    """One (row, seed) of an experiment.

    Args:
        row (ExperimentRow): the row.
        seed (int): the random seed.
        work_dir (str): its own work dir.
        depends_on (Run, optional): the training run whose checkpoint an
            evaluation-only row loads.
    """
    row: ExperimentRow
    seed: int
    work_dir: str
    depends_on: Optional['Run'] = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``row name / seed``, for progress lines."""
        return f'{self.row.name} / seed {self.seed}'


def plan_runs(exp: ExperimentSet, seeds: Sequence[int],
              work_root: str) -> List[Run]:
    """Every (row, seed) run of a set, training rows first.

    The work dir of a run is ``work_root/<config name>/seed<seed>``: two
    sets that share a config share its runs. Evaluation-only rows with
    ``weights_from`` get a work dir under their source's name so that
    two baselines loading different runs do not collide.

    Args:
        exp (ExperimentSet): the set.
        seeds (list[int]): the seeds (distinct).
        work_root (str): root of the work dirs.

    Returns:
        list[Run]: training runs, then evaluation-only runs.
    """
    if not seeds:
        raise ExperimentError('no seed given')
    if len(set(seeds)) != len(seeds):
        raise ExperimentError(f'seeds must be distinct, got {list(seeds)}')
    runs: Dict[Tuple[str, int], Run] = {}
    for row in exp.rows:
        for seed in seeds:
            name = _config_name(row.config)
            if row.weights_from is not None:
                src = _config_name(exp.row(row.weights_from).config)
                name = f'{name}@{src}'
            runs[row.name,
                 seed] = Run(row, int(seed),
                             osp.join(work_root, name, f'seed{seed}'))
    for (name, seed), run in runs.items():
        if run.row.weights_from is not None:
            run.depends_on = runs[run.row.weights_from, seed]
    ordered = [r for r in runs.values() if r.row.train]
    return ordered + [r for r in runs.values() if not r.row.train]


# --------------------------------------------------------------------------
# State of a run's work dir
# --------------------------------------------------------------------------
def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ExperimentError(f'cannot read {path}: {exc}') from exc


def write_json_atomic(path: str, data: Mapping) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


def jsonable_metrics(metrics: Mapping) -> dict:
    """Metrics with NumPy numbers as Python numbers, others as text.

    Args:
        metrics (dict): an evaluator's metrics.

    Returns:
        dict: the same keys, JSON-serialisable values.
    """
    out = {}
    for key, value in metrics.items():
        if hasattr(value, 'item') and getattr(value, 'ndim', 1) == 0:
            value = value.item()
        if not isinstance(value, (int, float, str, bool, type(None))):
            value = str(value)
        out[str(key)] = value
    return out


def final_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` of a training work dir names.

    Args:
        work_dir (str): a training work dir.

    Returns:
        str | None: the checkpoint path, None when there is none yet.
    """
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    if path and not osp.isabs(path) and not osp.exists(path):
        path = osp.join(work_dir, osp.basename(path))
    return path if path and osp.isfile(path) else None


def run_state(run: Run) -> str:
    """Where a run stands.

    Returns:
        str: ``'done'`` (metrics written), ``'trained'`` (training
        finished, evaluation not), ``'partial'`` (a checkpoint to resume
        from) or ``'new'``.
    """
    if osp.isfile(osp.join(run.work_dir, METRICS_FILE)):
        return 'done'
    if not run.row.train or osp.isfile(osp.join(run.work_dir, TRAINED_FILE)):
        return 'trained'
    if final_checkpoint(run.work_dir) is not None:
        return 'partial'
    return 'new'


def check_run_settings(run: Run, settings: Mapping) -> None:
    """Record a run's settings, or refuse a work dir made with others.

    Args:
        run (Run): the run.
        settings (dict): what defines its result (config, seed, options).

    Raises:
        ExperimentError: the work dir holds a run with other settings.
    """
    path = osp.join(run.work_dir, RUN_FILE)
    if osp.isfile(path):
        old = _read_json(path)
        if old != json.loads(json.dumps(settings)):
            diff = sorted(
                k for k in set(old) | set(settings)
                if old.get(k) != settings.get(k))
            raise ExperimentError(
                f'{run.work_dir} holds a run of {run.label} with other '
                f'settings ({", ".join(diff)} differ): use another '
                '--work-dir, or --force to start it again')
        return
    os.makedirs(run.work_dir, exist_ok=True)
    write_json_atomic(path, settings)


def read_metrics(run: Run) -> Dict[str, float]:
    """The evaluation metrics of a finished run (numbers only)."""
    data = _read_json(osp.join(run.work_dir, METRICS_FILE))
    return {
        k: float(v)
        for k, v in data.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


# --------------------------------------------------------------------------
# Command lines
# --------------------------------------------------------------------------
LAUNCHERS = ('local', 'pytorch', 'slurm')


def run_commands(run: Run,
                 launcher: str = 'local',
                 python: str = 'python',
                 gpus: int = 1,
                 partition: Optional[str] = None,
                 train_options: Sequence[str] = (),
                 test_options: Sequence[str] = (),
                 resume: bool = False,
                 checkpoint: Optional[str] = None,
                 job_prefix: str = 'hapvr') -> Dict[str, List[str]]:
    """The command lines of one run.

    Training writes to ``run.work_dir`` (``--resume`` continues from its
    last checkpoint); evaluation writes ``metrics.json`` and
    ``similarities.npz`` there (through ``tools/test.py --out-metrics
    --save-similarities``, with its logs under ``run.work_dir/test``).

    Args:
        run (Run): the run.
        launcher (str): ``'local'`` (``python tools/*.py``), ``'pytorch'``
            (``tools/dist_train.sh`` / ``dist_test.sh`` with ``gpus``
            processes) or ``'slurm'`` (``tools/slurm_train.sh`` /
            ``slurm_test.sh`` on ``partition``, ``GPUS`` from the caller's
            environment).
        python (str): the interpreter of local runs.
        gpus (int): processes of a ``pytorch`` launch.
        partition (str, optional): Slurm partition (required for slurm).
        train_options / test_options (list[str]): ``--cfg-options``
            ``key=value`` items of each stage.
        resume (bool): resume training from the work dir's checkpoint.
        checkpoint (str, optional): the weights to evaluate; None for the
            run's final checkpoint (training rows) or no weights.
        job_prefix (str): prefix of Slurm job names.

    Returns:
        dict: ``{'train': [...], 'test': [...]}`` (no ``'train'`` for an
        evaluation-only row).
    """
    if launcher not in LAUNCHERS:
        raise ExperimentError(f'launcher must be one of {LAUNCHERS}, got '
                              f'{launcher!r}')
    if launcher == 'slurm' and not partition:
        raise ExperimentError('--launcher slurm needs --partition')
    work = run.work_dir
    job = f'{job_prefix}-{_config_name(run.row.config)}-s{run.seed}'
    cmds: Dict[str, List[str]] = {}
    if run.row.train:
        args = ['--work-dir', work, '--seed', str(run.seed), '--no-validate']
        if resume:
            args.append('--resume')
        if train_options:
            args += ['--cfg-options', *train_options]
        if launcher == 'local':
            cmds['train'] = [python, 'tools/train.py', run.row.config, *args]
        elif launcher == 'pytorch':
            cmds['train'] = [
                'bash', 'tools/dist_train.sh', run.row.config,
                str(gpus), *args
            ]
        else:
            cmds['train'] = [
                'bash', 'tools/slurm_train.sh', partition, job, run.row.config,
                *args
            ]
    ckpt = checkpoint or 'none'
    args = [
        '--work-dir',
        osp.join(work, 'test'), '--save-similarities', '--out-metrics',
        osp.join(work, METRICS_FILE)
    ]
    if test_options:
        args += ['--cfg-options', *test_options]
    if launcher == 'local':
        cmds['test'] = [python, 'tools/test.py', run.row.config, ckpt, *args]
    elif launcher == 'pytorch':
        cmds['test'] = [
            'bash', 'tools/dist_test.sh', run.row.config, ckpt,
            str(gpus), *args
        ]
    else:
        cmds['test'] = [
            'bash', 'tools/slurm_test.sh', partition, job + '-test',
            run.row.config, ckpt, *args
        ]
    return cmds


def format_command(cmd: Sequence[str]) -> str:
    """A command line as a shell would read it."""
    return ' '.join(shlex.quote(c) for c in cmd)


def demo_data_options(root: str) -> Tuple[List[str], List[str]]:
    """``--cfg-options`` that point a demo config at another demo dataset.

    Args:
        root (str): a folder written by ``tools/data/make_demo_dataset.py``
            (``train/`` and ``eval/``).

    Returns:
        tuple[list[str], list[str]]: the training options (training data
        and the evaluation data of validation) and the evaluation options.
    """
    ann_file = osp.join(root, 'eval', 'annotation.json')
    pattern = osp.join(root, 'eval', 'videos', '{id}.mp4')

    def split(name: str) -> List[str]:
        return [
            f'{name}_dataloader.dataset.annotation.ann_file={ann_file}',
            f'{name}_dataloader.dataset.video_pattern={pattern}'
        ]

    train = [f'train_dataloader.dataset.data_root={osp.join(root, "train")}']
    return train + split('val') + split('test'), split('test')


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------
def select_metrics(results: Mapping[str, Mapping[int, Mapping[str, float]]],
                   wanted: Optional[Sequence[str]] = None) -> List[str]:
    """The metric columns of a table.

    Args:
        results (dict): row name -> seed -> metrics.
        wanted (list[str], optional): names or suffixes (``'mAP'`` matches
            ``'fivr5k/DSVR/mAP'``); default: every metric whose name ends
            in ``mAP`` or ``uAP``.

    Returns:
        list[str]: metric names in first-seen order.
    """
    names: List[str] = []
    for per_seed in results.values():
        for metrics in per_seed.values():
            for name in metrics:
                if name not in names:
                    names.append(name)
    if wanted:
        chosen = [
            n for n in names
            if any(n == w or n.endswith('/' + w) for w in wanted)
        ]
    else:
        chosen = [n for n in names if n.endswith(('mAP', 'uAP'))]
    if wanted and not chosen:
        raise ExperimentError(f'none of the metrics {list(wanted)} is in '
                              f'the results ({names})')
    return chosen


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float('nan')
    var = sum((v - mean)**2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def summarise(exp: ExperimentSet,
              results: Mapping[str, Mapping[int, Mapping[str, float]]],
              metrics: Sequence[str],
              baseline: Optional[str] = None) -> List[dict]:
    """Mean, sample standard deviation and difference to the baseline.

    Args:
        exp (ExperimentSet): the set (row order and notes).
        results (dict): row name -> seed -> metrics of finished runs.
        metrics (list[str]): the metric columns.
        baseline (str, optional): the baseline row; defaults to the set's.

    Returns:
        list[dict]: one dict per row with ``row``, ``config``, ``note``,
        ``seeds`` (list) and, per metric ``m``, ``m`` -> ``(mean, std,
        diff)`` (NaN where unknown: std of one seed, a row or baseline
        without results).
    """
    baseline = baseline or exp.baseline
    exp.row(baseline)
    stats = {}
    for row in exp.rows:
        per_seed = results.get(row.name, {})
        col = {}
        for m in metrics:
            vals = [r[m] for r in per_seed.values() if m in r]
            col[m] = _mean_std(vals) if vals else (float('nan'), ) * 2
        stats[row.name] = (sorted(per_seed), col)
    table = []
    for row in exp.rows:
        seeds, col = stats[row.name]
        entry = dict(
            row=row.name, config=row.config, note=row.note, seeds=seeds)
        for m in metrics:
            mean, std = col[m]
            entry[m] = (mean, std, mean - stats[baseline][1][m][0])
        table.append(entry)
    return table


def _num(x: float, signed: bool = False) -> str:
    if math.isnan(x):
        return '–'
    return f'{x:+.3f}' if signed else f'{x:.3f}'


def format_markdown(table: Sequence[dict],
                    metrics: Sequence[str],
                    baseline: str,
                    title: Optional[str] = None) -> str:
    """The table as Markdown: ``mean ± std`` and ``Δ`` per metric.

    Args:
        table (list[dict]): :func:`summarise`'s rows.
        metrics (list[str]): the metric columns.
        baseline (str): the baseline row (marked in the table).
        title (str, optional): a line above the table.

    Returns:
        str: the Markdown text (newline-terminated).
    """
    head = ['row', 'seeds']
    for m in metrics:
        head += [m, f'Δ {m}']
    lines = [] if title is None else [title, '']
    lines.append('| ' + ' | '.join(head) + ' |')
    lines.append('|' + '|'.join(['---'] + ['--:'] * (len(head) - 1)) + '|')
    for entry in table:
        name = entry['row'] + (' (baseline)'
                               if entry['row'] == baseline else '')
        cells = [name, str(len(entry['seeds']))]
        for m in metrics:
            mean, std, diff = entry[m]
            cells.append(f'{_num(mean)} ± {_num(std)}'
                         if not math.isnan(std) else _num(mean))
            cells.append(_num(diff, signed=True))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def write_csv(path: str, table: Sequence[dict],
              metrics: Sequence[str]) -> None:
    """The table as CSV: one row per table row, three columns per metric.

    Args:
        path (str): output file.
        table (list[dict]): :func:`summarise`'s rows.
        metrics (list[str]): the metric columns.
    """
    header = ['row', 'config', 'num_seeds', 'seeds']
    for m in metrics:
        header += [f'{m} mean', f'{m} std', f'{m} diff']
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for entry in table:
            cells = [
                entry['row'], entry['config'],
                len(entry['seeds']), ' '.join(map(str, entry['seeds']))
            ]
            for m in metrics:
                cells += [
                    f'{v:.6f}' if not math.isnan(v) else '' for v in entry[m]
                ]
            writer.writerow(cells)
