"""Turn command-line options of ``tools/train.py`` / ``tools/test.py`` into
an mmengine ``Runner`` (mmaction2's conventions)."""
import argparse
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ..utils.dist import default_backend, init_dist_cpu

__all__ = ['load_config', 'build_train_runner', 'build_test_runner']


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply ``--cfg-options``, work dir and launcher.

    Args:
        args (Namespace): parsed options with ``config``, ``cfg_options``,
            ``work_dir`` and ``launcher``.

    Returns:
        Config: the merged config.
    """
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if getattr(args, 'cfg_options', None):
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if not torch.cuda.is_available():
        dist_cfg['backend'] = 'gloo'
        if args.launcher != 'none' and cfg.get('model_wrapper_cfg') is None:
            # mmengine's default wrapper passes CUDA device ids; CPU DDP
            # must get none
            cfg.model_wrapper_cfg = dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=False)
    else:
        dist_cfg.setdefault('backend', default_backend())
    init_dist_cpu(args.launcher)
    return cfg


def _apply_amp(cfg: Config, dtype: str) -> None:
    if not torch.cuda.is_available():
        raise SystemExit(
            '--amp needs a CUDA device: mixed precision is not run on CPU '
            '(drop --amp to train in float32 on this machine)')
    optim = cfg.optim_wrapper
    if optim.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
        optim.setdefault('dtype', dtype)
        return
    optim.type = 'AmpOptimWrapper'
    optim.dtype = dtype
    if dtype == 'float16':
        optim.loss_scale = 'dynamic'


def build_train_runner(args: argparse.Namespace,
                       cfg: Optional[Config] = None) -> Runner:
    """Build the training runner from ``tools/train.py``'s options.

    Args:
        args (Namespace): options of ``tools/train.py``.
        cfg (Config, optional): an already loaded config.

    Returns:
        Runner: ready to ``train()``.
    """
    cfg = cfg or load_config(args)
    if args.amp:
        _apply_amp(cfg, args.amp_dtype)
    elif cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and \
            not torch.cuda.is_available():
        print('NOTE: the config asks for AmpOptimWrapper but there is no '
              'CUDA device: training in float32 with OptimWrapper instead.')
        cfg.optim_wrapper.type = 'OptimWrapper'
        for key in ('dtype', 'loss_scale'):
            cfg.optim_wrapper.pop(key, None)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    randomness = cfg.setdefault('randomness', {})
    if args.seed is not None:
        randomness['seed'] = args.seed
    if args.diff_rank_seed:
        randomness['diff_rank_seed'] = True
    if args.deterministic:
        randomness['deterministic'] = True
    return Runner.from_cfg(cfg)


def build_test_runner(args: argparse.Namespace,
                      cfg: Optional[Config] = None) -> Runner:
    """Build the test runner from ``tools/test.py``'s options.

    Args:
        args (Namespace): options with ``checkpoint`` (may be None for a
            random/untrained model) and ``save_similarities``.
        cfg (Config, optional): an already loaded config.

    Returns:
        Runner: ready to ``test()``.
    """
    cfg = cfg or load_config(args)
    if args.checkpoint:
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(
                f'checkpoint {args.checkpoint} does not exist')
        cfg.load_from = args.checkpoint
    if getattr(args, 'save_similarities', False):
        cfg.test_cfg.save_similarities = True
    return Runner.from_cfg(cfg)
