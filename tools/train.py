"""Train a HAP-VR model from a config (mmaction2 conventions).

Examples:
    python tools/train.py configs/hapvr_fivr.py
    python tools/train.py CONFIG --resume            # latest checkpoint
    python tools/train.py CONFIG --amp --cfg-options train_cfg.max_iters=10
    torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch

``--seed``, ``--deterministic``, ``--diff-rank-seed`` and
``--auto-scale-lr`` apply whether or not the config has ``randomness`` /
``auto_scale_lr`` (without ``auto_scale_lr.base_batch_size`` the config's
``train_dataloader.batch_size`` is the base). A ``runner_type`` in the config
selects the runner class, as in mmaction2. Before anything is built, every
missing weight, PCA, data or annotation path of the config is listed at once
with its config key, and the run stops (``error: ...``, exit status 2,
no traceback).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import hapvr_mm  # noqa: F401
from hapvr_mm.apis import build_train_runner
from hapvr_mm.utils import shutdown_dist


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a HAP-VR model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest '
        'checkpoint in the work dir when no path is given')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision training (CUDA only; refused on CPU)')
    parser.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        default='float16',
        help='dtype of --amp (float16 uses a dynamic loss scale)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the total batch size')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed',
        action='store_true',
        help='use a different seed on every rank')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='deterministic algorithms (slower)')
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
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


from mmengine.config import DictAction


def main(argv=None) -> None:
    args = parse_args(argv)
    runner = build_train_runner(args)
    runner.train()
    shutdown_dist()


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ))
