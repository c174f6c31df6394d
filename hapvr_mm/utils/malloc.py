"""Process-level tuning of glibc's ``malloc`` for CPU inference.

PyTorch's CPU tensors come from ``malloc``. With glibc's defaults, freed
blocks of more than a few MB are handed back to the kernel (``munmap`` or
heap trimming), so the next pass of a loop that allocates the same large
temporaries page-faults on every fresh page: on the similarity evaluation
this costs a quarter of the time. Raising the mmap and trim thresholds keeps
those blocks in the process for reuse (the process keeps up to
``trim_threshold`` bytes of freed memory resident).
"""
import ctypes
import ctypes.util
import platform
from typing import Optional

__all__ = ['tune_glibc_malloc']

# from <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: the largest mmap threshold glibc accepts on 64-bit systems (32 MB)
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024

_applied: Optional[tuple] = None


def tune_glibc_malloc(mmap_threshold: int = MAX_MMAP_THRESHOLD,
                      trim_threshold: int = 512 * 1024 * 1024) -> bool:
    """Raise glibc's mmap and trim thresholds for this process.

    Args:
        mmap_threshold (int): blocks larger than this are mmapped (and
            unmapped when freed). At most :data:`MAX_MMAP_THRESHOLD`.
            Defaults to 32 MB.
        trim_threshold (int): freed memory at the top of the heap above
            this is returned to the kernel. Defaults to 512 MB.

    Returns:
        bool: True when applied (glibc found and ``mallopt`` accepted both
        values), False elsewhere (musl, macOS, Windows): nothing changes
        then.
    """
    global _applied
    if not 0 < mmap_threshold <= MAX_MMAP_THRESHOLD:
        raise ValueError(f'mmap_threshold must be in (0, '
                         f'{MAX_MMAP_THRESHOLD}], got {mmap_threshold}')
    if trim_threshold <= 0:
        raise ValueError(
            f'trim_threshold must be positive, got {trim_threshold}')
    if _applied == (mmap_threshold, trim_threshold):
        return True
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = (
        mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(
            _M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1))) == 1)
    if ok:
        _applied = (mmap_threshold, trim_threshold)
    return ok
