"""Score distributions of relevant and irrelevant pairs, as a picture.

Examples:
    # one model
    python tools/analysis/score_distribution.py CONFIG sims.npz \
        --out dist.png
    # untrained vs trained, side by side, table also as JSON
    python tools/analysis/score_distribution.py CONFIG untrained.npz \
        --compare trained.npz --labels untrained trained \
        --out dist.png --json dist.json

``CONFIG`` gives the annotation as for ``tools/eval_similarities.py``: any
config with a ``test_evaluator`` (``RetrievalAPMetric`` with its
``annotation``) or a ``test_dataloader.dataset.annotation``
(``--cfg-options`` overrides it). A similarities file is what
``tools/test.py --save-similarities`` writes (``.npz``, or a JSON / pickle
``{query: {target: score}}``). The scored pairs are split into relevant and
irrelevant ones by the annotation's protocol (``--task`` picks FIVR's
DSVR / CSVR / ISVR or a CC_WEB_VIDEO variant; the query itself is left
out), the two histograms (densities on shared bins: by default each model's
own score range, as scores of different models are not on one scale;
``--range`` fixes one for all) are drawn per model, side by side, and the
separation table (one row per model) is printed. See docs/scores.md.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(TOOLS))
sys.path.insert(0, TOOLS)

import numpy as np
from eval_similarities import metric_from_config
from mmengine.config import Config, DictAction

import hapvr_mm  # noqa: F401
from hapvr_mm.engine.runner import read_scores
from hapvr_mm.evaluation.functional import (PairScores, check_score_ids,
                                            distribution_tasks,
                                            histogram_edges,
                                            separation_summary,
                                            split_pair_scores)

#: Columns of the printed table: (key, header, format).
COLUMNS = (
    ('num_relevant', 'relevant', '{:d}'),
    ('num_irrelevant', 'irrelevant', '{:d}'),
    ('mean_relevant', 'mean rel', '{:.4f}'),
    ('std_relevant', 'std rel', '{:.4f}'),
    ('mean_irrelevant', 'mean irr', '{:.4f}'),
    ('std_irrelevant', 'std irr', '{:.4f}'),
    ('margin', 'margin', '{:.4f}'),
    ('overlap', 'overlap', '{:.4f}'),
    ('irrelevant_above_median', 'irr>med rel', '{:.4f}'),
    ('auc', 'AUC', '{:.4f}'),
    ('d_prime', "d'", '{:.3f}'),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Score distributions of relevant and irrelevant pairs',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
        '  %(prog)s CONFIG sims.npz --out dist.png\n'
        '  %(prog)s CONFIG a.npz --compare b.npz --labels untrained '
        'trained\n')
    parser.add_argument('config', help='dataset / test config file')
    parser.add_argument(
        'similarities', help='compact .npz, JSON or pickle file')
    parser.add_argument(
        '--compare',
        nargs='+',
        default=[],
        metavar='FILE',
        help='more similarities files (other models) drawn side by side')
    parser.add_argument(
        '--labels',
        nargs='+',
        default=None,
        help='one name per similarities file (default: the file names)')
    parser.add_argument(
        '--task',
        default=None,
        help='FIVR: DSVR (default), CSVR, ISVR (+ _hard with easy '
        'duplicates); CC_WEB_VIDEO: mAP (default), mAP*, mAP_clean, '
        'mAP*_clean')
    parser.add_argument(
        '--out',
        default=None,
        help='PNG to write (default: score_distribution.png next to the '
        'first similarities file)')
    parser.add_argument(
        '--bins', type=int, default=40, help='histogram bins (default 40)')
    parser.add_argument(
        '--range',
        type=float,
        nargs=2,
        default=None,
        metavar=('LOW', 'HIGH'),
        help='score range of the bins (default: that of all the scores)')
    parser.add_argument('--title', default=None, help='figure title')
    parser.add_argument('--json', default=None, help='write the table here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    files = [args.similarities] + list(args.compare)
    if args.labels is None:
        args.labels = default_labels(files)
    elif len(args.labels) != len(files):
        parser.error(f'--labels needs one name per similarities file: '
                     f'{len(files)} files, {len(args.labels)} labels')
    if args.bins < 1:
        parser.error(f'--bins must be >= 1, got {args.bins}')
    if args.range is not None and not args.range[0] < args.range[1]:
        parser.error(f'--range needs LOW < HIGH, got {args.range}')
    return args


def default_labels(files: Sequence[str]) -> List[str]:
    """Names of similarities files: the file name, or its folder's name
    when file names repeat or are the default ``similarities.*`` (as in
    ``work_dir/similarities.npz``).

    Args:
        files (sequence[str]): The files.

    Returns:
        list[str]: One name per file.
    """
    names = [osp.basename(f) for f in files]
    if len(set(names)) < len(names) or any(
            n.startswith('similarities.') for n in names):
        names = [osp.basename(osp.dirname(osp.abspath(f))) for f in files]
    return names


def pair_scores(annotation, path: str, task: Optional[str]) -> PairScores:
    """Relevant and irrelevant scores of a similarities file.

    Args:
        annotation (RetrievalAnnotation): The annotation.
        path (str): Similarities file.
        task (str, optional): See
            :func:`~hapvr_mm.evaluation.functional.split_pair_scores`.

    Returns:
        PairScores: The split scores.
    """
    scores = read_scores(path)
    unknown = check_score_ids(annotation, scores, path)
    if unknown:
        print(
            f'warning: {path}: {len(unknown)} id(s) not in the '
            f'{annotation.name} annotation are ignored, e.g. '
            f'{unknown[:3]}',
            file=sys.stderr,
            flush=True)
    pairs = split_pair_scores(annotation, scores, task)
    what = f'{annotation.name}' + (f' {pairs.task}' if pairs.task else '')
    if pairs.num_queries == 0:
        raise ValueError(f'{path}: no query of the {what} protocol has '
                         'scores')
    for name, values in (('relevant', pairs.relevant), ('irrelevant',
                                                        pairs.irrelevant)):
        if values.size == 0:
            raise ValueError(f'{path}: no {name} pair among the scored pairs'
                             f' of its {pairs.num_queries} queries under '
                             f'the {what} annotation')
    return pairs


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """The separation table, one row per model.

    Args:
        rows (dict): model name -> :func:`separation_summary` dict.

    Returns:
        str: The table.
    """
    width = max([5] + [len(name) for name in rows])
    head = f'{"model":>{width}}' + ''.join(f' {h:>11}' for _, h, _ in COLUMNS)
    lines = [head]
    for name, row in rows.items():
        lines.append(f'{name:>{width}}' + ''.join(f' {fmt.format(row[k]):>11}'
                                                  for k, _, fmt in COLUMNS))
    return '\n'.join(lines)


def plot(pairs: Dict[str, PairScores],
         rows: Dict[str, Dict[str, float]],
         edges: Dict[str, np.ndarray],
         out: str,
         title: Optional[str] = None) -> str:
    """Draw relevant vs irrelevant score densities, one panel per model.

    Args:
        pairs (dict): model name -> its :class:`PairScores`.
        rows (dict): model name -> its separation summary.
        edges (dict): model name -> its ``[bins + 1]`` bin edges (shared
            by its relevant and irrelevant pairs).
        out (str): PNG path.
        title (str, optional): Figure title.

    Returns:
        str: ``out``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(pairs)
    ranges = {(float(e[0]), float(e[-1])) for e in edges.values()}
    fig, axes = plt.subplots(
        1, n, figsize=(5.2 * n, 3.8), sharex=len(ranges) == 1, squeeze=False)
    for ax, (name, split) in zip(axes[0], pairs.items()):
        row = rows[name]
        ax.hist(
            split.irrelevant,
            bins=edges[name],
            density=True,
            color='tab:blue',
            alpha=0.55,
            label=f'irrelevant (n={row["num_irrelevant"]})')
        ax.hist(
            split.relevant,
            bins=edges[name],
            density=True,
            color='tab:orange',
            alpha=0.55,
            label=f'relevant (n={row["num_relevant"]})')
        for value, color in ((row['mean_irrelevant'], 'tab:blue'),
                             (row['mean_relevant'], 'tab:orange')):
            ax.axvline(value, color=color, linestyle='--', linewidth=1)
        ax.set_title(
            f'{name}: margin {row["margin"]:.3f}, overlap '
            f'{row["overlap"]:.2f}, AUC {row["auc"]:.2f}',
            fontsize=9)
        ax.set_xlabel('score')
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel('density')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv=None) -> Dict[str, Dict[str, float]]:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    annotation = metric_from_config(cfg).annotation
    tasks = distribution_tasks(annotation)
    if args.task is not None and args.task not in tasks:
        raise ValueError(f'--task {args.task!r} does not apply to the '
                         f'{annotation.name} annotation; expected one of '
                         f'{[t for t in tasks if t] or "none (omit it)"}')
    files = [args.similarities] + list(args.compare)
    pairs = {
        label: pair_scores(annotation, path, args.task)
        for label, path in zip(args.labels, files)
    }
    # scores of different models are not on one scale: each model gets
    # its own bins over its scores, unless --range fixes one for all
    edges = {
        label:
        histogram_edges(
            p.relevant, p.irrelevant, bins=args.bins, value_range=args.range)
        for label, p in pairs.items()
    }
    rows = {
        label: separation_summary(p.relevant, p.irrelevant, edges[label])
        for label, p in pairs.items()
    }
    task = next(iter(pairs.values())).task
    where = ("each model's score range" if args.range is None else
             f'[{args.range[0]:g}, {args.range[1]:g}]')
    print(f'{annotation.name}' + (f' {task}' if task else '') +
          f': relevant vs irrelevant pairs, {args.bins} bins over {where}')
    print(format_table(rows), flush=True)
    out = args.out or osp.join(
        osp.dirname(osp.abspath(args.similarities)), 'score_distribution.png')
    title = args.title
    if title is None:
        title = f'{annotation.name}' + (f' {task}' if task else '') + \
            ': scores of relevant vs irrelevant pairs'
    plot(pairs, rows, edges, out, title)
    print(f'wrote {out}', flush=True)
    if args.json:
        report = dict(
            annotation=annotation.name,
            task=task,
            bins={
                label: [float(e[0]), float(e[-1]), args.bins]
                for label, e in edges.items()
            },
            files=dict(zip(args.labels, files)),
            models={
                label: {
                    k: _json_safe(v)
                    for k, v in row.items()
                }
                for label, row in rows.items()
            })
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=2)
        print(f'wrote {args.json}', flush=True)
    return rows


if __name__ == '__main__':
    main()
