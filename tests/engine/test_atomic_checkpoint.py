"""Checkpoints are written atomically and load with weights-only pickling.

The crash tests kill a real training process (SIGKILL) at the moment the
third checkpoint's bytes are complete in the temporary file but not yet
renamed: the last complete checkpoint and its pointer must survive, even
with ``max_keep_ckpts=1`` (mmengine's own hook deletes the old checkpoint
before writing the new one), and ``--resume`` must work.
"""
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys

import pytest
import torch
from launch_utils import (REPO, TOY_CONFIG, last_checkpoint, read_losses, run,
                          toy_env, train_cmd)
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import _load_checkpoint

from hapvr_mm.compat import load_checkpoint_file
from hapvr_mm.engine.hooks import atomic_checkpoint_hook as ach
from hapvr_mm.engine.hooks.atomic_checkpoint_hook import (ATOMIC_BACKEND,
                                                          AtomicCheckpointHook,
                                                          AtomicLocalBackend,
                                                          atomic_write_bytes)

# Trains the toy config in-process and SIGKILLs itself inside os.replace
# when the checkpoint named by argv[3] is about to take its final name.
_CRASH_SCRIPT = r'''
import os, signal, sys
sys.path.insert(0, {repo!r})
import hapvr_mm
from mmengine.config import Config
from mmengine.runner import Runner
from hapvr_mm.engine.hooks import atomic_checkpoint_hook as ach
cfg = Config.fromfile({config!r})
cfg.work_dir = sys.argv[1]
cfg.default_hooks.checkpoint.max_keep_ckpts = int(sys.argv[2])
target = sys.argv[3]
real_replace = os.replace
def replace(src, dst):
    if os.path.basename(dst) == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
ach.os.replace = replace
Runner.from_cfg(cfg).train()
'''


def _crash_run(work_dir: str, max_keep: int, target: str):
    script = _CRASH_SCRIPT.format(repo=REPO, config=TOY_CONFIG)
    return subprocess.run(
        [sys.executable, '-c', script, work_dir,
         str(max_keep), target],
        cwd=REPO,
        env=toy_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120)


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / 'sub' / 'f.bin'
    atomic_write_bytes(b'old content', path)
    assert path.read_bytes() == b'old content'
    atomic_write_bytes(b'new', path)
    assert path.read_bytes() == b'new'
    assert os.listdir(path.parent) == ['f.bin']
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
    with pytest.raises(ValueError, match='expects bytes'):
        atomic_write_bytes('text', path)


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / 'f.bin'
    atomic_write_bytes(b'complete', path)

    def broken_fsync(fd):
        raise OSError('disk full')

    monkeypatch.setattr(ach.os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='disk full'):
        atomic_write_bytes(b'x' * 100000, path)
    assert path.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['f.bin']  # no temporary file left


def test_backend_is_registered_and_atomic(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    target = str(tmp_path / 'a.txt')
    backend.put_text('hello', target)
    assert backend.get_text(target) == 'hello'
    backend.put(b'bytes', target)
    assert backend.get(target) == b'bytes'


def test_hook_selects_atomic_backend_for_local_dirs():
    assert AtomicCheckpointHook(interval=1).backend_args == dict(
        backend=ATOMIC_BACKEND)
    assert AtomicCheckpointHook(
        interval=1,
        out_dir='/tmp/x').backend_args == dict(backend=ATOMIC_BACKEND)
    # remote stores and explicit choices are left alone
    assert AtomicCheckpointHook(
        interval=1, out_dir='s3://bucket/x').backend_args is None
    assert AtomicCheckpointHook(
        interval=1, backend_args=dict(backend='local')).backend_args == dict(
            backend='local')


@pytest.mark.parametrize('max_keep', [1, 2])
def test_crash_while_saving_keeps_latest_and_resumes(tmp_path, max_keep):
    work = str(tmp_path / 'work')
    res = _crash_run(work, max_keep, 'iter_6.pth')
    assert res.returncode == -signal.SIGKILL, res.stdout[-3000:]
    names = sorted(os.listdir(work))
    # the new checkpoint exists only as a complete temporary file
    tmp = [n for n in names if n.startswith('.iter_6.pth.')]
    assert len(tmp) == 1 and tmp[0].endswith('.tmp'), names
    assert 'iter_6.pth' not in names
    # the previous checkpoint and its pointer survive, even with max_keep=1
    assert 'iter_4.pth' in names
    assert last_checkpoint(work) == osp.join(work, 'iter_4.pth')
    ckpt = load_checkpoint_file(osp.join(work, 'iter_4.pth'))
    assert ckpt['meta']['iter'] == 4
    if max_keep == 2:
        assert 'iter_2.pth' in names
        return
    assert 'iter_2.pth' not in names  # pruned after the pointer moved on
    # resume: picks iter_4, removes the stale temporary file, finishes
    log = str(tmp_path / 'loss')
    res = run(
        train_cmd(work, '--resume', '--cfg-options',
                  'default_hooks.checkpoint.max_keep_ckpts=1'), toy_env(log))
    assert res.returncode == 0, res.stdout[-3000:]
    assert 'resumed epoch: 0, iter: 4' in res.stdout
    assert [r[0] for r in read_losses(log)] == [4, 5, 6, 7]
    names = sorted(os.listdir(work))
    assert not [n for n in names if n.endswith('.tmp')], names
    assert [n for n in names if n.endswith('.pth')] == ['iter_8.pth']
    assert last_checkpoint(work) == osp.join(work, 'iter_8.pth')


def test_checkpoint_loads_weights_only_with_exact_allow_list(tmp_path):
    work = str(tmp_path / 'work')
    res = run(
        train_cmd(work, '--cfg-options', 'train_cfg.max_iters=2'), toy_env())
    assert res.returncode == 0, res.stdout[-3000:]
    path = osp.join(work, 'iter_2.pth')
    ckpt = load_checkpoint_file(path)  # hapvr_mm's allow-list
    states = ckpt['meta']['random_states']
    assert len(states) == 1 and set(
        states[0]) == {'python', 'numpy', 'torch', 'cuda'}
    assert states[0]['numpy']['keys'].dtype == torch.int64
    assert 'message_hub' in ckpt and 'optimizer' in ckpt
    # mmengine's own loader (used by --resume / load_from) agrees
    assert _load_checkpoint(path)['meta']['iter'] == 2
    # anything outside the allow-list is still refused
    bad = dict(ckpt, extra=AtomicCheckpointHook)
    torch.save(bad, str(tmp_path / 'bad.pth'))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint_file(str(tmp_path / 'bad.pth'))
