"""Evaluate a stored similarities file without a model.

Examples:
    python tools/eval_similarities.py CONFIG work_dirs/x/similarities.json
    python tools/eval_similarities.py configs/_base_/datasets/x.py sims.pkl

``CONFIG`` is any config with a ``test_evaluator`` (``RetrievalAPMetric``
with its ``annotation``) or a ``test_dataloader.dataset.annotation``. The
similarities file is JSON or pickle ``{query: {target: score}}`` (as written
by ``tools/test.py --save-similarities``; ``{query: (target_ids, scores)}``
is accepted too). The table is the one ``tools/test.py`` prints;
``skipped_videos`` counts the annotation's videos that have no score at all
(neither scored as a query nor as a target).
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

warnings.filterwarnings('ignore', message='Fail to import')

from mmengine.config import Config, DictAction  # noqa: E402

import hapvr_mm  # noqa: E402,F401
from hapvr_mm.engine.runner.retrieval_loop import (  # noqa: E402
    format_metrics_table, load_similarities)
from hapvr_mm.evaluation.metrics.retrieval_ap import \
    RetrievalAPMetric  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a similarities file (no model needed)')
    parser.add_argument('config', help='dataset / test config file')
    parser.add_argument('similarities', help='JSON or pickle file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
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


def evaluate_file(cfg: Config, path: str) -> dict:
    """Metrics of a similarities file under a config's annotation.

    Args:
        cfg (Config): see :func:`metric_from_config`.
        path (str): similarities file.

    Returns:
        dict: prefixed metrics plus ``skipped_videos``.
    """
    metric = metric_from_config(cfg)
    sims = load_similarities(path)
    metric.process(None, [
        dict(
            query_id=q, target_ids=list(row.keys()), scores=list(row.values()))
        for q, row in sims.items()
    ])
    metrics = metric.evaluate(len(metric.results))
    seen = set(sims)
    for row in sims.values():
        seen.update(row)
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
    metrics = evaluate_file(cfg, args.similarities)
    print(format_metrics_table(metrics), flush=True)
    return metrics


if __name__ == '__main__':
    main()
