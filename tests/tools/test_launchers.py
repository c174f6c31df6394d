"""tools/dist_train.sh, slurm_train.sh and slurm_test.sh.

The command lines are checked against stand-in ``torchrun``/``srun``
executables that print their arguments; ``dist_train.sh`` is also run for
real with 2 CPU processes (gloo): both ranks train on disjoint shards, the
checkpoint holds both ranks' random states, and a run whose rank 0 is
SIGKILLed after the second checkpoint resumes (``--resume``) with exactly
the losses of the uninterrupted run on every rank.
"""
import os
import os.path as osp
import stat

import pytest
import torch
from launch_utils import (TOOLS, TOY_CONFIG, free_port, last_checkpoint,
                          read_losses, run, toy_env)

from hapvr_mm.compat import load_checkpoint_file

DIST_TRAIN = osp.join(TOOLS, 'dist_train.sh')
SLURM_TRAIN = osp.join(TOOLS, 'slurm_train.sh')
SLURM_TEST = osp.join(TOOLS, 'slurm_test.sh')


def _fake_bin(tmp_path, name: str) -> str:
    """An executable ``name`` that prints its argv and some env vars."""
    bindir = tmp_path / 'bin'
    bindir.mkdir(exist_ok=True)
    path = bindir / name
    path.write_text('#!/bin/sh\n'
                    'echo "MASTER_PORT=${MASTER_PORT:-unset}"\n'
                    'echo "PYTHONPATH=$PYTHONPATH"\n'
                    'for a in "$@"; do echo "ARG $a"; done\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def _fake_run(tmp_path, name, cmd, **env_extra):
    env = toy_env(**env_extra)
    env['PATH'] = _fake_bin(tmp_path, name) + os.pathsep + env['PATH']
    res = run(['bash', *cmd], env)
    args = [
        line[4:] for line in res.stdout.splitlines() if line.startswith('ARG ')
    ]
    info = dict(
        line.split('=', 1) for line in res.stdout.splitlines()
        if line.startswith(('MASTER_PORT=', 'PYTHONPATH=')))
    return res, args, info


@pytest.mark.parametrize('script,nargs', [(DIST_TRAIN, 2), (SLURM_TRAIN, 3),
                                          (SLURM_TEST, 4)])
def test_usage_errors(script, nargs):
    res = run(['bash', script] + ['x'] * (nargs - 1), toy_env())
    assert res.returncode == 2
    assert 'usage:' in res.stdout


def test_dist_train_command_line(tmp_path):
    res, args, info = _fake_run(
        tmp_path,
        'torchrun', [DIST_TRAIN, 'cfg.py', '4', '--resume', '--amp'],
        NNODES='2',
        NODE_RANK='1',
        MASTER_ADDR='10.0.0.1',
        PORT='12345')
    assert res.returncode == 0, res.stdout
    assert args == [
        '--nnodes=2', '--node_rank=1', '--master_addr=10.0.0.1',
        '--master_port=12345', '--nproc_per_node=4',
        osp.join(TOOLS, 'train.py'), 'cfg.py', '--launcher', 'pytorch',
        '--resume', '--amp'
    ]
    assert info['PYTHONPATH'].split(':')[0] == osp.dirname(TOOLS)
    # mmaction2's defaults
    res, args, _ = _fake_run(tmp_path, 'torchrun', [DIST_TRAIN, 'cfg.py', '2'])
    assert args[:5] == [
        '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
        '--master_port=29500', '--nproc_per_node=2'
    ]


def test_slurm_train_command_line_gpus(tmp_path):
    res, args, info = _fake_run(
        tmp_path,
        'srun', [SLURM_TRAIN, 'part', 'job', 'cfg.py', 'work', '--amp'],
        GPUS='16',
        GPUS_PER_NODE='8',
        CPUS_PER_TASK='4',
        SRUN_ARGS='--quotatype=auto --time=10',
        PYTHON='py')
    assert res.returncode == 0, res.stdout
    assert args == [
        '-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--time=10', 'py', '-u',
        osp.join(TOOLS, 'train.py'), 'cfg.py', '--work-dir', 'work',
        '--launcher', 'slurm', '--amp'
    ]
    assert info['MASTER_PORT'] == 'unset'


def test_slurm_train_zero_gpus_and_optional_work_dir(tmp_path):
    res, args, info = _fake_run(
        tmp_path,
        'srun', [SLURM_TRAIN, 'part', 'job', 'cfg.py', '--resume'],
        GPUS='2',
        GPUS_PER_NODE='0',
        CPUS_PER_TASK='1',
        PORT='23456',
        PYTHON='py')
    assert res.returncode == 0, res.stdout
    assert not [a for a in args if a.startswith('--gres')]
    assert '--ntasks=2' in args and '--ntasks-per-node=2' in args
    assert '--work-dir' not in args
    assert args[-4:] == ['cfg.py', '--launcher', 'slurm', '--resume']
    assert info['MASTER_PORT'] == '23456'
    res, args, _ = _fake_run(
        tmp_path,
        'srun', [SLURM_TRAIN, 'part', 'job', 'cfg.py'],
        GPUS='4',
        GPUS_PER_NODE='0',
        TASKS_PER_NODE='2')
    assert '--ntasks=4' in args and '--ntasks-per-node=2' in args


def test_slurm_test_command_line(tmp_path):
    res, args, _ = _fake_run(
        tmp_path,
        'srun',
        [SLURM_TEST, 'part', 'job', 'cfg.py', 'ckpt.pth', '--dump', 'x.pkl'],
        GPUS='2',
        GPUS_PER_NODE='0',
        CPUS_PER_TASK='1',
        PYTHON='py')
    assert res.returncode == 0, res.stdout
    assert not [a for a in args if a.startswith('--gres')]
    assert args[-7:] == [
        osp.join(TOOLS, 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher',
        'slurm', '--dump', 'x.pkl'
    ]


@pytest.fixture(scope='module')
def dist_runs(tmp_path_factory):
    """2-process CPU runs: uninterrupted, and killed (rank 0) + resumed."""
    root = tmp_path_factory.mktemp('dist')
    out = {}
    for name, extra in (('full', {}), ('killed', dict(TOY_KILL_AT_ITER='5'))):
        work = str(root / name)
        res = run(['bash', DIST_TRAIN, TOY_CONFIG, '2', '--work-dir', work],
                  toy_env(
                      str(root / f'{name}_loss'),
                      PORT=str(free_port()),
                      **extra),
                  timeout=180)
        out[name] = (work, res)
    work = out['killed'][0]
    out['pointer_after_kill'] = last_checkpoint(work)
    res = run(
        ['bash', DIST_TRAIN, TOY_CONFIG, '2', '--work-dir', work, '--resume'],
        toy_env(str(root / 'resumed_loss'), PORT=str(free_port())),
        timeout=180)
    out['resumed'] = (work, res)
    out['root'] = root
    return out


def test_dist_train_two_cpu_processes(dist_runs):
    work, res = dist_runs['full']
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'launcher: pytorch' in res.stdout
    assert last_checkpoint(work) == osp.join(work, 'iter_8.pth')
    root = str(dist_runs['root'] / 'full_loss')
    r0, r1 = read_losses(root, 0), read_losses(root, 1)
    assert [r[0] for r in r0] == [r[0] for r in r1] == list(range(8))
    # the first epoch is split between the ranks (10 samples, 3 iters)
    first0 = {int(i) for r in r0[:3] for i in r[2].split(',')}
    first1 = {int(i) for r in r1[:3] for i in r[2].split(',')}
    assert not first0 & first1 and first0 | first1 == set(range(10))
    ckpt = load_checkpoint_file(osp.join(work, 'iter_8.pth'))
    states = ckpt['meta']['random_states']
    assert len(states) == 2
    assert not torch.equal(states[0]['torch'], states[1]['torch'])


def test_dist_train_resume_after_sigkill(dist_runs):
    work, res = dist_runs['killed']
    assert res.returncode != 0
    assert dist_runs['pointer_after_kill'] == osp.join(work, 'iter_4.pth')
    _, res = dist_runs['resumed']
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'resumed epoch: 0, iter: 4' in res.stdout
    root = dist_runs['root']
    for rank in (0, 1):
        full = read_losses(str(root / 'full_loss'), rank)
        resumed = read_losses(str(root / 'resumed_loss'), rank)
        assert resumed == full[4:], rank


def test_slurm_scripts_share_one_srun_command():
    helper = osp.join(TOOLS, 'slurm', 'srun_tasks.sh')
    texts = {p: open(p).read() for p in (SLURM_TRAIN, SLURM_TEST, helper)}
    for script in (SLURM_TRAIN, SLURM_TEST):
        assert 'exec srun' not in texts[script]
        assert 'slurm/srun_tasks.sh' in texts[script]
    assert texts[helper].count('exec srun') == 1
