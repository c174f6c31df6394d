"""tune_glibc_malloc: freed large blocks are reused, not page-faulted in."""
import platform
import subprocess
import sys

import pytest

from hapvr_mm.utils import tune_glibc_malloc

PROBE = r'''
import resource, sys
import torch
if sys.argv[1] == '1':
    from hapvr_mm.utils import tune_glibc_malloc
    assert tune_glibc_malloc()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # warm-up: the heap grows to hold the block
    x = torch.ones(4 << 20)  # 16 MB, above glibc's default mmap threshold
    del x
before = faults()
for _ in range(5):
    y = torch.ones(4 << 20)
    del y
print((faults() - before) // 5)
'''


def _faults_per_alloc(tuned: bool) -> int:
    out = subprocess.run([sys.executable, '-c', PROBE, '1' if tuned else '0'],
                         capture_output=True,
                         text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc',
    reason='glibc only')
def test_tuning_removes_page_faults_of_repeated_large_allocations():
    # 16 MB = 4096 pages; untuned glibc maps fresh pages every time
    assert _faults_per_alloc(False) > 2000
    assert _faults_per_alloc(True) < 200


def test_bad_arguments():
    with pytest.raises(ValueError, match='mmap_threshold'):
        tune_glibc_malloc(mmap_threshold=64 << 20)
    with pytest.raises(ValueError, match='trim_threshold'):
        tune_glibc_malloc(trim_threshold=0)
