"""Turn command-line options of ``tools/train.py`` / ``tools/test.py`` into
an mmengine ``Runner`` (mmaction2's conventions)."""
import argparse
import logging
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..utils.dist import default_backend, init_dist_cpu
from .errors import ConfigError
from .preflight import check_checkpoint_file, check_config_files

__all__ = [
    'load_config', 'build_train_runner', 'build_test_runner', 'build_runner',
    'apply_train_flags'
]


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply ``--cfg-options``, work dir and launcher.

    Side-effect free: the distributed process group is started by
    :func:`build_runner`, not here.

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
    return cfg


def _apply_amp(cfg: Config, dtype: str) -> None:
    if not torch.cuda.is_available():
        raise ConfigError(
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


def _section(cfg: Config, key: str) -> Any:
    """``cfg[key]`` as the stored (mutable) dict, created when absent.

    ``cfg.setdefault(key, {})`` returns the default it was given, not the
    ``ConfigDict`` the config stores, so writes into it are lost.
    """
    if not isinstance(cfg.get(key), dict):
        cfg[key] = {}
    return cfg[key]


def apply_train_flags(cfg: Config, args: argparse.Namespace) -> None:
    """Apply ``--auto-scale-lr``, ``--seed``, ``--diff-rank-seed`` and
    ``--deterministic`` to the config, whether or not it has the keys.

    A config without ``auto_scale_lr.base_batch_size`` gets the config's
    own ``train_dataloader.batch_size``: its lr is taken to be tuned for one
    process, so the lr is multiplied by the number of processes.

    Args:
        cfg (Config): The config, changed in place.
        args (Namespace): Options with ``auto_scale_lr``, ``seed``,
            ``diff_rank_seed`` and ``deterministic`` (missing ones are off).
    """
    if getattr(args, 'auto_scale_lr', False):
        scale = _section(cfg, 'auto_scale_lr')
        scale['enable'] = True
        if 'base_batch_size' not in scale:
            loader = cfg.get('train_dataloader') or {}
            if 'batch_size' not in loader:
                raise ConfigError(
                    '--auto-scale-lr needs auto_scale_lr.base_batch_size '
                    'or train_dataloader.batch_size in the config')
            scale['base_batch_size'] = loader['batch_size']
            print_log(
                '--auto-scale-lr: the config has no '
                'auto_scale_lr.base_batch_size; taking the lr as tuned '
                f'for one process of batch {loader["batch_size"]}',
                logger='current',
                level=logging.WARNING)
    randomness = _section(cfg, 'randomness')
    randomness.setdefault('seed', None)  # mmengine's default: a random seed
    if getattr(args, 'seed', None) is not None:
        randomness['seed'] = args.seed
    if getattr(args, 'diff_rank_seed', False):
        randomness['diff_rank_seed'] = True
    if getattr(args, 'deterministic', False):
        randomness['deterministic'] = True


def build_runner(cfg: Config) -> Runner:
    """Build a runner as mmaction2's tools do.

    A config with ``runner_type`` is built through mmengine's ``RUNNERS``
    registry (a custom runner class); otherwise ``Runner.from_cfg``. On a
    machine without CUDA, a ``cfg.launcher`` other than ``'none'`` first
    starts the ``gloo`` process group (:func:`init_dist_cpu`), which
    mmengine's own CUDA-only set-up cannot do.

    Args:
        cfg (Config): The final config.

    Returns:
        Runner: The runner.
    """
    init_dist_cpu(cfg.get('launcher', 'none'))
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


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
        print_log(
            'the config asks for AmpOptimWrapper but there is no CUDA '
            'device: training in float32 with OptimWrapper instead',
            logger='current',
            level=logging.WARNING)
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
    apply_train_flags(cfg, args)
    if getattr(args, 'preflight', True):
        resumed = args.resume not in (None, 'auto')
        check_config_files(
            cfg,
            'train',
            labels={'load_from': '--resume'} if resumed else None)
    return build_runner(cfg)


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
    labels = None
    if args.checkpoint:
        cfg.load_from = args.checkpoint
        labels = {'load_from': 'CHECKPOINT (the tools/test.py argument)'}
    if getattr(args, 'save_similarities', False):
        cfg.test_cfg.save_similarities = True
    if getattr(args, 'preflight', True):
        check_config_files(cfg, 'test', labels=labels)
    elif args.checkpoint:
        check_checkpoint_file(args.checkpoint, 'CHECKPOINT')
    return build_runner(cfg)
