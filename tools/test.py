"""Evaluate a HAP-VR model on a retrieval benchmark (mmaction2 conventions).

Examples:
    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG none            # untrained model (warning)
    python tools/test.py CONFIG CKPT --save-similarities
    bash tools/dist_test.sh CONFIG CKPT 2       # torchrun, 2 processes

The config's ``test_cfg`` is a ``VideoRetrievalTestLoop``; the metrics table
(every metric of the benchmark plus ``skipped_videos``) is printed at the end.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

warnings.filterwarnings('ignore', message='Fail to import')

from mmengine.config import DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402

import hapvr_mm  # noqa: E402,F401
from hapvr_mm.apis import build_test_runner, load_config  # noqa: E402
from hapvr_mm.engine.runner.retrieval_loop import \
    format_metrics_table  # noqa: E402
from hapvr_mm.utils import shutdown_dist  # noqa: E402


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
        help='write {query: {target: score}} to WORK_DIR/similarities.json')
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args)
    if args.checkpoint is None:
        warnings.warn('no checkpoint given: evaluating an untrained '
                      '(randomly initialised) model')
    runner = build_test_runner(args, cfg)
    metrics = runner.test()
    if is_main_process():
        print(format_metrics_table(metrics), flush=True)
    shutdown_dist()
    return metrics


if __name__ == '__main__':
    main()
