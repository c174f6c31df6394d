"""``--amp`` of tools/train.py: fp16 with a dynamic loss scale or bf16 on
CUDA, refused on CPU with a clear message; an ``AmpOptimWrapper`` config on
a CPU-only machine falls back to float32.

The CUDA training test runs only where a GPU is present.
"""
import importlib.util
import os.path as osp

import pytest
import torch
from launch_utils import TOOLS, TOY_CONFIG, run, toy_env, train_cmd

from hapvr_mm.apis import ConfigError, runner_builder
from hapvr_mm.compat import load_checkpoint_file


def _train_tool():
    spec = importlib.util.spec_from_file_location('hapvr_train_tool',
                                                  osp.join(TOOLS, 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def build_cfg(monkeypatch, tmp_path):
    """``build_train_runner`` that returns the final config, not a Runner."""
    tool = _train_tool()
    monkeypatch.setattr(runner_builder.Runner, 'from_cfg',
                        staticmethod(lambda cfg: cfg))

    def build(*options, cuda: bool):
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
        args = tool.parse_args(
            [TOY_CONFIG, '--work-dir',
             str(tmp_path), *options])
        return runner_builder.build_train_runner(args)

    return build


def test_amp_refused_on_cpu(build_cfg):
    with pytest.raises(ConfigError, match='--amp needs a CUDA device'):
        build_cfg('--amp', cuda=False)
    with pytest.raises(ConfigError, match='--amp needs a CUDA device'):
        build_cfg('--amp', '--amp-dtype', 'bfloat16', cuda=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only host')
def test_amp_refused_by_train_py_on_cpu(tmp_path):
    res = run(train_cmd(str(tmp_path / 'w'), '--amp'), toy_env())
    assert res.returncode != 0
    assert '--amp needs a CUDA device' in res.stdout
    assert 'Iter(train)' not in res.stdout


def test_amp_fp16_uses_dynamic_loss_scale(build_cfg):
    cfg = build_cfg('--amp', cuda=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'  # untouched


def test_amp_bf16_option(build_cfg):
    cfg = build_cfg('--amp', '--amp-dtype', 'bfloat16', cuda=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'


def test_no_amp_keeps_float32(build_cfg):
    cfg = build_cfg(cuda=True)
    assert cfg.optim_wrapper.type == 'OptimWrapper'


def test_amp_config_falls_back_on_cpu(build_cfg, monkeypatch):
    logged = []
    monkeypatch.setattr(runner_builder, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw)))
    cfg = build_cfg(
        '--cfg-options',
        'optim_wrapper.type=AmpOptimWrapper',
        'optim_wrapper.dtype=float16',
        'optim_wrapper.loss_scale=dynamic',
        cuda=False)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper
    assert 'loss_scale' not in cfg.optim_wrapper
    # said through mmengine's logger, as a warning
    assert any('no CUDA device' in msg and kw.get('level') == 30
               for msg, kw in logged), logged


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_amp_trains_on_cuda(tmp_path, dtype):
    work = str(tmp_path / dtype)
    res = run(
        train_cmd(work, '--amp', '--amp-dtype', dtype, '--cfg-options',
                  'train_cfg.max_iters=4'), toy_env())
    assert res.returncode == 0, res.stdout[-3000:]
    ckpt = load_checkpoint_file(osp.join(work, 'iter_4.pth'))
    assert 'loss_scaler' in ckpt['optimizer']
    if dtype == 'float16':
        assert ckpt['optimizer']['loss_scaler']['scale'] > 0
