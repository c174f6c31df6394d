"""tools/train.py's --seed, --deterministic, --diff-rank-seed and
--auto-scale-lr on a config without ``randomness`` / ``auto_scale_lr`` keys,
and ``runner_type`` honoured by the train and test runner builders.

Each flag is checked on the Runner that ``build_train_runner`` returns (not
only on the config), so a flag written into a discarded copy of the config
fails here.
"""
import importlib.util
import os.path as osp

import pytest
import torch
from launch_utils import TOOLS, TOY_CONFIG, run, toy_env, train_cmd
from mmaction.registry import RUNNERS
from mmengine.runner import Runner

from hapvr_mm.apis import runner_builder


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'hapvr_{name}_tool',
                                                  osp.join(TOOLS, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@RUNNERS.register_module()
class FlagTestRunner(Runner):
    """A custom runner class selected by ``runner_type``."""


def _bare_config(tmp_path, extra: str = '') -> str:
    """The toy config with its ``randomness`` line removed (no
    ``auto_scale_lr`` either), plus ``extra`` lines."""
    text = open(TOY_CONFIG).read()
    lines = [
        line for line in text.splitlines()
        if not line.startswith(('randomness', 'auto_scale_lr'))
    ]
    path = tmp_path / 'bare_config.py'
    path.write_text('\n'.join(lines) + '\n' + extra)
    return str(path)


@pytest.fixture
def build(tmp_path):
    tool = _tool('train.py')

    def _build(*options, extra=''):
        config = _bare_config(tmp_path, extra)
        args = tool.parse_args(
            [config, '--work-dir',
             str(tmp_path / 'work'), *options])
        return runner_builder.build_train_runner(args)

    return _build


def test_bare_config_has_no_keys(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(_bare_config(tmp_path))
    assert 'randomness' not in cfg and 'auto_scale_lr' not in cfg


def test_seed(build):
    runner = build('--seed', '1234')
    assert runner.seed == 1234
    assert runner._randomness_cfg['seed'] == 1234


def test_no_seed_flag_gives_a_random_seed(build):
    # without the flag nothing is forced (mmengine draws a seed)
    runner = build()
    assert runner._randomness_cfg['seed'] is None


def test_deterministic(build):
    before = torch.are_deterministic_algorithms_enabled()
    try:
        runner = build('--seed', '1', '--deterministic')
        assert runner.deterministic is True
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = False


def test_diff_rank_seed(build, monkeypatch):
    runner = build('--seed', '7', '--diff-rank-seed')
    assert runner._randomness_cfg['diff_rank_seed'] is True
    # on rank 3 the seed mmengine sets differs by the rank
    import mmengine.runner.utils as runner_utils
    monkeypatch.setattr(runner_utils, 'get_rank', lambda: 3)
    assert runner_utils.set_random_seed(**runner._randomness_cfg) == 7 + 3


def test_auto_scale_lr(build):
    runner = build('--auto-scale-lr')
    # the config's batch size is the base: lr x number of processes
    assert runner.auto_scale_lr == dict(enable=True, base_batch_size=2)
    optim = runner.build_optim_wrapper(runner.optim_wrapper)
    runner._world_size = 4
    runner.scale_lr(optim, runner.auto_scale_lr)
    assert optim.optimizer.param_groups[0]['lr'] == pytest.approx(0.05 * 4)


def test_auto_scale_lr_keeps_a_given_base(build):
    runner = build(
        '--auto-scale-lr',
        extra='auto_scale_lr = dict(enable=False, base_batch_size=16)\n')
    assert runner.auto_scale_lr == dict(enable=True, base_batch_size=16)


def test_flags_off_leave_an_empty_config_alone(build):
    runner = build()
    assert not runner.auto_scale_lr
    assert runner._randomness_cfg == dict(seed=None)


def test_runner_type_train(build):
    runner = build(extra="runner_type = 'FlagTestRunner'\n")
    assert type(runner) is FlagTestRunner
    assert type(build()) is Runner


def test_runner_type_test(tmp_path):
    tool = _tool('test.py')
    config = _bare_config(
        tmp_path, "runner_type = 'FlagTestRunner'\n"
        "test_dataloader = train_dataloader\n"
        "test_cfg = dict(type='TestLoop')\n"
        "test_evaluator = dict(type='ToyNoMetric')\n")
    args = tool.parse_args([config, '--work-dir', str(tmp_path / 'w')])
    runner = runner_builder.build_test_runner(args)
    assert type(runner) is FlagTestRunner


def test_train_py_seed_on_bare_config(tmp_path):
    """End to end: the seed reaches the run's log."""
    config = _bare_config(tmp_path)
    res = run(
        train_cmd(
            str(tmp_path / 'w'),
            '--seed',
            '4321',
            '--cfg-options',
            'train_cfg.max_iters=1',
            config=config), toy_env())
    assert res.returncode == 0, res.stdout[-3000:]
    assert 'seed: 4321' in res.stdout
