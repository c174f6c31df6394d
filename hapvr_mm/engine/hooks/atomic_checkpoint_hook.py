"""Crash-safe checkpoints that resume exactly (iteration, optimizer, lr
scheduler, random states, data position).

mmengine's :class:`~mmengine.hooks.CheckpointHook` writes ``iter_N.pth`` by
opening the final path and streaming into it, then overwrites the
``last_checkpoint`` pointer in place, and deletes the oldest checkpoint
*before* saving the new one. A job killed at the wrong moment can therefore
leave a truncated ``latest`` checkpoint, an empty pointer, or a pointer to a
deleted file, and ``--resume`` then fails.

:class:`AtomicCheckpointHook` keeps every option of ``CheckpointHook`` and
changes three things:

* checkpoint files go through the ``atomic_local`` file backend
  (:class:`AtomicLocalBackend`): bytes are written to a hidden temporary file
  in the same directory, flushed, ``fsync``-ed and moved over the final name
  with :func:`os.replace`, so a reader sees the old file or the complete new
  one, never a prefix;
* the ``last_checkpoint`` pointer is replaced atomically too, and outdated
  checkpoints (``max_keep_ckpts``) are deleted only after the new checkpoint
  and the pointer are in place;
* the random states of every rank (Python, NumPy, torch CPU and the current
  CUDA device) are stored in ``checkpoint['meta']['random_states']`` and
  restored on resume just before the first batch after the skipped ones is
  fetched, so that a resumed deterministic run continues with the losses of
  an uninterrupted one. Validation inside training is made neutral to the
  random streams (they are saved before and restored after it) so that it
  cannot make the two runs differ.

Everything in the checkpoint stays loadable with ``torch.load(...,
weights_only=True)`` and the allow-list of :mod:`hapvr_mm.compat`: random
states are stored as tensors, ints, floats and strings only.

Use it in place of ``CheckpointHook``::

    default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook',
                                         interval=1000, by_epoch=False))
"""
import glob
import logging
import os
import os.path as osp
import random
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import torch
from mmaction.registry import HOOKS
from mmengine.dist import (all_gather_object, get_rank, get_world_size,
                           is_main_process)
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from ...utils.errors import disk_full_error

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write_bytes',
    'get_random_states', 'set_random_states', 'ATOMIC_BACKEND',
    'register_atomic_backend'
]

#: name of the file backend registered by this module
ATOMIC_BACKEND = 'atomic_local'
_TMP_SUFFIX = '.tmp'


def _fsync_dir(dirname: str) -> None:
    """Make a rename in ``dirname`` durable (best effort, POSIX only)."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, filepath: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``filepath`` so that it is complete or untouched.

    The bytes go to a hidden temporary file ``.<name>.<random>.tmp`` in the
    target directory, which is flushed, ``fsync``-ed and then renamed over
    ``filepath`` with :func:`os.replace` (atomic on POSIX file systems). If
    anything fails the temporary file is removed and the old ``filepath``,
    if any, is left as it was.
    A full disk (``ENOSPC`` / ``EDQUOT``) raises
    :class:`~hapvr_mm.utils.DiskFullError` naming the path, the bytes needed
    and that rerunning resumes.

    Args:
        data (bytes): the file content.
        filepath (str | PathLike): the destination; its directory is created
            when missing.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f'atomic_write_bytes expects bytes, got '
                         f'{type(data).__name__} for {filepath}')
    filepath = os.fspath(filepath)
    dirname = osp.dirname(osp.abspath(filepath))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        prefix=f'.{osp.basename(filepath)}.', suffix=_TMP_SUFFIX, dir=dirname)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the usual umask-based mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, filepath)
    except BaseException as err:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        full = disk_full_error(
            err, filepath, len(data),
            'checkpoint' if filepath.endswith('.pth') else 'file')
        if full is not None:  # one clear line instead of a traceback
            raise full from err
        raise
    _fsync_dir(dirname)


class AtomicLocalBackend(LocalBackend):
    """Local file backend whose writes are atomic (temp file + rename).

    Registered in mmengine's file backends as ``'atomic_local'``; select it
    with ``backend_args=dict(backend='atomic_local')``. Reading, listing and
    removing behave exactly as :class:`mmengine.fileio.LocalBackend`.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write bytes atomically (see :func:`atomic_write_bytes`).

        Args:
            obj (bytes): data to be written.
            filepath (str | PathLike): destination path.
        """
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write text atomically (see :func:`atomic_write_bytes`).

        Args:
            obj (str): text to be written.
            filepath (str | PathLike): destination path.
            encoding (str): text encoding. Defaults to ``'utf-8'``.
        """
        atomic_write_bytes(obj.encode(encoding), filepath)


def register_atomic_backend() -> None:
    """Register :class:`AtomicLocalBackend` as ``'atomic_local'`` once.

    Never overrides another registration: a second import of this module
    (for example after :func:`importlib.reload`) finds its own class under
    the name and leaves it; a different class under the name is an error.

    Raises:
        KeyError: Another file backend already uses the name.
    """
    from mmengine.fileio.backends import registry_utils
    current = registry_utils.backends.get(ATOMIC_BACKEND)
    if current is None:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend)
        return
    same = (current.__module__,
            current.__qualname__) == (AtomicLocalBackend.__module__,
                                      AtomicLocalBackend.__qualname__)
    if not same:
        raise KeyError(
            f'file backend {ATOMIC_BACKEND!r} is already registered by '
            f'{current.__module__}.{current.__qualname__}; '
            'AtomicCheckpointHook needs it for its own backend')


register_atomic_backend()


def get_random_states() -> Dict[str, Any]:
    """Snapshot the random generators of this process.

    Returns:
        dict: ``python`` (the tuple of :func:`random.getstate`), ``numpy``
        (dict of the legacy global ``RandomState``: ``kind``, ``keys`` as an
        int64 tensor of 624 words, ``pos``, ``has_gauss``,
        ``cached_gaussian``), ``torch`` (uint8 tensor) and ``cuda`` (uint8
        tensor of the current device, or None without CUDA). Only tensors and
        Python scalars, so the result survives weights-only unpickling.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state()
    return dict(
        python=random.getstate(),
        numpy=dict(
            kind=str(kind),
            keys=torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        torch=torch.get_rng_state(),
        cuda=cuda)


def set_random_states(states: Dict[str, Any]) -> None:
    """Restore the generators saved by :func:`get_random_states`.

    Args:
        states (dict): the dict returned by :func:`get_random_states`.
    """
    missing = {'python', 'numpy', 'torch'} - set(states)
    if missing:
        raise ValueError(f'random states need the keys python, numpy and '
                         f'torch; missing {sorted(missing)}')
    py = states['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = states['numpy']
    keys = npy['keys']
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys
    np.random.set_state(
        (npy['kind'], np.asarray(keys, dtype=np.uint32), int(npy['pos']),
         int(npy['has_gauss']), float(npy['cached_gaussian'])))
    torch.set_rng_state(states['torch'])
    if states.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(states['cuda'])


class _CallBeforeNext:
    """Iterator proxy that calls ``callback`` before its ``skip + 1``-th item.

    Installed over ``IterBasedTrainLoop.dataloader_iterator`` when resuming:
    the loop first draws ``skip`` batches to move the sampler (and the data
    workers) to where the interrupted run was, then draws the next batch to
    train on. The callback restores the random states between the two, and
    the proxy puts the original iterator back on the loop.
    """

    def __init__(self, iterator: Iterator, skip: int,
                 callback: Callable[[], None], owner: Any, attr: str) -> None:
        self._iterator = iterator
        self._skip = skip
        self._callback: Optional[Callable[[], None]] = callback
        self._owner = owner
        self._attr = attr
        self._count = 0

    def __iter__(self) -> '_CallBeforeNext':
        return self

    def __next__(self) -> Any:
        if self._callback is not None and self._count >= self._skip:
            callback, self._callback = self._callback, None
            setattr(self._owner, self._attr, self._iterator)
            callback()
        self._count += 1
        return next(self._iterator)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iterator, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic files and exact resumption.

    Args:
        save_random_states (bool): store every rank's random states in the
            checkpoint and restore them on resume. Defaults to True.
        **kwargs: every argument of :class:`mmengine.hooks.CheckpointHook`
            (``interval``, ``by_epoch``, ``max_keep_ckpts``, ``save_last``,
            ``out_dir``, ``backend_args``, ...). When ``backend_args`` is not
            given and ``out_dir`` is local, the ``atomic_local`` backend is
            used; an explicit ``backend_args`` (e.g. a remote store) is kept
            as given.
    """

    def __init__(self, save_random_states: bool = True, **kwargs) -> None:
        out_dir = kwargs.get('out_dir')
        local = out_dir is None or '://' not in str(out_dir)
        if kwargs.get('backend_args') is None and \
                kwargs.get('file_client_args') is None and local:
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(**kwargs)
        self.save_random_states = bool(save_random_states)
        self._resumed_states: Optional[Dict[str, Any]] = None
        self._val_states: Optional[Dict[str, Any]] = None

    # ---------------------------------------------------------------- save
    def before_train(self, runner) -> None:
        """Remove temporary files of an interrupted save, then set up."""
        super().before_train(runner)
        if not is_main_process():
            return
        dirs = {runner.work_dir}
        if self.out_dir and '://' not in str(self.out_dir):
            dirs.add(self.out_dir)
        for dirname in dirs:
            for path in glob.glob(osp.join(dirname, f'.*{_TMP_SUFFIX}')):
                os.remove(path)
                runner.logger.warning(
                    f'removed {path}, left by a save that was interrupted')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save ``step``'s checkpoint, then the pointer, then prune.

        Args:
            runner (Runner): the runner.
            step (int): epoch or iteration number used in the file name.
            meta (dict): meta information stored in the checkpoint.
        """
        meta = dict(meta)
        if self.save_random_states:
            states = all_gather_object(get_random_states())
            if is_main_process():
                meta['random_states'] = states

        outdated: List[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write_bytes(
            str(self.last_ckpt).encode('utf-8'),
            osp.join(runner.work_dir, 'last_checkpoint'))
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if path == self.last_ckpt:
                continue
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

    # ---------------------------------------------------------------- load
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep this rank's saved random states for :meth:`before_train_epoch`.

        Args:
            runner (Runner): the runner.
            checkpoint (dict): the loaded checkpoint.
        """
        if not self.save_random_states:
            return
        states = checkpoint.get('meta', {}).get('random_states')
        if not states:
            return
        world_size = get_world_size()
        if len(states) != world_size:
            print_log(
                f'the checkpoint holds random states of {len(states)} ranks '
                f'but this job has {world_size}: random states are not '
                'restored, so the run will not repeat the interrupted one '
                'exactly',
                logger='current',
                level=logging.WARNING)
            return
        self._resumed_states = states[get_rank()]

    def before_train_epoch(self, runner) -> None:
        """Restore the resumed random states before the next batch is drawn.

        For an iteration-based loop that skips already seen batches, the
        restoration is deferred until just before the first new batch.
        """
        if self._resumed_states is None:
            return
        states, self._resumed_states = self._resumed_states, None
        loop = runner.train_loop
        skip = int(getattr(loop, 'iter', 0))
        if hasattr(loop, 'dataloader_iterator') and skip > 0:
            loop.dataloader_iterator = _CallBeforeNext(
                loop.dataloader_iterator, skip,
                lambda: set_random_states(states), loop, 'dataloader_iterator')
        else:
            set_random_states(states)

    # ---------------------------------------------------------- validation
    def before_val_epoch(self, runner) -> None:
        """Save the random states so validation cannot change training."""
        if self.save_random_states:
            self._val_states = get_random_states()

    def after_val_epoch(self, runner, metrics: Dict[str, float]) -> None:
        """Put the random states back, then save the best checkpoint.

        Args:
            runner (Runner): the runner.
            metrics (dict): validation metrics.
        """
        if self._val_states is not None:
            set_random_states(self._val_states)
            self._val_states = None
        super().after_val_epoch(runner, metrics)
