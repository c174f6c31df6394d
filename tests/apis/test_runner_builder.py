"""``load_config`` only reads the config: the process group is started where
the runner is built."""
import argparse

import torch
import torch.distributed as torch_dist
from launch_utils import TOY_CONFIG

from hapvr_mm.apis import runner_builder


def test_load_config_starts_no_process_group(monkeypatch, tmp_path):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    args = argparse.Namespace(
        config=TOY_CONFIG,
        cfg_options=None,
        work_dir=str(tmp_path),
        launcher='pytorch')
    # without the launcher's variables a process group could not start:
    # reading the config must not try
    cfg = runner_builder.load_config(args)
    assert cfg.launcher == 'pytorch'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert not (torch_dist.is_available() and torch_dist.is_initialized())


def test_build_runner_starts_the_group(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(runner_builder, 'init_dist_cpu', calls.append)
    monkeypatch.setattr(runner_builder.Runner, 'from_cfg',
                        staticmethod(lambda cfg: 'runner'))
    args = argparse.Namespace(
        config=TOY_CONFIG,
        cfg_options=None,
        work_dir=str(tmp_path),
        launcher='pytorch')
    cfg = runner_builder.load_config(args)
    assert calls == []
    assert runner_builder.build_runner(cfg) == 'runner'
    assert calls == ['pytorch']
