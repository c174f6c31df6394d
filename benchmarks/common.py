"""Shared helpers of the benchmarks: resident memory and timing.

Peak resident memory is read from ``/proc/self/status`` (``VmHWM``), which
can be reset through ``/proc/self/clear_refs`` on Linux; where that is not
allowed, :class:`PeakRSS` falls back to ``getrusage`` maxima.
"""
import resource
import statistics
import time
from typing import Callable, List, Tuple


def read_status_kb(field: str) -> int:
    """Return a ``/proc/self/status`` field in KiB (-1 if unavailable)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (VmHWM) of this process if possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


class PeakRSS:
    """Measure the extra peak resident memory of a code block, in MiB.

    Usage::

        with PeakRSS() as peak:
            work()
        print(peak.extra_mb, peak.reset)
    """

    def __enter__(self) -> 'PeakRSS':
        self.rss_before = read_status_kb('VmRSS')
        self.reset = reset_peak_rss() and read_status_kb('VmHWM') > 0
        self.maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc) -> None:
        if self.reset:
            extra_kb = read_status_kb('VmHWM') - self.rss_before
        else:
            extra_kb = (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss -
                self.maxrss_before)
        self.extra_mb = extra_kb / 1024


def timed(fn: Callable[[], object]) -> Tuple[float, object]:
    """Run ``fn`` once; return (seconds, its result)."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median(values: List[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(values)


def load_average() -> str:
    """The 1/5/15-minute load averages as text (``'?'`` if unknown)."""
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return '?'
