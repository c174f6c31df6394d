"""The GPU benchmark and the paper-scale estimate run (CPU smoke mode).

``benchmarks/gpu.py --device cpu --smoke`` runs every measurement of the
script a lent GPU will run (whole iterations from frame folders with a
dataloader worker, the head step, the frame loss, evaluation, the fp16
audit) at tiny sizes, so that the one GPU run is not spent on a bug.
"""
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCH = osp.join(REPO, 'benchmarks')


def _run(*args: str, timeout: int = 900) -> str:
    res = subprocess.run([sys.executable, *args],
                         cwd=REPO,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stdout[-5000:]
    return res.stdout


def test_gpu_benchmark_smoke_mode():
    out = _run(osp.join(BENCH, 'gpu.py'), '--device', 'cpu', '--smoke')
    assert 'iteration N=4 W=4 64 px, 1 workers' in out
    assert 'waiting for data' in out
    assert 'estimated peak' in out  # the estimate printed beside it
    assert 'train step N=4 T=4' in out
    assert 'frame loss N=4 T=4 ours' in out
    assert 'pairs/s' in out
    assert 'float32 only in: losses, pseudo labels' in out
    assert 'NOT SAFE' not in out


def test_paper_scale_estimate_runs_and_checks_its_method():
    out = _run(
        osp.join(BENCH, 'paper_scale.py'), '--videos', '2', '--window', '4',
        '--size', '64', '--eval', '--eval-frames', '8', '--validate', '8', '4')
    for text in ('estimated peak', 'GFLOP per iteration', 'A100-80GB', 'H100',
                 'pairs to score', 'Method check'):
        assert text in out, text
    # MemTracker's count of the head step is close to the measured peak
    # RSS: never far below it (it would then miss memory), at most twice
    # it (it counts whole tensors, RSS only the pages touched)
    row = [
        line for line in out.split('Method check')[1].splitlines()
        if line.startswith('| ') and line[2].isdigit()
    ][0]
    tracked, measured = (
        float(c.replace(',', '')) for c in row.strip('| ').split(' | '))
    assert 0.8 * measured - 8 <= tracked <= 2 * measured + 8, row
