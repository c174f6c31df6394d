"""Errors that stop a run on purpose, and the tools' one-line exit.

A run that must not go on (too many unreadable benchmark videos, a training
loss that became NaN, a full disk) raises a :class:`RunStoppedError`
subclass whose message says what happened and what to do. The command-line
tools wrap their ``main`` in :func:`run_tool`, which prints such errors (and
the other user errors it is given) as one ``error: ...`` line and exits with
status 2 instead of a Python traceback.
"""
import errno
import os
import os.path as osp
from typing import Optional, Tuple, Type

__all__ = [
    'RunStoppedError', 'SkippedVideosError', 'TrainingDivergedError',
    'DiskFullError', 'disk_full_error', 'user_errors', 'error_message'
]


class RunStoppedError(RuntimeError):
    """A run stopped on purpose; the message says why and what to do."""


class SkippedVideosError(RunStoppedError):
    """Too many benchmark videos could not be read to trust the metrics."""


class TrainingDivergedError(RunStoppedError):
    """The training loss (or a parameter) became non-finite or exploded."""


class DiskFullError(RunStoppedError):
    """A write failed because the disk (or quota) is full.

    Args:
        path (str): the file being written.
        needed (int, optional): bytes the write needed, when known.
        what (str): what was written, e.g. ``'checkpoint'``.
    """

    def __init__(self,
                 path: str,
                 needed: Optional[int] = None,
                 what: str = 'file') -> None:
        self.path = str(path)
        self.needed = needed
        self.what = what
        size = '' if needed is None else f' ({_human(needed)} needed'
        if needed is not None:
            free = _free_bytes(self.path)
            size += '' if free is None else f', {_human(free)} free'
            size += ')'
        super().__init__(
            f'no space left on the device writing the {what} {self.path}'
            f'{size}; the previous files are intact: free some space and '
            'rerun the same command to resume')

    def __reduce__(self):
        return (self.__class__, (self.path, self.needed, self.what))


def _human(num: int) -> str:
    value = float(num)
    for unit in ('B', 'KB', 'MB', 'GB', 'TB'):
        if value < 1024 or unit == 'TB':
            return f'{value:.0f} {unit}' if unit == 'B' else \
                f'{value:.1f} {unit}'
        value /= 1024
    return f'{num} B'


def _free_bytes(path: str) -> Optional[int]:
    folder = osp.dirname(osp.abspath(path)) or '.'
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return int(st.f_bavail * st.f_frsize)


def disk_full_error(err: BaseException,
                    path: str,
                    needed: Optional[int] = None,
                    what: str = 'file') -> Optional[DiskFullError]:
    """A :class:`DiskFullError` when ``err`` is a full-disk ``OSError``.

    Args:
        err (BaseException): the exception raised by the write.
        path (str): the file being written.
        needed (int, optional): bytes the write needed.
        what (str): what was written (for the message).

    Returns:
        DiskFullError | None: None when ``err`` is another error.
    """
    if not isinstance(err, OSError):
        return None
    # h5py reports HDF5's write failures as OSError without an errno: the
    # C library's errno is only in the message
    text = str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT) or \
            'No space left on device' in text or \
            f'errno = {errno.ENOSPC},' in text or \
            'Disk quota exceeded' in text:
        return DiskFullError(path, needed, what)
    return None


def user_errors() -> Tuple[Type[BaseException], ...]:
    """The project's error types that are the user's to fix.

    A command-line tool reports these as one ``error: ...`` line (see
    ``tools/_cli.py``); any other exception keeps its traceback.

    Returns:
        tuple[type]: the exception types.
    """
    from ..apis.errors import USER_ERRORS
    from ..apis.experiments import ExperimentError
    from ..datasets.video_io import VideoReadError
    from .safe_io import UnsafePickleError
    errors = [
        RunStoppedError, VideoReadError, UnsafePickleError, ExperimentError,
        *USER_ERRORS
    ]
    try:
        from ..search.index_file import WriterLockedError
        errors.append(WriterLockedError)
    except ImportError:  # pragma: no cover - optional module
        pass
    return tuple(errors)


def error_message(err: BaseException) -> str:
    """An exception's message on one line (a KeyError without quotes).

    Args:
        err (BaseException): the exception.

    Returns:
        str: the message, whitespace collapsed.
    """
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = str(err.args[0])  # str(KeyError) adds quotes
    else:
        text = str(err) or type(err).__name__
    return ' '.join(text.split())
