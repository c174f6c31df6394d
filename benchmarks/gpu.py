"""GPU figures: a paper-scale training step and evaluation throughput.

Meant for a CUDA machine (``--device cuda``, the default); ``--device cpu``
with small sizes runs the same code as a smoke check. Four measurements:

* ``train``: one forward + backward training step of ``HAPVR.loss`` at the
  paper's scale (``--n 128 --frames 28``, R=9, D=512, random unit
  features, the five paper losses) under ``autocast`` (fp16 by default)
  with a dynamic ``GradScaler``; median step time over ``--repeats`` and
  peak GPU memory (``torch.cuda.max_memory_allocated``) of one step;
* ``frame-loss``: the frame QuadLinear-AP loss on the relevant pairs only
  (ours) against the direct all-pairs ``N x N x T x T x T`` formulation of
  ``benchmarks/frame_ap_loss.py``, forward + backward, time and peak memory;
* ``eval``: query x database pairs per second of
  ``HAPVR.video_similarity`` at ``--eval-frames 60`` in float32, and under
  fp16 / bf16 ``autocast`` with the largest score difference to float32
  (docs/method.md allows 1e-3).

Example::

    python benchmarks/gpu.py                          # CUDA, paper scale
    python benchmarks/gpu.py --device cpu --n 8 --frames 8 --eval-batch 4
"""
import argparse
import os
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import median  # noqa: E402
from frame_ap_loss import baseline_loss  # noqa: E402
from train_step import build_hapvr, make_inputs  # noqa: E402


def sync(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_runs(fn: Callable[[], object], repeats: int,
               device: torch.device) -> Dict[str, float]:
    """Median seconds of ``repeats`` calls after one warm-up, peak memory.

    The peak (MiB) is that of one call after the warm-up, on CUDA only.
    """
    fn()
    sync(device)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times: List[float] = []
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
        if i == 0 and device.type == 'cuda':
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    out = dict(seconds=median(times))
    if device.type == 'cuda':
        out['peak_mib'] = peak
    return out


def build_model(device: torch.device):
    """``HAPVR`` with the paper losses and head defaults on ``device``."""
    return build_hapvr().to(device)


def bench_train(args, device: torch.device, dtype: torch.dtype) -> None:
    """Paper-scale training step under autocast with a GradScaler."""
    model = build_model(device)
    feats, rel, emb = (x.to(device) for x in make_inputs(args.n, args.frames))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=4e-5, weight_decay=0.01)
    scaler = torch.amp.GradScaler(
        device.type, enabled=dtype == torch.float16 and device.type == 'cuda')

    def step():
        optim.zero_grad(set_to_none=True)
        with torch.autocast(
                device.type, dtype=dtype, enabled=dtype != torch.float32):
            losses = model.loss(feats, rel, None, emb)
            loss = sum(losses.values())
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        return loss

    res = timed_runs(step, args.repeats, device)
    print(
        f'train step N={args.n} T={args.frames} R=9 D=512 '
        f'{str(dtype)[6:]} autocast: {res["seconds"]:.3f} s' +
        (f', peak {res["peak_mib"]:.0f} MiB' if 'peak_mib' in res else ''),
        flush=True)


def bench_frame_loss(args, device: torch.device) -> None:
    """Frame AP loss: relevant pairs only vs the all-pairs formulation."""
    from mmaction.registry import MODELS

    import hapvr_mm  # noqa: F401
    n, t = args.n, args.frames
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(n, n, t, t, generator=gen).to(device)
    order = torch.rand(n, n, t, t, generator=gen).argsort(-1).argsort(-1)
    k = max(round(t * 0.35), 1)
    pos, neg = (order < k).to(device), (order >= t - k).to(device)
    rel = torch.eye(n)
    half = n // 2
    idx = torch.arange(half)
    rel[idx, idx + half] = rel[idx + half, idx] = 1
    rel = rel.to(device)
    loss = MODELS.build(
        dict(type='FrameQuadLinearAPLoss', sigma=0.05, rho=5.0))
    for name, fn in (('ours', lambda f: loss(f, pos, neg, rel)),
                     ('all pairs',
                      lambda f: baseline_loss(f, pos, neg, rel, 0.05, 5.0))):
        if name == 'all pairs' and n > args.skip_baseline_above:
            print(f'frame loss N={n} T={t} {name}: skipped (N > '
                  f'--skip-baseline-above {args.skip_baseline_above})')
            continue

        def step(fn=fn):
            f = frames.clone().requires_grad_(True)
            fn(f).backward()

        try:
            res = timed_runs(step, args.repeats, device)
        except torch.OutOfMemoryError:
            print(f'frame loss N={n} T={t} {name}: out of memory')
            torch.cuda.empty_cache()
            continue
        print(
            f'frame loss N={n} T={t} {name}: {res["seconds"] * 1e3:.1f} '
            'ms fwd+bwd' +
            (f', peak {res["peak_mib"]:.0f} MiB' if 'peak_mib' in res else ''),
            flush=True)


def bench_eval(args, device: torch.device) -> None:
    """video_similarity pairs/s, float32 and fp16/bf16 autocast."""
    model = build_model(device).eval()
    gen = torch.Generator().manual_seed(0)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, generator=gen), dim=-1)

    with torch.inference_mode():
        qs = model.index_video(
            unit(args.eval_queries, args.eval_frames, 9, 512).to(device))
        db = model.index_video(
            unit(args.eval_batch, args.eval_frames, 9, 512).to(device))
        pairs = args.eval_queries * args.eval_batch
        ref = None
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            if dtype != torch.float32 and device.type != 'cuda':
                continue

            def run(dtype=dtype):
                with torch.autocast(
                        device.type, dtype=dtype, enabled=dtype
                        != torch.float32):
                    return model.video_similarity(qs, db, indexed=True)

            res = timed_runs(run, args.repeats, device)
            out = run().float()
            ref = out if ref is None else ref
            diff = float((out - ref).abs().max())
            print(
                f'eval T={args.eval_frames} {args.eval_queries} queries x '
                f'{args.eval_batch} videos {str(dtype)[6:]}: '
                f'{pairs / res["seconds"]:.0f} pairs/s, max |score - fp32| '
                f'= {diff:.2e}',
                flush=True)


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--n', type=int, default=128, help='N views')
    parser.add_argument('--frames', type=int, default=28, help='T')
    parser.add_argument(
        '--dtype',
        choices=['float16', 'bfloat16', 'float32'],
        default='float16',
        help='training autocast dtype')
    parser.add_argument('--eval-frames', type=int, default=60)
    parser.add_argument('--eval-queries', type=int, default=16)
    parser.add_argument('--eval-batch', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--skip-baseline-above', type=int, default=128)
    parser.add_argument(
        '--only',
        nargs='+',
        choices=['train', 'frame-loss', 'eval'],
        default=['train', 'frame-loss', 'eval'])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit('benchmarks/gpu.py: no CUDA device here; run it on a GPU '
                 'machine, or pass --device cpu with small sizes for a '
                 'smoke check')
    name = (
        torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU')
    print(f'GPU benchmark on {name}, torch {torch.__version__}', flush=True)
    if 'train' in args.only:
        bench_train(args, device, getattr(torch, args.dtype))
    if 'frame-loss' in args.only:
        bench_frame_loss(args, device)
    if 'eval' in args.only:
        bench_eval(args, device)


if __name__ == '__main__':
    main()
