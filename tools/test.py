"""Evaluate a HAP-VR model on a retrieval benchmark (mmaction2 conventions).

Examples:
    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG none            # untrained model (warning)
    python tools/test.py CONFIG CKPT --save-similarities
    python tools/test.py CONFIG CKPT --dump preds.pkl
    python tools/test.py CONFIG CKPT --tune-malloc   # CPU, glibc only
    bash tools/dist_test.sh CONFIG CKPT 2       # torchrun, 2 processes

The config's ``test_cfg`` is a ``VideoRetrievalTestLoop``; the metrics table
(every metric of the benchmark plus ``skipped_videos``) is printed at the end.

* ``--save-similarities`` writes ``WORK_DIR/similarities.npz`` (query ids,
  target ids, float32 ``[Q, T]`` scores, NaN where not scored), which
  ``tools/eval_similarities.py`` evaluates without the model; set
  ``test_cfg.save_similarities=NAME.json`` (or ``.pkl``) through
  ``--cfg-options`` for the dict-of-dicts form.
* ``--dump FILE`` (``.pkl``) writes the predictions as mmaction2's
  ``--dump`` does (``DumpRetrievalResults``, mmengine's ``DumpResults``
  for the loop's score matrices): the list of per-query pieces
  ``{query_id, target_ids [n], scores [n]}`` (scored pairs, database
  order).
* ``--tune-malloc`` raises glibc's malloc thresholds for this process
  (``test_cfg.tune_malloc=True``, CPU runs only; see
  ``hapvr_mm.utils.tune_glibc_malloc`` and docs/benchmarks.md for the
  measured effect). Off by default: it changes process-wide allocator
  behaviour and keeps up to 512 MB of freed memory.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction
from mmengine.dist import is_main_process

import hapvr_mm  # noqa: F401
from hapvr_mm.apis import build_test_runner, load_config
from hapvr_mm.apis.experiments import jsonable_metrics, write_json_atomic
from hapvr_mm.engine.runner import format_metrics_table
from hapvr_mm.utils import shutdown_dist


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a HAP-VR model on a retrieval benchmark')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help="checkpoint file; omit it or pass 'none' to evaluate an "
        'untrained model')
    parser.add_argument(
        '--work-dir', help='the dir to save logs and similarities')
    parser.add_argument(
        '--save-similarities',
        action='store_true',
        help='write the scores to WORK_DIR/similarities.npz (query ids, '
        'target ids, float32 [Q, T] scores)')
    parser.add_argument(
        '--out-metrics',
        metavar='JSON',
        help='also write the metrics to this JSON file (written last, '
        'through a temporary file: its presence means the evaluation '
        'finished)')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump the predictions (per-query target ids and scores) to '
        'this pickle file, as mmaction2 does')
    parser.add_argument(
        '--tune-malloc',
        action='store_true',
        help='raise glibc malloc thresholds for this CPU run (opt-in, '
        'process-wide)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.checkpoint is not None and args.checkpoint.lower() == 'none':
        args.checkpoint = None
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def add_dump_metric(cfg, path: str) -> None:
    """Append the ``DumpRetrievalResults`` metric writing ``path``.

    Args:
        cfg (Config): The config; its ``test_evaluator`` becomes a list.
        path (str): Pickle file (``.pkl`` / ``.pickle``).
    """
    if not path.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--dump must name a .pkl or .pickle file, got '
                         f'{path!r}')
    dump_metric = dict(type='DumpRetrievalResults', out_file_path=path)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = list(evaluator) + [dump_metric]
    else:
        cfg.test_evaluator = [evaluator, dump_metric]


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args)
    if args.dump is not None:
        add_dump_metric(cfg, args.dump)
    if args.tune_malloc:
        cfg.test_cfg.tune_malloc = True
    if args.checkpoint is None:
        warnings.warn('no checkpoint given: evaluating an untrained '
                      '(randomly initialised) model')
    runner = build_test_runner(args, cfg)
    metrics = runner.test()
    if is_main_process():
        print(format_metrics_table(metrics), flush=True)
        if args.out_metrics:
            write_json_atomic(args.out_metrics, jsonable_metrics(metrics))
    shutdown_dist()
    return metrics


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ))
