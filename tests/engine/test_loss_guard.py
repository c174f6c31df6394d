"""LossGuardHook: a diverging run stops before saving anything non-finite.

The toy run (tests/fixtures/toy_launch, a checkpoint every 2 iterations)
gets its learning rate set to 1e30 from iteration 5 on: the loss is
infinite at iteration 6, whose checkpoint must not be written; the guard
stops ``tools/train.py`` with one ``error:`` line naming the iteration and
``iter_4.pth``, which ``--resume`` then continues from.
"""
import math
import os
import os.path as osp

import pytest
import torch
from launch_utils import (TOY_CONFIG, last_checkpoint, read_losses, run,
                          toy_env, train_cmd)

from hapvr_mm.compat import load_checkpoint_file
from hapvr_mm.engine.hooks import LossGuardHook
from hapvr_mm.utils import TrainingDivergedError

_BOOM_MODULE = '''
from mmaction.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class ToyLrBoomHook(Hook):
    """Sets every learning rate to ``lr`` from iteration ``at`` on."""

    priority = 'LOWEST'

    def __init__(self, at=4, lr=1e30):
        self.at, self.lr = at, lr

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter >= self.at:
            for group in runner.optim_wrapper.optimizer.param_groups:
                group['lr'] = self.lr
'''


def _config(tmp_path, boom: bool) -> str:
    (tmp_path / 'toy_boom.py').write_text(_BOOM_MODULE)
    hooks = "[dict(type='ToyKillHook')" + (
        ", dict(type='ToyLrBoomHook', at=4, lr=1e30)]" if boom else ']')
    path = tmp_path / ('boom.py' if boom else 'fixed.py')
    path.write_text(
        f'_base_ = [{TOY_CONFIG!r}]\n'
        "custom_imports = dict(imports=['hapvr_mm', 'toy_launch_modules', "
        "'toy_boom'], allow_failed_imports=False)\n"
        "default_hooks = dict(loss_guard=dict(type='LossGuardHook'))\n"
        f'custom_hooks = {hooks}\n')
    return str(path)


def test_nan_run_stops_keeps_finite_checkpoint_and_resumes(tmp_path):
    work = str(tmp_path / 'work')
    env = toy_env(str(tmp_path / 'loss'))
    env['PYTHONPATH'] = str(tmp_path) + os.pathsep + env['PYTHONPATH']
    res = run(train_cmd(work, config=_config(tmp_path, True)), env)
    assert res.returncode == 2, res.stdout[-3000:]
    errors = [ln for ln in res.stdout.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1, res.stdout[-3000:]
    assert 'Traceback' not in res.stdout
    assert 'diverged at iteration 6' in errors[0]
    assert osp.join(work, 'iter_4.pth') in errors[0]
    losses = read_losses(str(tmp_path / 'loss'))
    assert [r[0] for r in losses] == [0, 1, 2, 3, 4, 5]
    assert not math.isfinite(float.fromhex(losses[-1][1]))
    # nothing non-finite saved; the pointer names the last finite one
    assert last_checkpoint(work) == osp.join(work, 'iter_4.pth')
    names = sorted(n for n in os.listdir(work) if n.endswith('.pth'))
    assert names == ['iter_2.pth', 'iter_4.pth']
    for name in names:
        state = load_checkpoint_file(osp.join(work, name))['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values())
    # the fixed run resumes from iter_4 and finishes
    log = str(tmp_path / 'resumed')
    env = toy_env(log)
    env['PYTHONPATH'] = str(tmp_path) + os.pathsep + env['PYTHONPATH']
    res = run(
        train_cmd(work, '--resume', config=_config(tmp_path, False)), env)
    assert res.returncode == 0, res.stdout[-3000:]
    assert 'resumed epoch: 0, iter: 4' in res.stdout
    assert [r[0] for r in read_losses(log)] == [4, 5, 6, 7]
    assert last_checkpoint(work) == osp.join(work, 'iter_8.pth')


class _Runner:

    def __init__(self, work_dir, it=0):
        self.work_dir, self.iter = str(work_dir), it


def test_guard_rules(tmp_path):
    runner = _Runner(tmp_path)
    guard = LossGuardHook(explosion_factor=100, warmup=3, window=5)
    for i in range(5):
        runner.iter = i
        guard.after_train_iter(
            runner, i, outputs=dict(loss=torch.tensor(2.0 + i * 0.1)))
    # a loss 1000 x the median explodes; no checkpoint saved yet
    runner.iter = 5
    with pytest.raises(TrainingDivergedError, match='exploded') as err:
        guard.after_train_iter(runner, 5, outputs=dict(loss=2500.0))
    assert 'iteration 6' in str(err.value)
    assert 'no checkpoint was saved yet' in str(err.value)
    # any non-finite loss term stops, naming it
    (tmp_path / 'last_checkpoint').write_text('/w/iter_4.pth')
    with pytest.raises(TrainingDivergedError, match='loss_ap=nan') as err:
        LossGuardHook().after_train_iter(
            runner,
            0,
            outputs=dict(loss=torch.tensor(1.0), loss_ap=float('nan')))
    assert '/w/iter_4.pth' in str(err.value)
    # the defaults stop the demo at lr 1000 at its second iteration (loss
    # 12.9, then 4.6e11), long before it overflows to inf
    default = LossGuardHook()
    runner.iter = 0
    default.after_train_iter(runner, 0, outputs=dict(loss=12.9))
    runner.iter = 1
    with pytest.raises(TrainingDivergedError, match='iteration 2: loss'):
        default.after_train_iter(runner, 1, outputs=dict(loss=4.6e11))
    # explosion rule off: only non-finite values stop
    off = LossGuardHook(explosion_factor=None, warmup=1)
    for value in (1.0, 1e20, -3.0):
        off.after_train_iter(runner, 0, outputs=dict(loss=value))
    # non-loss outputs are ignored
    off.after_train_iter(runner, 0, outputs=dict(acc=float('nan')))


def test_non_finite_checkpoint_is_refused(tmp_path):
    guard = LossGuardHook()
    good = dict(state_dict=dict(w=torch.ones(3), step=torch.tensor(3)))
    guard.before_save_checkpoint(_Runner(tmp_path), good)
    bad = dict(state_dict=dict(w=torch.tensor([1.0, float('inf')])))
    with pytest.raises(TrainingDivergedError, match="'w'"):
        guard.before_save_checkpoint(_Runner(tmp_path), bad)
    LossGuardHook(
        check_checkpoint=False).before_save_checkpoint(_Runner(tmp_path), bad)
    with pytest.raises(ValueError, match='explosion_factor'):
        LossGuardHook(explosion_factor=0.5)


def test_default_runtime_enables_the_guard():
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for name in ('configs/hapvr_fivr.py', 'configs/demo/hapvr_demo.py'):
        cfg = Config.fromfile(osp.join(root, name))
        assert cfg.default_hooks.loss_guard.type == 'LossGuardHook'
        assert LossGuardHook.priority == 'ABOVE_NORMAL'
