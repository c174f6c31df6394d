"""Speed and memory of the frame-level QuadLinear-AP loss.

Compares :class:`hapvr_mm.models.losses.quadlinear_ap.FrameQuadLinearAPLoss`
(relevant pairs only, positives-only ranked lists) with the direct all-pairs
formulation that materialises ``N x N x T x T x T`` tensors and weights the
pair APs by ``Y`` afterwards. Each measurement runs in a fresh subprocess:
forward + backward on CPU, wall time, and the extra peak resident memory
over the resident memory after the inputs were built (peak RSS is reset
through ``/proc/self/clear_refs`` when the kernel allows it, otherwise
``getrusage`` maxima before/after are used). Values and input gradients of
both formulations are compared at the end.

Inputs: relevance = identity + each weak view's strong partner (``2N``
ones), random frame similarities in [0, 1], random disjoint 35% positive /
35% negative frame masks.

Example::

    python benchmarks/frame_ap_loss.py --sizes 64 128 --skip-baseline-above 64
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import read_status_kb, reset_peak_rss

METHODS = ('ours', 'ours-pairs', 'baseline')


def make_inputs(n: int, t: int, dtype, seed: int = 0):
    """Build the benchmark inputs (4-D form)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(n, n, t, t, generator=gen, dtype=dtype)
    u = torch.rand(n, n, t, t, generator=gen, dtype=dtype)
    positives = u < 0.35
    negatives = u > 0.65
    del u
    relevance = torch.eye(n, dtype=dtype)
    half = n // 2
    idx = torch.arange(half)
    relevance[idx, idx + half] = 1
    relevance[idx + half, idx] = 1
    return frames, positives, negatives, relevance


def baseline_loss(frames, positives, negatives, relevance, sigma: float,
                  rho: float):
    """All-pairs frame QuadLinear-AP: ``N x N x T x T x T`` intermediates."""
    import torch
    t_t = frames.shape[-1]
    # diff[a, b, i, j, k] = F[a, b, i, k] - F[a, b, i, j]
    diff = frames.unsqueeze(-2) - frames.unsqueeze(-1)
    pos_k = positives.unsqueeze(-2)
    neg_k = negatives.unsqueeze(-2) & ~pos_k
    not_self = ~torch.eye(t_t, dtype=torch.bool, device=frames.device)
    step = (diff > 0).to(frames.dtype)
    g = torch.where(
        diff > 0, 2 * diff / sigma + 1,
        torch.where(diff >= -sigma, (diff / sigma + 1)**2,
                    torch.zeros_like(diff)))
    w = torch.where(pos_k, rho * step, torch.where(neg_k, g, 0)) * not_self
    rank_all = 1 + w.sum(-1)
    rank_pos = 1 + (rho * step * pos_k * not_self).sum(-1)
    pos_j = positives.to(frames.dtype)
    ap_i = ((rank_pos / rank_all) * pos_j).sum(-1) / pos_j.sum(-1).clamp(min=1)
    valid_i = positives.any(-1)
    ap_pair = (ap_i * valid_i).sum(-1) / valid_i.sum(-1).clamp(min=1)
    weight = relevance * positives.any(-1).any(-1)
    return 1 - (ap_pair * weight).sum() / weight.sum()


def worker(args: argparse.Namespace) -> None:
    """Run one measurement and print a JSON line."""
    import torch
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from hapvr_mm.models.losses.quadlinear_ap import FrameQuadLinearAPLoss
    frames, pos, neg, rel = make_inputs(args.n, args.frames, dtype)
    loss_fn = FrameQuadLinearAPLoss(sigma=0.05, rho=5.0)
    if args.worker == 'ours':

        def run(f):
            return loss_fn(f, pos, neg, rel)

        inp = frames
    elif args.worker == 'ours-pairs':
        a, b = rel.nonzero(as_tuple=True)
        inp = frames[a, b].contiguous()
        pos, neg = pos[a, b].contiguous(), neg[a, b].contiguous()

        def run(f):
            return loss_fn(f, pos, neg)
    else:

        def run(f):
            return baseline_loss(f, pos, neg, rel, 0.05, 5.0)

        inp = frames

    def step():
        x = inp.detach().requires_grad_(True)
        start = time.perf_counter()
        value = run(x)
        value.backward()
        return time.perf_counter() - start, value.detach(), x.grad

    rss_before = read_status_kb('VmRSS')
    reset = reset_peak_rss() and read_status_kb('VmHWM') > 0
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first, value, grad = step()
    if reset:
        extra_kb = read_status_kb('VmHWM') - rss_before
    else:
        extra_kb = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before)
    if args.save:
        torch.save({'value': value, 'grad': grad}, args.save)
    del value, grad
    times = [first]
    for _ in range(args.repeats - 1):
        times.append(step()[0])
    print(
        json.dumps({
            'method': args.worker,
            'n': args.n,
            'first_s': first,
            'median_s': statistics.median(times[1:] or times),
            'runs': len(times),
            'extra_peak_mb': extra_kb / 1024,
            'peak_reset': reset,
        }))


def measure(method: str, n: int, args: argparse.Namespace, save: str) -> Dict:
    """Run :func:`worker` in a fresh interpreter."""
    repeats = args.baseline_repeats if method == 'baseline' else args.repeats
    cmd = [
        sys.executable,
        os.path.abspath(__file__), '--worker', method, '--n',
        str(n), '--frames',
        str(args.frames), '--repeats',
        str(repeats), '--threads',
        str(args.threads), '--dtype', args.dtype, '--save', save
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {'method': method, 'n': n, 'error': proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(path_a: str, path_b: str) -> Tuple[float, float]:
    """Max abs difference of values and gradients saved by two workers."""
    import torch
    a = torch.load(path_a)
    b = torch.load(path_b)
    if a['grad'].shape != b['grad'].shape:  # pair form vs 4-D form
        return float((a['value'] - b['value']).abs()), float('nan')
    return (float((a['value'] - b['value']).abs()),
            float((a['grad'] - b['grad']).abs().max()))


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[64, 128],
        help='batch sizes N')
    parser.add_argument('--frames', type=int, default=28, help='T')
    parser.add_argument(
        '--skip-baseline-above',
        type=int,
        default=64,
        help='run the all-pairs baseline only for N <= this')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='forward+backward runs of ours per size')
    parser.add_argument(
        '--baseline-repeats',
        type=int,
        default=2,
        help='forward+backward runs of the baseline')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument(
        '--dtype', default='float32', choices=['float32', 'float64'])
    parser.add_argument('--worker', choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument('--n', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--save', default='', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return

    import torch
    print(f'frame QuadLinear-AP forward+backward, CPU, torch '
          f'{torch.__version__}, threads={args.threads}, dtype={args.dtype}, '
          f'T={args.frames}, relevance = identity + partner (2N ones), '
          f'35% pos / 35% neg frames')
    header = (f'{"N":>4} {"method":<11} {"first (s)":>10} {"median (s)":>11}'
              f' {"runs":>4} {"extra peak RSS (MB)":>20}')
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            methods = ['ours', 'ours-pairs']
            if n <= args.skip_baseline_above:
                methods.append('baseline')
            results = {}
            for method in methods:
                save = os.path.join(tmp, f'{method}_{n}.pt')
                res = measure(method, n, args, save)
                results[method] = (res, save)
                if 'error' in res:
                    print(f'{n:>4} {method:<11} FAILED: {res["error"]}')
                    continue
                print(f'{n:>4} {method:<11} {res["first_s"]:>10.4f} '
                      f'{res["median_s"]:>11.4f} {res["runs"]:>4} '
                      f'{res["extra_peak_mb"]:>20.1f}')
            ok = {m: r for m, r in results.items() if 'error' not in r[0]}
            if 'ours' in ok and 'ours-pairs' in ok:
                dv, _ = compare(ok['ours'][1], ok['ours-pairs'][1])
                print(f'{n:>4} ours vs ours-pairs: |value diff| = {dv:.3e}')
            if 'ours' in ok and 'baseline' in ok:
                dv, dg = compare(ok['ours'][1], ok['baseline'][1])
                ours, base = ok['ours'][0], ok['baseline'][0]
                print(f'{n:>4} ours vs baseline: |value diff| = {dv:.3e}, '
                      f'max |grad diff| = {dg:.3e}, speed-up (median) = '
                      f'{base["median_s"] / ours["median_s"]:.0f}x, '
                      f'memory ratio = '
                      f'{base["extra_peak_mb"] / ours["extra_peak_mb"]:.0f}x')
            elif n > args.skip_baseline_above:
                print(f'{n:>4} baseline skipped (N > --skip-baseline-above '
                      f'{args.skip_baseline_above})')


if __name__ == '__main__':
    main()
