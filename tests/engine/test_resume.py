"""A run SIGKILLed after its second checkpoint resumes exactly.

The toy run (tests/fixtures/toy_launch) trains 8 iterations with a
checkpoint every 2, AdamW, a linear lr warm-up, a shuffling sampler, dropout
and random noise from Python's and NumPy's generators. It is killed with
SIGKILL before iteration 5 (after ``iter_4.pth``), resumed with ``--resume``
(auto) and must then produce, bit for bit, the losses, samples and final
weights of an uninterrupted run. Without the restored random states the
losses differ (negative control), so the comparison has teeth.
"""
import os
import os.path as osp
import random
import shutil
import signal

import numpy as np
import pytest
import torch
from launch_utils import last_checkpoint, read_losses, run, toy_env, train_cmd

from hapvr_mm.compat import load_checkpoint_file
from hapvr_mm.engine.hooks.atomic_checkpoint_hook import (_CallBeforeNext,
                                                          get_random_states,
                                                          set_random_states)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Uninterrupted run, killed run, resumed run (work dirs, loss logs)."""
    root = tmp_path_factory.mktemp('resume')
    full, killed = str(root / 'full'), str(root / 'killed')
    res = run(train_cmd(full), toy_env(str(root / 'full_loss')))
    assert res.returncode == 0, res.stdout[-3000:]
    res = run(
        train_cmd(killed),
        toy_env(str(root / 'killed_loss'), TOY_KILL_AT_ITER='5'))
    killed_rc = res.returncode
    # keep a copy of the killed state for the negative control
    shutil.copytree(killed, str(root / 'killed_copy'))
    res = run(
        train_cmd(killed, '--resume'), toy_env(str(root / 'resumed_loss')))
    assert res.returncode == 0, res.stdout[-3000:]
    return dict(
        root=root,
        full=full,
        killed=killed,
        killed_rc=killed_rc,
        resume_out=res.stdout)


def test_killed_run_left_second_checkpoint(runs):
    assert runs['killed_rc'] == -signal.SIGKILL
    copy = str(runs['root'] / 'killed_copy')
    assert last_checkpoint(copy) == osp.join(runs['killed'], 'iter_4.pth')
    assert sorted(f for f in os.listdir(copy)
                  if f.endswith('.pth')) == ['iter_2.pth', 'iter_4.pth']
    assert not [f for f in os.listdir(copy) if f.endswith('.tmp')]
    # iterations 0..4 ran before the kill
    assert [r[0] for r in read_losses(str(runs['root'] / 'killed_loss'))
            ] == [0, 1, 2, 3, 4]


def test_resume_continues_from_iteration_4(runs):
    out = runs['resume_out']
    assert 'Auto resumed from the latest checkpoint' in out
    assert 'resumed epoch: 0, iter: 4' in out
    resumed = read_losses(str(runs['root'] / 'resumed_loss'))
    assert [r[0] for r in resumed] == [4, 5, 6, 7]


def test_resumed_losses_equal_uninterrupted(runs):
    full = read_losses(str(runs['root'] / 'full_loss'))
    killed = read_losses(str(runs['root'] / 'killed_loss'))
    resumed = read_losses(str(runs['root'] / 'resumed_loss'))
    assert killed == full[:5]
    # same samples (sampler position) and bit-identical losses
    assert resumed == full[4:]


def test_resumed_weights_optimizer_scheduler_equal(runs):
    a = load_checkpoint_file(osp.join(runs['full'], 'iter_8.pth'))
    b = load_checkpoint_file(osp.join(runs['killed'], 'iter_8.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == 8
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    sa, sb = a['optimizer']['state'], b['optimizer']['state']
    assert sa.keys() == sb.keys() and len(sa) > 0
    for pid in sa:
        for name in ('exp_avg', 'exp_avg_sq', 'step'):
            assert torch.equal(sa[pid][name], sb[pid][name]), (pid, name)
    assert a['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.05)
    assert a['param_schedulers'] == b['param_schedulers']
    assert a['param_schedulers'][0]['_global_step'] == 8
    for key in ('python', 'numpy', 'torch'):
        assert key in a['meta']['random_states'][0]


def test_without_random_states_losses_differ(runs):
    """Negative control: the same resume without restored random states."""
    work = str(runs['root'] / 'killed_copy')
    # the pointer names the original directory: point it at the copy
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'iter_4.pth'))
    log = str(runs['root'] / 'control_loss')
    res = run(
        train_cmd(work, '--resume', '--cfg-options',
                  'default_hooks.checkpoint.save_random_states=False'),
        toy_env(log))
    assert res.returncode == 0, res.stdout[-3000:]
    full = read_losses(str(runs['root'] / 'full_loss'))
    control = read_losses(log)
    assert [r[0] for r in control] == [4, 5, 6, 7]
    # the sampler position is restored by mmengine either way ...
    assert [r[2] for r in control] == [r[2] for r in full[4:]]
    # ... but the noise and dropout differ without the random states
    assert [r[1] for r in control] != [r[1] for r in full[4:]]


def test_random_states_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached gaussian
    states = get_random_states()
    expected = (random.random(), np.random.standard_normal(3).tolist(),
                torch.rand(3).tolist())
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    set_random_states(states)
    got = (random.random(), np.random.standard_normal(3).tolist(),
           torch.rand(3).tolist())
    assert got == expected
    with pytest.raises(ValueError, match='missing'):
        set_random_states({'python': states['python']})


def test_call_before_next_runs_once_after_skip():
    calls = []

    class Owner:
        pass

    owner = Owner()
    owner.it = iter(range(10))
    proxy = _CallBeforeNext(owner.it, 3, lambda: calls.append(len(calls)),
                            owner, 'it')
    owner.it, original = proxy, owner.it
    assert [next(proxy) for _ in range(3)] == [0, 1, 2]
    assert calls == []
    assert next(proxy) == 3
    assert calls == [0]
    assert owner.it is original  # the proxy took itself out
    assert next(proxy) == 4 and calls == [0]
