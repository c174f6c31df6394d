"""Paper-scale GPU memory and time, estimated without a GPU.

One training iteration of ``configs/hapvr_fivr.py`` at the paper's per-GPU
batch (64 source videos, N=128 views of W=28 frames at 224 x 224;
ResNet-50 + PCA-512 frozen, the similarity head and six losses, the DINO
ViT-S/16 teacher in fp16, AdamW), measured with PyTorch's own tools
(``torch.distributed._tools.mem_tracker.MemTracker`` for memory by
category, ``torch.utils.flop_counter.FlopCounterMode`` for FLOPs), phase by
phase, as the step runs them:

1. ``inputs``: the batch as the data preprocessor leaves it on the device
   (uint8 views, then the normalised float32 views that live for the whole
   step) -- MemTracker on real tensors at ``--measure-videos`` source
   videos, scaled linearly to the batch (every tensor of this phase is
   proportional to it);
2. ``backbone``: ResNet-50 + regional pooling + PCA over the 3,584 frames,
   ``frame_chunk`` at a time, without gradients -- under
   ``FakeTensorMode`` (shapes only, nothing allocated);
3. ``teacher``: ``PseudoLabelHook.embed`` (raw-pixel input, fp16 ViT-S/16)
   over the same frames -- under ``FakeTensorMode``;
4. ``head + losses``: the similarity head and the six losses forward and
   backward and one AdamW step, on real CPU tensors at full size (the
   losses branch on values, which fake tensors cannot do; about a minute
   on 2 cores; ``--head-views`` and ``--head-frames`` to shrink it).

Peak memory = parameters + buffers + optimizer state + gradients + the
step's inputs + the largest transient of the four phases (they run one
after another). Time per iteration is a roofline estimate: FLOPs divided by
the GPU's published dense fp16 tensor-core peak times ``--utilisation``,
plus the float32 phases at the fp32 peak. Operations without a FLOP count
(max-pooling, TopK-Chamfer's reductions, normalisation) are not in it, so
it is a lower bound.

``--eval`` adds FIVR-200K from videos: frames to decode, feature storage
and pairs to score, and GPU hours from ``--pairs-per-second`` measured on
this CPU (``benchmarks/similarity_throughput.py``) scaled by the ratio of
the GPU's fp16 peak to this CPU's measured matrix-product rate.

``--validate N T`` runs phase 4 at a small size both under MemTracker and
with the process's peak RSS measured, to check the method.

Example::

    python benchmarks/paper_scale.py
    python benchmarks/paper_scale.py --eval --validate 64 16
"""
import argparse
import os
import sys
import time
from typing import Dict, Tuple

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

#: published dense peaks, TFLOP/s: (fp16 tensor core, fp32 non-tensor)
GPUS = {
    'A100-80GB (SXM)': (312.0, 19.5),
    'H100 (SXM)': (989.4, 66.9),
}
MIB = 2.0**20


class FrozenAwareMemTracker:
    """A ``MemTracker`` that also follows modules with frozen parameters.

    PyTorch's tracker installs a gradient hook on every parameter of every
    module it sees, which fails for ``requires_grad=False`` parameters (the
    frozen backbone); this subclass tracks those parameters without a hook.
    """

    def __new__(cls):
        from torch.distributed._tools.mem_tracker import (MemTracker,
                                                          _MemRefType)

        class _Tracker(MemTracker):

            def _track_module_params_and_buffers(self,
                                                 module,
                                                 install_grad_hooks=True):
                frozen = [
                    p for p in module.parameters() if not p.requires_grad
                ]
                for p in frozen:  # tracked as parameters, no gradient hook
                    self._update_and_maybe_create_winfos(p, _MemRefType.PARAM)
                handles = self._param_to_grad_hook_handles
                for p in frozen:
                    handles.setdefault(p, (None, None))
                try:
                    return super()._track_module_params_and_buffers(
                        module, install_grad_hooks)
                finally:
                    for p in frozen:
                        if handles.get(p) == (None, None):
                            del handles[p]

        return _Tracker()


def transient_peak(tracker) -> float:
    """MiB at the tracker's peak, weights (parameters, buffers) excluded."""
    cats = peak_by_category(tracker)
    weights = ('Parameter', 'Buffer')
    return sum(v for k, v in cats.items() if k not in weights)


def peak_by_category(tracker) -> Dict[str, float]:
    """MiB by category at the tracker's peak (summed over devices)."""
    out: Dict[str, float] = {}
    for per_dev in tracker.get_tracker_snapshot('peak').values():
        for key, value in per_dev.items():
            out[key] = out.get(key, 0.0) + value / MIB
    return out


def paper_config(args):
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'hapvr_fivr.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.whitening.pca_file = None
    return cfg


def build(cfg):
    from mmaction.registry import MODELS

    import hapvr_mm  # noqa: F401
    model = MODELS.build(cfg.model)
    return model


def phase_inputs(args, cfg) -> Tuple[float, float]:
    """(persistent MiB, transient peak MiB) of the preprocessed batch."""
    import numpy as np
    from mmaction.registry import MODELS
    pre = MODELS.build(cfg.model.data_preprocessor)
    b = args.measure_videos
    w, s = args.window, args.size
    rng = np.random.default_rng(0)
    data = dict(inputs=[
        torch.from_numpy(
            rng.integers(0, 256, (2, w, 3, s, s), dtype=np.uint8))
        for _ in range(b)
    ])
    tracker = FrozenAwareMemTracker()
    with tracker:
        out = pre(data, training=True)
    peak = sum(peak_by_category(tracker).values())
    persistent = out['inputs'].numel() * out['inputs'].element_size() / MIB
    uint8 = 2 * b * w * 3 * s * s / MIB  # the loaded batch (host or device)
    scale = args.videos / b
    return persistent * scale, (peak - uint8) * scale


def phase_frozen(args, cfg, model) -> Dict[str, dict]:
    """Backbone and teacher under FakeTensorMode: peak MiB and FLOPs."""
    from mmaction.registry import MODELS
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from hapvr_mm.engine.hooks.pseudo_label_hook import PseudoLabelHook
    n, w, s = 2 * args.videos, args.window, args.size
    out = {}
    # weights are real (built outside: their initialisers branch on
    # values), activations fake
    fake_model = build(cfg).eval()
    hook_cfg = [h for h in cfg.custom_hooks
                if h['type'] == 'PseudoLabelHook'][0]
    teacher = MODELS.build(hook_cfg['teacher'])
    teacher.eval().requires_grad_(False).half()
    with FakeTensorMode(allow_non_fake_inputs=True):
        frames = torch.randn(n, w, 3, s, s)
        # the backbone runs frame_chunk frames at a time (MemTracker sees a
        # module once per session): one chunk tracked, FLOPs scaled, the
        # chunks' outputs (kept, then concatenated) added
        total = n * w
        chunk = min(fake_model.frame_chunk or total, total)
        tracker = FrozenAwareMemTracker()
        flops = FlopCounterMode(display=False)
        with tracker, flops, torch.no_grad():
            feats = fake_model._features(frames.flatten(0, 1)[:chunk][None])
        out_mib = feats.numel() * feats.element_size() / MIB * total / chunk
        out['backbone'] = dict(
            peak=transient_peak(tracker) + 2 * out_mib,
            flops=flops.get_total_flops() * total / chunk,
            output=out_mib)
        hook = PseudoLabelHook(teacher=hook_cfg['teacher'])
        hook.teacher = teacher
        hook.set_pixel_stats(
            cfg.model.data_preprocessor.get('mean', (123.675, 116.28, 103.53)),
            cfg.model.data_preprocessor.get('std', (58.395, 57.12, 57.375)))
        tracker = FrozenAwareMemTracker()
        flops = FlopCounterMode(display=False)
        with tracker, flops:
            emb = hook.embed(frames.flatten(0, 1))
        out['teacher'] = dict(
            peak=transient_peak(tracker),
            flops=flops.get_total_flops(),
            params=sum(p.numel() * 2 for p in teacher.parameters()) / MIB,
            output=emb.numel() * 4 / MIB)
    return out


def phase_head(n: int, t: int, model) -> dict:
    """Head + losses fwd/bwd + AdamW step on real tensors: MemTracker."""
    from torch.utils.flop_counter import FlopCounterMode
    from train_step import make_inputs
    feats, rel, emb = make_inputs(n, t)
    model.backbone = model.neck = None  # the head sees features
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=4e-5, weight_decay=0.01)
    tracker = FrozenAwareMemTracker()
    tracker.track_external(model, optim)
    flops = FlopCounterMode(display=False)
    start = time.perf_counter()
    with tracker, flops:
        losses = model.loss(feats, rel, None, emb)
        sum(losses.values()).backward()
        optim.step()
    seconds = time.perf_counter() - start
    cats = peak_by_category(tracker)
    by_module = flops.get_flop_counts()
    total = flops.get_total_flops()
    loss_flops = sum(
        sum(v.values()) for k, v in by_module.items()
        if k.count('.') == 2 and '.losses.' in k)
    return dict(
        categories=cats,
        flops=total,
        loss_flops=loss_flops,
        head_flops=total - loss_flops,
        seconds=seconds,
        trainable=sum(p.numel() * p.element_size() for p in params) / MIB,
        input=(feats.numel() + emb.numel()) * 4 / MIB)


def cpu_matmul_rate() -> float:
    """This CPU's float32 matrix-product rate, FLOP/s (best of 3)."""
    a = torch.randn(2048, 2048)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(4):
            a @ a
        best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - start))
    return best


def print_train(args, cfg, model) -> None:
    n, w = 2 * args.videos, args.window
    print(f'## One training iteration: {args.videos} videos, N={n} views, '
          f'W={w} frames, {args.size} px, AdamW\n')
    params = sum(p.numel() * p.element_size()
                 for p in model.parameters()) / MIB
    buffers = sum(b.numel() * b.element_size() for b in model.buffers()) / MIB
    persistent_in, transient_in = phase_inputs(args, cfg)
    frozen = phase_frozen(args, cfg, model)
    hv = args.head_views or n
    hf = args.head_frames or w
    head = phase_head(hv, hf, model)
    cats = head['categories']
    # at the step's peak (the backward) the gradients are not all there
    # and AdamW's state is created in the first step: from the second
    # iteration on both exist, so count them in full
    grads = max(cats.get('Gradient', 0.0), head['trainable'])
    opt = max(cats.get('Optstate', 0.0), 2 * head['trainable'])
    head_act = cats.get('Activation', 0.0) + cats.get('Temp', 0.0)
    teacher_params = frozen['teacher']['params']
    # phase transients on top of what persists through the step
    transients = {
        'inputs (uint8 batch, normalise, video-in-video)': transient_in,
        'backbone (frozen, in frame chunks)': frozen['backbone']['peak'],
        'teacher (fp16, raw-pixel input)': frozen['teacher']['peak'],
        'head + losses (activations, backward)': head_act,
    }
    fixed = {
        'parameters (student, fp32)': params,
        'buffers': buffers,
        'teacher parameters (fp16)': teacher_params,
        'gradients': grads,
        'optimizer state (AdamW)': opt,
        'normalised input views (fp32, whole step)': persistent_in,
    }
    print('| memory | MiB |')
    print('|---|---|')
    for key, value in fixed.items():
        print(f'| {key} | {value:,.1f} |' if value <
              10 else f'| {key} | {value:,.0f} |')
    for key, value in transients.items():
        print(f'| transient: {key} | {value:,.0f} |')
    peak = sum(fixed.values()) + max(transients.values())
    top = max(transients, key=transients.get)
    print(f'| **estimated peak** (fixed + largest transient: {top}) | '
          f'**{peak:,.0f}** ({peak / 1024:.1f} GiB) |')
    if (hv, hf) != (n, w):
        print(f'\n(head + losses measured at N={hv}, T={hf}, not scaled)')
    print(f'\nhead + losses on this CPU: {head["seconds"]:.1f} s '
          f'(fwd + bwd + AdamW, real tensors)\n')
    stages = {
        'backbone (fp16 under autocast)': frozen['backbone']['flops'],
        'teacher (fp16)': frozen['teacher']['flops'],
        'head fwd + bwd (fp16 under autocast)': head['head_flops'],
        'losses fwd + bwd (float32)': head['loss_flops'],
    }
    total = sum(stages.values())
    print('| stage | GFLOP per iteration | share |')
    print('|---|---|---|')
    for key, value in stages.items():
        print(f'| {key} | {value / 1e9:,.1f} | {value / total:.1%} |')
    print(f'| total | {total / 1e9:,.1f} | 100% |\n')
    u = args.utilisation
    print(f'Roofline at {u:.0%} of the published dense peak (fp16 tensor '
          'cores for the fp16 stages, fp32 for the losses):\n')
    print(f'| GPU | s per iteration | h per {args.iters:,}-iteration run |')
    print('|---|---|---|')
    fp32 = stages['losses fwd + bwd (float32)']
    for name, (p16, p32) in GPUS.items():
        sec = (total - fp32) / (p16 * 1e12 * u) + fp32 / (p32 * 1e12 * u)
        print(f'| {name} | {sec:.3f} | {sec * args.iters / 3600:.1f} |')
    print()


def print_eval(args, model) -> None:
    from torch.utils.flop_counter import FlopCounterMode
    from train_step import make_inputs
    videos = args.fivr_videos + args.fivr_queries
    frames = videos * args.avg_seconds * args.fps
    t = args.eval_frames
    feats, _, _ = make_inputs(2, t)
    model.eval()
    with torch.no_grad():
        idx = model.index_video(feats)
        flops = FlopCounterMode(display=False)
        with flops:
            model.video_similarity(idx[:1], idx[1:], indexed=True)
    pair_flops = flops.get_total_flops()
    pairs = args.fivr_queries * args.fivr_videos
    cpu_rate = cpu_matmul_rate()
    print(f'## FIVR-200K from videos ({args.fivr_videos:,} database videos, '
          f'{args.fivr_queries} queries)\n')
    print(f'Assumed mean duration: {args.avg_seconds} s per video '
          '(--avg-seconds; the dataset does not publish one), decoded at '
          f'{args.fps} frame/s.\n')
    print('| quantity | value |')
    print('|---|---|')
    print(f'| frames to decode and embed | {frames / 1e6:,.1f} M |')
    backbone = frames * args.backbone_gflop * 1e9
    print(f'| backbone FLOPs (ResNet-50 + PCA, {args.backbone_gflop:.1f} '
          f'GFLOP/frame) | {backbone / 1e15:,.1f} PFLOP |')
    per_frame = 9 * 512
    for name, size in (('float32', 4), ('float16', 2)):
        print(f'| feature storage, {name} (9 x 512 per frame) | '
              f'{frames * per_frame * size / 2**40:,.2f} TiB |')
    print(f'| pairs to score | {pairs / 1e6:,.1f} M |')
    print(f'| FLOPs per pair at T={t} (counted) | '
          f'{pair_flops / 1e6:,.0f} MFLOP |')
    print(f'| this CPU: measured pairs/s (--pairs-per-second) | '
          f'{args.pairs_per_second:,.0f} |')
    print(f'| this CPU: float32 matrix-product rate | '
          f'{cpu_rate / 1e9:,.0f} GFLOP/s |')
    print()
    u = args.utilisation
    print(f'At {u:.0%} of the fp16 peak:\n')
    print('| GPU | embedding h (roofline) | scoring h (roofline) | scoring h '
          '(CPU pairs/s x GPU/CPU rate) |')
    print('|---|---|---|---|')
    for name, (p16, _) in GPUS.items():
        rate = p16 * 1e12 * u
        embed_h = backbone / rate / 3600
        score_roof = pairs * pair_flops / rate / 3600
        score_h = pairs / (args.pairs_per_second * rate / cpu_rate) / 3600
        print(f'| {name} | {embed_h:.2f} | {score_roof:.3f} | '
              f'{score_h:.3f} |')
    print('\nDecoding is CPU work: at the measured 0.853 s of CPU per '
          'raw video (docs/benchmarks.md, data pipeline), '
          f'{videos * 0.853 / 3600:,.0f} core-hours for the collection.\n')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--videos', type=int, default=64)
    parser.add_argument('--window', type=int, default=28)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument(
        '--measure-videos',
        type=int,
        default=2,
        help='source videos of the measured input phase')
    parser.add_argument(
        '--head-views',
        type=int,
        default=0,
        help='N of the head phase (default: 2 x videos)')
    parser.add_argument(
        '--head-frames',
        type=int,
        default=0,
        help='T of the head phase (default: window)')
    parser.add_argument('--utilisation', type=float, default=0.4)
    parser.add_argument('--iters', type=int, default=30000)
    parser.add_argument('--eval', action='store_true')
    parser.add_argument('--fivr-videos', type=int, default=225960)
    parser.add_argument('--fivr-queries', type=int, default=100)
    parser.add_argument('--avg-seconds', type=float, default=120.0)
    parser.add_argument('--fps', type=float, default=1.0)
    parser.add_argument('--eval-frames', type=int, default=60)
    parser.add_argument(
        '--backbone-gflop',
        type=float,
        default=0.0,
        help='GFLOP per frame (0: counted at 224 px)')
    parser.add_argument(
        '--pairs-per-second',
        type=float,
        default=405.0,
        help='measured CPU pairs/s at --eval-frames')
    parser.add_argument('--validate', nargs=2, type=int, metavar=('N', 'T'))
    parser.add_argument('--skip-train', action='store_true')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    cfg = paper_config(args)
    model = build(cfg)
    print(f'paper-scale estimate, torch {torch.__version__}\n')
    if not args.skip_train:
        print_train(args, cfg, build(cfg))
    if args.eval:
        if not args.backbone_gflop:
            from torch._subclasses.fake_tensor import FakeTensorMode
            from torch.utils.flop_counter import FlopCounterMode
            fake = build(cfg).eval()
            with FakeTensorMode(allow_non_fake_inputs=True):
                flops = FlopCounterMode(display=False)
                with flops, torch.no_grad():
                    fake._features(torch.randn(1, 1, 3, 224, 224))
            args.backbone_gflop = flops.get_total_flops() / 1e9
        print_eval(args, model)
    if args.validate:
        validate(*args.validate)


def validate(n: int, t: int) -> None:
    """Phase 4 at N, T: MemTracker's peak vs the measured peak RSS."""
    import subprocess
    code = ('import sys, torch; sys.path[:0] = [%r, %r]\n'
            'from common import PeakRSS\n'
            'from paper_scale import build, paper_config\n'
            'from train_step import make_inputs\n'
            'm = build(paper_config(None)); m.backbone = m.neck = None\n'
            'f, r, e = make_inputs(%d, %d)\n'
            'o = torch.optim.AdamW([p for p in m.parameters() '
            'if p.requires_grad])\n'
            'with PeakRSS() as peak:\n'
            '    l = m.loss(f, r, None, e); sum(l.values()).backward(); '
            'o.step()\n'
            'print(peak.extra_mb)\n') % (HERE, REPO, n, t)
    res = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    measured = float(res.stdout.strip().splitlines()[-1])
    model = build(paper_config(None))
    tracked = phase_head(n, t, model)['categories']
    act = sum(v for k, v in tracked.items()
              if k not in ('Parameter', 'Buffer'))
    print(f'## Method check: head + losses + AdamW at N={n}, T={t}\n')
    print('| MemTracker: gradients + optimizer state + activations + temps '
          '(MiB) | measured extra peak RSS of the same step (MiB) |')
    print('|---|---|')
    print(f'| {act:,.0f} | {measured:,.0f} |\n')


if __name__ == '__main__':
    main()
