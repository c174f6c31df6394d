"""Evaluate a stored similarities file without a model.

Examples:
    python tools/eval_similarities.py CONFIG work_dirs/x/similarities.npz
    python tools/eval_similarities.py configs/_base_/datasets/x.py sims.pkl

``CONFIG`` is any config with a ``test_evaluator`` (``RetrievalAPMetric``
with its ``annotation``) or a ``test_dataloader.dataset.annotation``. The
similarities file is either the compact ``.npz`` written by ``tools/test.py
--save-similarities`` (query ids, target ids, float32 ``[Q, T]`` scores,
NaN where not scored; read without building any per-pair Python object) or
a JSON / pickle ``{query: {target: score}}`` (``{query: (target_ids,
scores)}`` is accepted too). The table is the one ``tools/test.py`` prints;
``skipped_videos`` counts the annotation's videos that have no score at all
(neither scored as a query nor as a target). ``--timing`` prints the time
spent loading the file and computing the metrics.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np
from mmengine.config import Config, DictAction

import hapvr_mm  # noqa: F401
from hapvr_mm.engine.runner import format_metrics_table, read_scores
from hapvr_mm.evaluation import RetrievalAPMetric, ScoreMatrix


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a similarities file (no model needed)')
    parser.add_argument('config', help='dataset / test config file')
    parser.add_argument(
        'similarities', help='compact .npz, JSON or pickle file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--timing',
        action='store_true',
        help='print the load and metric times (seconds)')
    return parser.parse_args(argv)


def metric_from_config(cfg: Config) -> RetrievalAPMetric:
    """Build the retrieval metric of a config.

    Args:
        cfg (Config): config with ``test_evaluator`` or
            ``test_dataloader.dataset.annotation``.

    Returns:
        RetrievalAPMetric: the metric.
    """
    evaluator = cfg.get('test_evaluator')
    if isinstance(evaluator, (list, tuple)):
        evaluator = next(
            (e for e in evaluator if e.get('type') == 'RetrievalAPMetric'),
            None)
    if evaluator is not None and 'annotation' in evaluator:
        args = {k: v for k, v in evaluator.items() if k != 'type'}
        return RetrievalAPMetric(**args)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if 'annotation' not in dataset:
        raise ValueError(f'{cfg.filename}: expected a test_evaluator with an '
                         "'annotation' or test_dataloader.dataset.annotation")
    return RetrievalAPMetric(annotation=dataset['annotation'])


def scored_ids(scores) -> set:
    """Ids that have at least one score, as a query or as a target.

    Args:
        scores (ScoreMatrix | dict): query id -> ``(target_ids, scores)``.

    Returns:
        set[str]: The ids.
    """
    seen = set(scores)
    if isinstance(scores, ScoreMatrix):
        scored = ~np.isnan(scores.scores).all(axis=0)
        seen.update(scores.target_ids[scored].tolist())
    else:
        for ids, _ in scores.values():
            seen.update(np.asarray(ids).tolist())
    return seen


def evaluate_file(cfg: Config, path: str, timing: bool = False) -> dict:
    """Metrics of a similarities file under a config's annotation.

    Args:
        cfg (Config): see :func:`metric_from_config`.
        path (str): similarities file (``.npz``, JSON or pickle).
        timing (bool): print the load and metric times. Defaults to False.

    Returns:
        dict: prefixed metrics plus ``skipped_videos``.
    """
    metric = metric_from_config(cfg)
    start = time.perf_counter()
    scores = read_scores(path)
    loaded = time.perf_counter()
    raw = metric.annotation.evaluate(scores)
    done = time.perf_counter()
    if timing:
        print(
            f'load {path}: {loaded - start:.2f} s, metrics: '
            f'{done - loaded:.2f} s',
            flush=True)
    metrics = {f'{metric.prefix}/{k}': v for k, v in raw.items()}
    seen = scored_ids(scores)
    metrics['skipped_videos'] = sum(1 for vid in metric.annotation.all_ids
                                    if vid not in seen)
    return metrics


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    metrics = evaluate_file(cfg, args.similarities, args.timing)
    print(format_metrics_table(metrics), flush=True)
    return metrics


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ValueError))
