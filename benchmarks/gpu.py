"""GPU figures: a paper-scale training step and evaluation throughput.

Meant for a CUDA machine (``--device cuda``, the default); ``--device cpu
--smoke`` runs the same code at small sizes as a check (the test suite does).
Measurements:

* ``iteration``: whole training iterations of ``configs/hapvr_fivr.py``
  through mmengine's runner: real frames from 1-fps frame folders
  (``--frames-root``, e.g. made by ``tools/data/extract_frames.py``; by
  default the demo videos are generated and converted) through the
  training pipeline with ``--workers`` dataloader workers, the frozen
  backbone, the fp16 teacher, head, losses and the config's optimizer
  wrapper (``AmpOptimWrapper`` fp16 on CUDA); median step time, the share
  of it spent waiting for data, and peak GPU memory, printed beside the
  estimates of ``benchmarks/paper_scale.py`` for the same sizes;
* ``fp16-audit``: the operations' dtypes by stage under CUDA autocast and
  the loss changes (``benchmarks/fp16_audit.py``, CUDA's cast lists);
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
    python benchmarks/gpu.py --device cpu --smoke     # the same code, small
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
from common import median
from frame_ap_loss import baseline_loss
from train_step import build_hapvr, make_inputs


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


def _step_timer(device: torch.device):
    """A runner hook timing each iteration and its wait for data."""
    from mmengine.hooks import Hook

    class _StepTimer(Hook):
        priority = 'VERY_LOW'

    timer = _StepTimer()
    _StepTimerState.__init__(timer, device)
    for name in ('before_train_iter', 'after_train_iter'):
        setattr(timer, name, getattr(_StepTimerState, name).__get__(timer))
    return timer


class _StepTimerState:
    """State and callbacks of :func:`_step_timer`'s hook."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.steps: List[float] = []
        self.waits: List[float] = []
        self.peaks: List[float] = []
        self._end = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        now = time.perf_counter()
        self.waits.append(now - self._end if self._end else float('nan'))
        self._start = now
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        sync(self.device)
        self._end = time.perf_counter()
        self.steps.append(self._end - self._start)
        if self.device.type == 'cuda':
            self.peaks.append(
                torch.cuda.max_memory_allocated(self.device) / 2**20)


def frame_folders(args) -> str:
    """``--frames-root``, or the demo videos converted to frame folders."""
    if args.frames_root:
        return args.frames_root
    import subprocess
    import tempfile
    root = tempfile.mkdtemp(prefix='hapvr_gpu_bench_')
    tools = os.path.join(os.path.dirname(HERE), 'tools')
    subprocess.run([
        sys.executable,
        os.path.join(tools, 'data',
                     'make_demo_dataset.py'), '--out', root, '--num-train',
        str(max(args.videos * 2, 4)), '--num-queries', '1',
        '--num-distractors', '1', '--corrupt', '0', '--quiet'
    ],
                   check=True)
    out = os.path.join(root, 'frames')
    subprocess.run([
        sys.executable,
        os.path.join(tools, 'data', 'extract_frames.py'),
        os.path.join(root, 'train'), out, '--workers',
        str(max(args.workers, 1))
    ],
                   check=True,
                   stdout=subprocess.DEVNULL)
    return out


def iteration_config(args, device: torch.device, root: str):
    """The paper config at the benchmark's sizes, no checkpoint or val."""
    from mmengine.config import Config
    repo = os.path.dirname(HERE)
    cfg = Config.fromfile(os.path.join(repo, 'configs', 'hapvr_fivr.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.whitening.pca_file = None
    if args.size != 224:
        maps = [
            args.size // 4, args.size // 8, args.size // 16, args.size // 32
        ]
        cfg.model.neck.kernel_sizes = tuple(
            max(1, -(-m // 2)) if i else m // 2 for i, m in enumerate(maps))
    cfg.custom_hooks[0]['teacher']['init_cfg'] = None
    if args.teacher_depth:
        cfg.custom_hooks[0]['teacher']['depth'] = args.teacher_depth
    loader = cfg.train_dataloader
    loader.batch_size = args.videos
    loader.num_workers = args.workers
    loader.persistent_workers = args.workers > 0
    loader.dataset.data_root = root
    loader.dataset.window = args.frames
    loader.dataset.pipeline[0].update(
        window=args.frames, short_side=args.size * 8 // 7)
    loader.dataset.pipeline[1].update(window=args.frames, crop_size=args.size)
    cfg.train_cfg.max_iters = args.warmup + args.iters
    cfg.train_cfg.val_interval = 10**9
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = 10**9
    cfg.default_hooks.checkpoint.save_last = False
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = 'WARNING'
    cfg.work_dir = os.path.join(root, 'work')
    if device.type != 'cuda':  # AMP is for GPUs; the smoke run uses fp32
        cfg.optim_wrapper = dict(
            type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer)
    return cfg


def bench_iteration(args, device: torch.device) -> None:
    """Whole training iterations from frame folders, with workers."""
    from mmengine.runner import Runner
    root = frame_folders(args)
    cfg = iteration_config(args, device, root)
    runner = Runner.from_cfg(cfg)
    timer = _step_timer(device)
    runner.register_hook(timer)
    runner.train()
    steps = timer.steps[args.warmup:]
    waits = timer.waits[args.warmup:]
    share = sum(waits) / max(sum(steps) + sum(waits), 1e-9)
    n = 2 * args.videos
    line = (f'iteration N={n} W={args.frames} {args.size} px, '
            f'{args.workers} workers, {type(runner.optim_wrapper).__name__}: '
            f'{median(steps):.3f} s per step (median of {len(steps)}), '
            f'{share:.1%} of the time waiting for data')
    if timer.peaks:
        line += f', peak {max(timer.peaks[args.warmup:]):,.0f} MiB'
    print(line, flush=True)
    if args.estimate:
        import paper_scale
        est = [
            '--videos',
            str(args.videos), '--window',
            str(args.frames), '--size',
            str(args.size)
        ]
        print(
            '\nestimate for the same sizes (benchmarks/paper_scale.py ' +
            ' '.join(est) + '):',
            flush=True)
        paper_scale.main(est)


def bench_fp16_audit(args, device: torch.device) -> None:
    """The fp16 audit under this device's autocast."""
    import fp16_audit
    argv = ['--device', device.type, '--dtypes', args.dtype]
    if args.smoke:
        argv += [
            '--teacher-depth', '1', '--n', '4', '--frames', '4', '--window',
            '4', '--size', '64'
        ]
    if args.dtype != 'float32':
        fp16_audit.main(argv)


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
        '--videos',
        type=int,
        default=64,
        help='source videos per iteration (N = 2x)')
    parser.add_argument('--size', type=int, default=224, help='frame size')
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument(
        '--iters', type=int, default=10, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--teacher-depth',
        type=int,
        default=0,
        help='0: the config\'s (12 blocks)')
    parser.add_argument(
        '--frames-root',
        default=None,
        help='folder of 1-fps frame folders (default: the '
        'demo videos, converted)')
    parser.add_argument('--no-estimate', dest='estimate', action='store_false')
    parser.add_argument(
        '--smoke',
        action='store_true',
        help='tiny sizes everywhere (a check of the code, e.g. on a CPU)')
    parser.add_argument(
        '--only',
        nargs='+',
        choices=['iteration', 'train', 'frame-loss', 'eval', 'fp16-audit'],
        default=['iteration', 'train', 'frame-loss', 'eval', 'fp16-audit'])
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.frames, args.videos, args.size = 4, 4, 2, 64
        args.workers, args.iters, args.warmup = 1, 2, 1
        args.teacher_depth = args.teacher_depth or 1
        args.eval_frames, args.eval_queries, args.eval_batch = 8, 2, 4
        args.repeats = 1
        args.skip_baseline_above = 4
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit('benchmarks/gpu.py: no CUDA device here; run it on a GPU '
                 'machine, or pass --device cpu with small sizes for a '
                 'smoke check')
    name = (
        torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU')
    print(f'GPU benchmark on {name}, torch {torch.__version__}', flush=True)
    if 'iteration' in args.only:
        bench_iteration(args, device)
    if 'train' in args.only:
        bench_train(args, device, getattr(torch, args.dtype))
    if 'frame-loss' in args.only:
        bench_frame_loss(args, device)
    if 'eval' in args.only:
        bench_eval(args, device)
    if 'fp16-audit' in args.only:
        bench_fp16_audit(args, device)


if __name__ == '__main__':
    main()
