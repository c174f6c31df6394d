"""The search index file: indexed features and global descriptors (HDF5).

Layout of an index (``attrs['format'] == 'hapvr-index'``)::

    attrs            format, version, config (path), config_json,
                     checkpoint, fingerprint, fps, short_side, crop,
                     max_frames, dims, dtype, skipped (JSON id -> reason)
    ids              [N] str       video ids, in indexing order
    paths            [N] str       absolute video paths ('' when unknown)
    num_frames       [N] int32     frames of each video
    global           [N, D] f32    L2-normalised global descriptors
    features/<row>   [T, R, D]     indexed features of row ``row`` (f16/f32)

Rows are committed in order: a row's ``features`` dataset and its
``global``/``paths``/``num_frames`` entries are written first and ``ids`` is
extended last, then the file is flushed. ``ids`` is therefore the commit
log: when a run is killed, :class:`IndexWriter` rolls back whatever lies
beyond it on the next open, so a resumed run ends with the same index as an
uninterrupted one. :class:`FeatureFileWriter` writes the plain feature file
(one ``[T, R, D]`` dataset per id at the root) with the same guarantee: a
video's dataset is written in a staging group and moved to its id only
once complete.

One writer at a time: both writers hold an exclusive lock on a sidecar
file ``<file>.lock`` (:class:`WriterLock`, ``fcntl.flock``) for their whole
life, independent of HDF5's own file locking (often switched off with
``HDF5_USE_FILE_LOCKING=FALSE`` on NFS / Lustre). The lock file names the
holder (host, pid, start time); a second writer gets a
:class:`WriterLockedError` saying so and touches nothing. The kernel drops
the lock when its holder dies, so a killed run can be resumed at once.

Fault injection (tests): ``HAPVR_WRITE_FAULT=<stage>@<n>`` SIGKILLs the
writing process at ``stage`` of its ``n``-th :meth:`add` (0-based), after
flushing the file: ``features`` (the video's features dataset written),
``rows`` (an index row's ``global``/``paths``/``num_frames`` written too,
``ids`` not yet). With ``HAPVR_WRITE_FAULT_RANK=<r>`` only the process
whose ``RANK`` environment variable is ``r`` is killed (one shard writer
of several).
"""
import datetime
import errno
import json
import os
import os.path as osp
import posixpath
import signal
import socket
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..utils.errors import disk_full_error

__all__ = [
    'INDEX_FORMAT', 'INDEX_VERSION', 'IndexWriter', 'FeatureFileWriter',
    'VideoIndex', 'WriterLock', 'WriterLockedError', 'is_index_file',
    'row_key', 'lock_path'
]

INDEX_FORMAT = 'hapvr-index'
INDEX_VERSION = 1

#: fault injection for tests, ``<stage>@<n>`` (see the module docstring)
FAULT_ENV = 'HAPVR_WRITE_FAULT'
#: limits the fault to the process of this ``RANK``
FAULT_RANK_ENV = 'HAPVR_WRITE_FAULT_RANK'
#: group of a plain feature file where a video is written before its commit
STAGING_GROUP = '__hapvr_uncommitted__'


def row_key(row: int) -> str:
    """Name of row ``row``'s features dataset inside ``features/``."""
    return f'{int(row):08d}'


def _str_dtype():
    import h5py
    return h5py.string_dtype(encoding='utf-8')


def _decode(values) -> List[str]:
    return [
        v.decode('utf-8') if isinstance(v, bytes) else str(v) for v in values
    ]


def is_index_file(path: str) -> bool:
    """Whether ``path`` is an HDF5 file in the search index layout."""
    import h5py
    if not osp.isfile(path):
        return False
    try:
        with h5py.File(path, 'r') as h5:
            return h5.attrs.get('format') == INDEX_FORMAT
    except OSError:
        return False


def lock_path(path: str) -> str:
    """The sidecar lock file of the data file ``path``: ``<path>.lock``."""
    return str(path) + '.lock'


def _raise_if_disk_full(err: OSError, path: str, features: Tensor) -> None:
    """Raise :class:`~hapvr_mm.utils.DiskFullError` for a full disk.

    Args:
        err (OSError): the write error.
        path (str): the file written.
        features (Tensor): the features being written (their size is the
            space needed).
    """
    full = disk_full_error(err, path,
                           features.numel() * features.element_size(),
                           'index file')
    if full is not None:
        raise full from err


class WriterLockedError(RuntimeError):
    """Another process holds the writer lock of a file.

    Args:
        path (str): the data file.
        holder (dict): what the lock file says about its holder (``host``,
            ``pid``, ``since``); empty when it could not be read.
    """

    def __init__(self, path: str, holder: Dict[str, object]) -> None:
        self.path, self.holder = str(path), dict(holder)
        if holder.get('pid') is not None:
            who = (f"process {holder.get('pid')} on host "
                   f"{holder.get('host', '?')} (since "
                   f"{holder.get('since', '?')})")
        else:
            who = 'another process (which has not yet recorded its pid)'
        super().__init__(
            f'{path} is being written by {who}; its lock is '
            f'{lock_path(path)}. Only one writer at a time: wait for it to '
            'finish (or stop it), then run again to resume. Nothing was '
            'changed in the file.')


def _lock_fd(fd: int) -> None:
    """Take an exclusive non-blocking lock on ``fd``.

    ``flock`` first; ``lockf`` (POSIX record locks) where the file system
    has no ``flock`` (some Lustre / old NFS mounts).

    Raises:
        BlockingIOError: another process holds the lock.
    """
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        raise
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS,
                             errno.EINVAL):
            raise
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EAGAIN):
            raise BlockingIOError(err.errno, str(err)) from err
        raise


def _read_holder(fd: int) -> Dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode('utf-8')) if raw.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


class WriterLock:
    """Exclusive writer lock of a data file, held through ``<file>.lock``.

    :meth:`acquire` creates the lock file, locks it (``fcntl.flock``,
    non-blocking) and writes its holder into it as JSON (``host``, ``pid``,
    ``since``, ``file``); :meth:`release` removes it. The lock does not
    depend on HDF5's file locking, and the kernel releases it when the
    holder dies (even by SIGKILL).

    Args:
        path (str): the data file (``.h5``) to protect.
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.lock_path = lock_path(path)
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> 'WriterLock':
        """Take the lock.

        Returns:
            WriterLock: ``self``.

        Raises:
            WriterLockedError: another process holds it (named in the
                message).
            OSError: the lock file cannot be created or locked (e.g. a
                read-only folder).
        """
        if self._fd is not None:
            return self
        for _ in range(10):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _lock_fd(fd)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise WriterLockedError(self.path, holder) from None
            except BaseException:
                os.close(fd)
                raise
            # a holder releasing meanwhile unlinks the file we opened: the
            # lock is only valid on the file still at ``lock_path``
            try:
                st, cur = os.fstat(fd), os.stat(self.lock_path)
                same = (st.st_ino, st.st_dev) == (cur.st_ino, cur.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise OSError(f'could not lock {self.lock_path}: it keeps being '
                          'replaced')
        info = dict(
            host=socket.gethostname(),
            pid=os.getpid(),
            since=datetime.datetime.now().isoformat(timespec='seconds'),
            file=osp.abspath(self.path))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode('utf-8'), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op if not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> 'WriterLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _take_lock(path: str, lock: Optional[WriterLock]) -> WriterLock:
    if lock is None:
        lock = WriterLock(path)
    elif osp.abspath(lock.path) != osp.abspath(path):
        raise ValueError(f'the lock given is for {lock.path}, not {path}')
    return lock.acquire()


def _open_h5(path: str):
    """Open ``path`` for appending, with an error that keeps the file."""
    import h5py
    try:
        return h5py.File(path, 'a')
    except OSError as err:
        raise ValueError(
            f'{path} cannot be opened for writing as HDF5 ({err}). If a '
            'program that does not take the writer lock (e.g. an older '
            'version, or a reader) has it open, close that first; if the '
            'file is damaged, move it aside (it is kept as it is) and run '
            'again to start a new one.') from err


class _Fault:
    """``FAULT_ENV`` fault injection: SIGKILL at a stage of an add."""

    def __init__(self, h5) -> None:
        self.h5, self.stage, self.at, self.count = h5, None, -1, 0
        spec = os.environ.get(FAULT_ENV, '')
        only = os.environ.get(FAULT_RANK_ENV, '')
        if only and only != os.environ.get('RANK', '0'):
            spec = ''
        if spec:
            stage, _, at = spec.partition('@')
            if stage not in ('features', 'rows') or not at.isdigit():
                raise ValueError(f'{FAULT_ENV} must be features@N or rows@N, '
                                 f'got {spec!r}')
            self.stage, self.at = stage, int(at)

    def __call__(self, stage: str) -> None:
        if self.stage == stage and self.count == self.at:
            self.h5.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def next(self) -> None:
        self.count += 1


def _stored_dtype(h5, path: str) -> type:
    """Feature type recorded in an index file's ``dtype`` attribute."""
    stored = h5.attrs.get('dtype')
    if isinstance(stored, bytes):
        stored = stored.decode('utf-8')
    if stored not in ('float16', 'float32'):
        raise ValueError(f'{path} records an unknown feature type '
                         f'{stored!r} (float16 or float32 expected)')
    return np.float16 if stored == 'float16' else np.float32


class IndexWriter:
    """Append videos to an index file, resuming an earlier run.

    Args:
        path (str): the ``.h5`` file (created when missing).
        dims (int): feature dimension ``D``.
        attrs (dict): metadata stored in the file's attributes (e.g.
            ``config``, ``checkpoint``, ``fps``); on resume they must match
            the stored ones for the keys listed in ``check_keys``.
        fp16 (bool, optional): store features as float16 (True) or
            float32 (False). Defaults to None: float16 for a new file (its
            scores stay within 1e-3 of float32's, docs/search.md), the
            stored type when resuming one.
        check_keys (sequence[str]): attributes that must not change between
            runs on the same file. Defaults to ``('fingerprint', 'fps',
            'short_side', 'crop', 'max_frames', 'dims')``.
        lock (WriterLock, optional): the writer lock of ``path``, already
            taken or not (taken here when not); released by :meth:`close`.
            Defaults to a new one.

    Raises:
        WriterLockedError: another process is writing ``path``.
        ValueError: ``path`` exists but is no index, or was written with
            other settings (named in the message).
    """

    def __init__(self,
                 path: str,
                 dims: int,
                 attrs: Optional[dict] = None,
                 fp16: Optional[bool] = None,
                 check_keys: Sequence[str] = ('fingerprint', 'fps',
                                              'short_side', 'crop',
                                              'max_frames', 'dims'),
                 lock: Optional[WriterLock] = None) -> None:
        self.path = path
        self.dims = int(dims)
        self.dtype = np.float16 if fp16 or fp16 is None else np.float32
        attrs = dict(attrs or {}, dims=self.dims)
        # the lock first: a second writer must not even open the file
        self.lock = _take_lock(path, lock)
        try:
            exists = osp.isfile(path) and osp.getsize(path) > 0
            self.h5 = _open_h5(path)
        except BaseException:
            self.lock.release()
            raise
        try:
            if exists and self.h5.attrs.get('format') != INDEX_FORMAT:
                raise ValueError(
                    f'{path} exists but is not a search index (a plain '
                    'feature file?); choose another --out')
            if exists and 'ids' in self.h5:
                if fp16 is None:  # resume in the stored type
                    self.dtype = _stored_dtype(self.h5, path)
                self._check(attrs, check_keys)
                self._rollback()
            else:
                # new, or killed while being created: nothing was committed
                for key in list(self.h5.keys()):
                    del self.h5[key]
                self._create(attrs)
        except BaseException:
            self.h5.close()
            self.lock.release()
            raise
        self._ids = set(_decode(self.h5['ids'][()]))
        self._fault = _Fault(self.h5)

    # ------------------------------------------------------------------ #
    def _create(self, attrs: dict) -> None:
        h5 = self.h5
        h5.attrs['format'] = INDEX_FORMAT
        h5.attrs['version'] = INDEX_VERSION
        h5.attrs['dtype'] = np.dtype(self.dtype).name
        h5.attrs['skipped'] = '{}'
        for key, value in attrs.items():
            h5.attrs[key] = 'none' if value is None else value
        for name in ('ids', 'paths'):
            h5.create_dataset(
                name,
                shape=(0, ),
                maxshape=(None, ),
                dtype=_str_dtype(),
                chunks=(1024, ))
        h5.create_dataset(
            'num_frames',
            shape=(0, ),
            maxshape=(None, ),
            dtype=np.int32,
            chunks=(1024, ))
        h5.create_dataset(
            'global',
            shape=(0, self.dims),
            maxshape=(None, self.dims),
            dtype=np.float32,
            chunks=(max(1, 65536 // self.dims), self.dims))
        h5.create_group('features')
        h5.flush()

    def _check(self, attrs: dict, keys: Sequence[str]) -> None:
        for key in keys:
            if key not in attrs:
                continue
            new = 'none' if attrs[key] is None else attrs[key]
            old = self.h5.attrs.get(key)
            if isinstance(old, bytes):
                old = old.decode('utf-8')
            if isinstance(old, np.generic):
                old = old.item()
            if old != new:
                raise ValueError(
                    f'{self.path} was indexed with {key}={old!r}, this run '
                    f'has {key}={new!r}: use the same settings to resume, or '
                    'another --out')
        stored = self.h5.attrs.get('dtype')
        if stored != np.dtype(self.dtype).name:
            raise ValueError(
                f'{self.path} stores {stored} features, this run writes '
                f'{np.dtype(self.dtype).name}: resume it with --dtype '
                f'{stored} (or without --dtype), or choose another --out')

    def _rollback(self) -> None:
        """Drop whatever an interrupted run wrote beyond the last commit."""
        h5 = self.h5
        ids = _decode(h5['ids'][()])
        n = len(ids)
        while n and not ids[n - 1]:  # resized but the id never written
            n -= 1
        if n != len(ids):
            h5['ids'].resize(n, axis=0)
        for name in ('paths', 'num_frames', 'global'):
            if h5[name].shape[0] != n:
                h5[name].resize(n, axis=0)
        stale = [k for k in h5['features'] if int(k) >= n]
        for key in stale:
            del h5['features'][key]
        h5.flush()

    # ------------------------------------------------------------------ #
    def __len__(self) -> int:
        return self.h5['ids'].shape[0]

    def __contains__(self, video_id: str) -> bool:
        return str(video_id) in self._ids

    def add(self,
            video_id: str,
            features: Tensor,
            global_desc: Tensor,
            path: str = '') -> int:
        """Commit one video.

        Args:
            video_id (str): its id (unique in the index).
            features (Tensor): indexed features ``[T, R, D]``.
            global_desc (Tensor): global descriptor ``[D]``.
            path (str): its file. Defaults to ''.

        Returns:
            int: the row of the video.
        """
        video_id = str(video_id)
        if video_id in self._ids:
            raise ValueError(f'{video_id!r} is already in {self.path}')
        if features.dim() != 3 or features.shape[-1] != self.dims:
            raise ValueError(f'features of {video_id!r} must be [T, R, '
                             f'{self.dims}], got {tuple(features.shape)}')
        if tuple(global_desc.shape) != (self.dims, ):
            raise ValueError(f'global descriptor of {video_id!r} must be '
                             f'[{self.dims}], got {tuple(global_desc.shape)}')
        try:
            h5 = self.h5
            row = len(self)
            h5['features'].create_dataset(
                row_key(row),
                data=features.detach().float().cpu().numpy().astype(
                    self.dtype))
            self._fault('features')
            for name in ('paths', 'num_frames', 'global'):
                h5[name].resize(row + 1, axis=0)
            h5['paths'][row] = path
            h5['num_frames'][row] = int(features.shape[0])
            h5['global'][row] = global_desc.detach().float().cpu().numpy()
            self._fault('rows')
            h5['ids'].resize(row + 1, axis=0)
            h5['ids'][row] = video_id  # the commit
        except OSError as err:
            _raise_if_disk_full(err, self.path, features)
            raise
        self._ids.add(video_id)
        self._fault.next()
        return row

    def flush(self) -> None:
        """Write everything committed so far to disk."""
        self.h5.flush()

    def set_skipped(self, skipped: Dict[str, str]) -> None:
        """Record the videos this run skipped (id -> reason)."""
        self.h5.attrs['skipped'] = json.dumps(skipped, sort_keys=True)

    def close(self) -> None:
        """Flush and close the file, then release the writer lock."""
        if self.h5.id.valid:
            self.h5.flush()
            self.h5.close()
        self.lock.release()

    def __enter__(self) -> 'IndexWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FeatureFileWriter:
    """Append videos to a plain feature file, resuming an earlier run.

    The plain layout (a ``RetrievalDataset``'s ``feature_file``): one
    ``[T, R, D]`` dataset per video id at the root. A video is committed
    like an index row: its dataset is written in the staging group
    ``__hapvr_uncommitted__``, flushed, then moved to its id; opening the
    file again drops whatever the staging group holds, so a video counts as
    present only once complete, and a killed run, resumed, ends with the
    file of an uninterrupted one. The staging group is removed on
    :meth:`close`.

    Args:
        path (str): the ``.h5`` file (created when missing).
        fp16 (bool): store features as float16. Defaults to False.
        lock (WriterLock, optional): the writer lock of ``path`` (taken
            here when not yet); released by :meth:`close`. Defaults to a
            new one.

    Raises:
        WriterLockedError: another process is writing ``path``.
        ValueError: ``path`` is a search index, or cannot be opened as HDF5.
    """

    def __init__(self,
                 path: str,
                 fp16: bool = False,
                 lock: Optional[WriterLock] = None) -> None:
        self.path = path
        self.dtype = np.float16 if fp16 else np.float32
        self.lock = _take_lock(path, lock)
        try:
            self.h5 = _open_h5(path)
        except BaseException:
            self.lock.release()
            raise
        try:
            if self.h5.attrs.get('format') == INDEX_FORMAT:
                raise ValueError(f'{path} is a search index, not a plain '
                                 'feature file: add --index, or choose '
                                 'another --out')
            if STAGING_GROUP in self.h5:  # an interrupted run's video
                del self.h5[STAGING_GROUP]
            self.h5.flush()
        except BaseException:
            self.h5.close()
            self.lock.release()
            raise
        self._fault = _Fault(self.h5)

    def __contains__(self, video_id: str) -> bool:
        import h5py
        vid = str(video_id)
        if not vid or vid.split('/')[0] == STAGING_GROUP:
            return False
        try:
            return isinstance(self.h5.get(vid), h5py.Dataset)
        except (KeyError, ValueError):
            return False

    def add(self,
            video_id: str,
            features: Tensor,
            global_desc: Optional[Tensor] = None,
            path: str = '') -> None:
        """Commit one video's features.

        Args:
            video_id (str): its id (a dataset name; ``/`` makes groups).
            features (Tensor): region features ``[T, R, D]``.
            global_desc (Tensor, optional): unused (the plain layout has no
                global descriptors).
            path (str): unused.
        """
        vid = str(video_id)
        if vid in self:
            raise ValueError(f'{vid!r} is already in {self.path}')
        if not vid or vid.split('/')[0] == STAGING_GROUP:
            raise ValueError(f'{vid!r} cannot be a video id of {self.path}')
        try:
            h5 = self.h5
            staging = h5.require_group(STAGING_GROUP)
            if 'pending' in staging:
                del staging['pending']
            staging.create_dataset(
                'pending',
                data=features.detach().float().cpu().numpy().astype(
                    self.dtype))
            h5.flush()
            self._fault('features')
            parent = posixpath.dirname(vid.strip('/'))
            if parent:
                h5.require_group(parent)
            h5.move(f'{STAGING_GROUP}/pending', vid)  # the commit
        except OSError as err:
            _raise_if_disk_full(err, self.path, features)
            raise
        self._fault.next()

    def flush(self) -> None:
        """Write everything committed so far to disk."""
        self.h5.flush()

    def set_skipped(self, skipped: Dict[str, str]) -> None:
        """Nothing to record: the plain layout keeps video datasets only."""

    def close(self) -> None:
        """Remove the staging group, close, release the writer lock."""
        if self.h5.id.valid:
            if STAGING_GROUP in self.h5:
                del self.h5[STAGING_GROUP]
            self.h5.flush()
            self.h5.close()
        self.lock.release()

    def __enter__(self) -> 'FeatureFileWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoIndex:
    """Read a search index: ids, global descriptors and features.

    Ids, paths and frame counts are read at once; global descriptors
    (:meth:`global_rows`, :meth:`iter_global`, :meth:`global_view`, or all
    of them as :attr:`global_desc` on first use) and features
    (:meth:`features`) are read on demand, so an index larger than memory
    can be searched.

    Args:
        path (str): the index file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a search index.
    """

    def __init__(self, path: str) -> None:
        import h5py
        if not osp.isfile(path):
            raise FileNotFoundError(f'index file {path} does not exist')
        try:
            self.h5 = h5py.File(path, 'r')
        except OSError as err:
            raise ValueError(f'{path} is not a readable HDF5 file ({err})')
        if self.h5.attrs.get('format') != INDEX_FORMAT:
            self.h5.close()
            raise ValueError(
                f'{path} is not a search index (no format={INDEX_FORMAT!r} '
                'attribute); build one with tools/extract_features.py '
                '--videos ... or --index')
        self.path = path
        h5 = self.h5
        # rows beyond the last commit (an interrupted run) are ignored
        self.ids: List[str] = _decode(h5['ids'][()])
        while self.ids and not self.ids[-1]:
            self.ids.pop()
        n = len(self.ids)
        self.paths: List[str] = _decode(h5['paths'][:n])
        self.num_frames = np.asarray(h5['num_frames'][:n], dtype=np.int64)
        # global descriptors are read on demand (10M x 512 float32 would be
        # 20 GB): global_rows, iter_global, global_view, or global_desc
        self._global_desc: Optional[Tensor] = None
        self.attrs = {
            k: (v.decode('utf-8') if isinstance(v, bytes) else
                v.item() if isinstance(v, np.generic) else v)
            for k, v in h5.attrs.items()
        }
        self.skipped: Dict[str,
                           str] = json.loads(self.attrs.get('skipped', '{}'))
        self._row = {vid: i for i, vid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def fps(self) -> float:
        """Frames per second the videos were decoded at."""
        return float(self.attrs.get('fps', 1.0))

    @property
    def global_desc(self) -> Tensor:
        """All ``[N, D]`` float32 global descriptors, read on first use.

        ``N * D * 4`` bytes: for a large index use :meth:`global_rows`,
        :meth:`iter_global` or :meth:`global_view` instead.
        """
        if self._global_desc is None:
            self._global_desc = torch.from_numpy(
                np.asarray(self.h5['global'][:len(self)], dtype=np.float32))
        return self._global_desc

    @property
    def global_shape(self) -> tuple:
        """``(N, D)`` of the global descriptors (nothing read)."""
        return (len(self), int(self.h5['global'].shape[1]))

    def global_rows(self, rows: Sequence[int]) -> Tensor:
        """Global descriptors of some rows, read from the file.

        Args:
            rows (sequence[int]): rows, in any order, repeats allowed.

        Returns:
            Tensor: float32 ``[len(rows), D]``, in the order of ``rows``.

        Raises:
            IndexError: a row outside ``[0, N)`` (named with the file).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self._global_desc is not None:
            return self._global_desc[torch.from_numpy(rows)]
        return torch.from_numpy(self.global_view()[rows])

    def iter_global(self, chunk: int = 65536):
        """Global descriptors in chunks of rows.

        Args:
            chunk (int): rows per chunk. Defaults to 65,536.

        Yields:
            tuple[int, Tensor]: the first row and float32 ``[<= chunk, D]``.
        """
        n = len(self)
        for s in range(0, n, chunk):
            yield s, torch.from_numpy(
                np.asarray(
                    self.h5['global'][s:min(s + chunk, n)], dtype=np.float32))

    def global_view(self) -> '_GlobalView':
        """A lazy ``[N, D]`` array-like of the global descriptors.

        Returns:
            _GlobalView: ``shape`` and float32 row slicing / indexing read
            from the file (what :class:`~.GlobalIndex` streams).
        """
        return _GlobalView(self.h5['global'], len(self), self.path)

    def row(self, video_id: str) -> int:
        """Row of ``video_id``.

        Raises:
            KeyError: the id is not in the index (named in the message).
        """
        try:
            return self._row[str(video_id)]
        except KeyError:
            raise KeyError(f'{video_id!r} is not in the index {self.path} '
                           f'({len(self)} videos)') from None

    def find(self, name: str) -> Optional[int]:
        """Row of an id, else of the only video whose id or path ends with
        ``name`` at a folder boundary, with or without its extension
        (``'q000'`` finds ``'clips/q000.mp4'``); None when there is none.

        Raises:
            KeyError: several videos match ``name``.
        """
        if name in self._row:
            return self._row[name]

        def matches(s: str) -> bool:
            for cand in (s, osp.splitext(s)[0]):
                if cand == name or cand.endswith('/' + name) or \
                        cand.endswith(osp.sep + name):
                    return True
            return False

        hits = [
            i for i, (vid, path) in enumerate(zip(self.ids, self.paths))
            if matches(vid) or matches(path)
        ]
        if len(hits) > 1:
            raise KeyError(f'{name!r} matches {len(hits)} videos of '
                           f'{self.path}, e.g. {self.ids[hits[0]]!r} and '
                           f'{self.ids[hits[1]]!r}; give the full id')
        return hits[0] if hits else None

    @property
    def dtype(self) -> str:
        """Type the indexed features are stored in (``'float16'`` or
        ``'float32'``)."""
        return str(self.attrs.get('dtype', 'float32'))

    def storage(self) -> Dict[str, float]:
        """Storage figures of the indexed features, per minute of video.

        Computed from the frame counts and one row's ``[T, R, D]`` shape
        (no feature is read), so it is cheap on any index size.

        Returns:
            dict: ``videos``, ``minutes`` (of video, ``frames / fps / 60``),
            ``dtype``, ``regions`` (R), ``dims`` (D), ``feature_bytes`` (the
            features' data), ``bytes_per_minute`` (of those), ``file_bytes``
            (the whole file on disk: descriptors, ids, HDF5 overhead) and
            ``file_bytes_per_minute``; per-minute figures are 0 for an
            empty index.
        """
        n = len(self)
        frames = int(self.num_frames.sum()) if n else 0
        regions = dims = 0
        itemsize = np.dtype(self.dtype).itemsize
        if n:
            _, regions, dims = self.h5['features'][row_key(0)].shape
        minutes = frames / max(self.fps, 1e-12) / 60.0
        feature_bytes = frames * regions * dims * itemsize
        file_bytes = osp.getsize(self.path)
        return dict(
            videos=n,
            minutes=minutes,
            dtype=self.dtype,
            regions=int(regions),
            dims=int(dims),
            feature_bytes=int(feature_bytes),
            bytes_per_minute=feature_bytes / minutes if minutes else 0.0,
            file_bytes=int(file_bytes),
            file_bytes_per_minute=file_bytes / minutes if minutes else 0.0)

    def features(self, row: int) -> Tensor:
        """Indexed features of a row as float32 ``[T, R, D]``.

        Only that row's dataset is read from the file (an index larger
        than memory can be searched).
        """
        if not 0 <= row < len(self):
            raise IndexError(f'row {row} out of range for {self.path} '
                             f'({len(self)} videos)')
        return torch.from_numpy(
            np.asarray(
                self.h5['features'][row_key(row)][()], dtype=np.float32))

    def close(self) -> None:
        """Close the file."""
        if self.h5.id.valid:
            self.h5.close()

    def __enter__(self) -> 'VideoIndex':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _GlobalView:
    """The committed rows of an index's ``global`` dataset, read lazily.

    Args:
        dataset: the h5py ``global`` dataset.
        n (int): committed rows.
        path (str): the index file (for messages).
    """

    def __init__(self, dataset, n: int, path: str) -> None:
        self.dataset, self.path = dataset, path
        self.shape = (int(n), int(dataset.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            return np.asarray(self.dataset[start:stop:step], dtype=np.float32)
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            bad = rows[(rows < 0) | (rows >= n)][0]
            raise IndexError(f'row {bad} out of range for {self.path} '
                             f'({n} videos)')
        uniq, inverse = np.unique(rows, return_inverse=True)
        if not len(uniq):
            return np.zeros((0, self.shape[1]), np.float32)
        return np.asarray(
            self.dataset[uniq], dtype=np.float32)[inverse.reshape(-1)]
