"""The paper schedule: warm-up, then a cosine on the absolute iteration."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import hapvr_mm  # noqa: F401 (registers the scheduler)
from hapvr_mm.engine.schedulers import absolute_cosine_lr

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def paper_lrs(num_iters):
    """The lr of iterations 0..num_iters-1 under the paper config."""
    from mmaction.registry import PARAM_SCHEDULERS
    init_default_scope('mmaction')
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'schedules', 'adamw_30k.py'))
    model = torch.nn.Linear(2, 2)
    wrapper = build_optim_wrapper(
        model,
        dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer))
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper))
        for s in cfg.param_scheduler
    ]
    lrs = []
    for _ in range(num_iters):
        lrs.append(wrapper.optimizer.param_groups[0]['lr'])
        wrapper.step()
        for s in schedulers:
            s.step()
    return cfg.base_lr, lrs


def authors_lr(t, lr=4e-5):
    """docs/method.md section 1, written out."""
    if t < 1000:
        return 0.01 * lr + t * 0.99 * lr / 1000
    return 0.1 * lr + 0.45 * lr * (1 + math.cos(math.pi * t / 30000))


def test_paper_schedule_matches_the_authors():
    base, lrs = paper_lrs(30000)
    for t in (0, 1, 500, 999, 1000, 1001, 15000, 29999):
        assert lrs[t] == pytest.approx(authors_lr(t), rel=1e-9), t
    assert lrs[0] == pytest.approx(0.01 * base)
    # absolute phase: at t=1000 already pi/30 into the cosine (not 1.0 lr)
    assert lrs[1000] == pytest.approx(
        base * (0.1 + 0.45 *
                (1 + math.cos(math.pi / 30)))) and lrs[1000] < 0.998 * base
    assert lrs[15000] == pytest.approx(0.55 * base)
    # at t = 30000 the formula gives the floor 0.1 lr (the run ends at 29999)
    assert absolute_cosine_lr(30000, base, 0.1 * base,
                              30000) == pytest.approx(0.1 * base)
    worst = max(abs(lrs[t] - authors_lr(t)) for t in range(30000))
    assert worst < 1e-9 * base


def test_scheduler_validation():
    from hapvr_mm.engine.schedulers import AbsoluteCosineAnnealingLR
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
    with pytest.raises(ValueError, match='not both'):
        AbsoluteCosineAnnealingLR(opt, eta_min=0.1, eta_min_ratio=0.1, end=10)
    with pytest.raises(ValueError, match='T_max'):
        AbsoluteCosineAnnealingLR(opt)
    sched = AbsoluteCosineAnnealingLR(
        opt, eta_min_ratio=0.5, end=4, by_epoch=False)
    assert opt.param_groups[0]['lr'] == pytest.approx(1.0)
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]['lr'] == pytest.approx(
        0.5 + 0.25 * (1 + math.cos(math.pi * 2 / 4)))
