"""fp16 audit: which operations run in half precision, and what it costs.

Two parts, both under ``torch.autocast`` (CPU autocast here; run with
``--device cuda`` on a GPU for CUDA's own cast lists):

* ``ops``: one training step of the paper model (``configs/hapvr_fivr.py``
  at ``--size`` pixels: ResNet-50 + PCA-512 with random weights, the
  similarity head, the six losses, an fp16 ViT-S/16 teacher as
  ``PseudoLabelHook`` runs it on a GPU) and one evaluation (``index_video``
  + ``video_similarity``), every operation's floating-point output dtype
  counted by stage (``hapvr_mm.utils.dtype_audit``). The stages that must
  stay in float32 (losses: AP surrogates, similarity regularisation, every
  reduction; pseudo labels: the teacher similarities and their top-k) are
  checked to have no half-precision output;
* ``loss``: the training loss of the paper head and losses at ``--n`` views
  of ``--frames`` frames (random unit features, as ``benchmarks/
  train_step.py``) in float32 and under autocast: relative change of every
  loss term and of the gradients, and the largest change of evaluation
  scores. docs/method.md allows 1e-3 (relative) for the losses.

Example::

    python benchmarks/fp16_audit.py                   # CPU, fp16 and bf16
    python benchmarks/fp16_audit.py --device cuda --dtypes float16
"""
import argparse
import os
import sys
from typing import Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)
from train_step import build_hapvr, make_inputs

#: stages whose every floating-point output must be float32
FLOAT32_STAGES = ('losses', 'pseudo labels')


def paper_model(size: int, teacher_depth: int):
    """The paper model and an fp16 teacher at ``size`` pixels."""
    from mmaction.registry import MODELS
    from mmengine.config import Config

    import hapvr_mm  # noqa: F401
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'hapvr_fivr.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.whitening.pca_file = None
    if size != 224:
        # stage maps of size/4 ... size/32 cells pooled to a 3 x 3 grid
        maps = [size // 4, size // 8, size // 16, size // 32]
        cfg.model.neck.kernel_sizes = tuple(
            max(1, -(-m // 2)) if i else m // 2 for i, m in enumerate(maps))
    model = MODELS.build(cfg.model)
    model.init_weights()
    teacher = MODELS.build(
        dict(type='DINOViT', depth=teacher_depth, init_cfg=None))
    teacher.eval().requires_grad_(False)
    return model, teacher


def audit_ops(args, device: torch.device, dtype: torch.dtype) -> bool:
    """Dtypes of a training step and an evaluation by stage; True if safe."""
    from hapvr_mm.models.data_preprocessors.video_in_video import \
        relevance_from_hosts
    from hapvr_mm.utils.dtype_audit import DtypeRecorder
    torch.manual_seed(0)
    model, teacher = paper_model(args.size, args.teacher_depth)
    model.to(device).train()
    teacher.to(device).half()

    def embed(x):
        # the teacher is fp16 by itself; CPU autocast cannot run an fp16
        # network (its cast rules know bfloat16 only), so it is kept out of
        # autocast here; on CUDA it runs under the model's autocast
        with torch.autocast(device.type, enabled=device.type != 'cpu'):
            return teacher(x.half()).float()

    model.set_teacher(embed)
    b = args.videos
    frames = torch.randn(
        2 * b, args.window, 3, args.size, args.size, device=device)
    hosts = torch.full((b, ), -1, dtype=torch.long, device=device)
    hosts[0] = 1 if b > 1 else -1
    rel = relevance_from_hosts(b, hosts)
    rec = DtypeRecorder()
    with rec, torch.autocast(device.type, dtype=dtype):
        losses = model.loss(frames, rel)
        total = sum(losses.values())
    with rec:
        total.backward()
    model.eval()
    with rec, torch.no_grad(), torch.autocast(device.type, dtype=dtype):
        q = model.index_video(model.extract_feat(frames[:1])[0])
        t = model.index_video(model.extract_feat(frames[1:3])[0])
        model.video_similarity(q, t, indexed=True)
    name = str(dtype)[6:]
    print(f'\n### Operations with {name} outputs under {device.type} '
          f'autocast ({2 * b} views x {args.window} frames, '
          f'{args.size} px)\n')
    print('| stage | float32 outputs | half-precision outputs | '
          'half-precision operations |')
    print('|---|---|---|---|')
    low = rec.low_precision()
    for stage, counts in sorted(rec.stage_dtypes().items()):
        n32 = counts.get('float32', 0)
        nlow = counts.get('float16', 0) + counts.get('bfloat16', 0)
        ops = ', '.join(low.get(stage, [])) or '-'
        print(f'| {stage} | {n32} | {nlow} | {ops} |')
    unsafe = {s: low[s] for s in FLOAT32_STAGES if s in low}
    if unsafe:
        print(f'\nNOT SAFE: half precision inside {sorted(unsafe)}: '
              f'{unsafe}')
    else:
        print(f'\nfloat32 only in: {", ".join(FLOAT32_STAGES)} (every '
              'loss term, AP surrogate, reduction and the pseudo-label '
              'top-k)')
    return not unsafe


def audit_loss(args, device: torch.device, dtypes: List[torch.dtype]) -> None:
    """Relative change of each loss, the gradients and eval scores."""
    torch.manual_seed(0)
    model = build_hapvr().to(device)
    feats, rel, emb = (x.to(device) for x in make_inputs(args.n, args.frames))
    params = [p for p in model.parameters() if p.requires_grad]

    def run(dtype):
        model.zero_grad(set_to_none=True)
        with torch.autocast(
                device.type,
                dtype=dtype or torch.float32,
                enabled=dtype is not None):
            losses = model.loss(feats, rel, None, emb)
        sum(losses.values()).backward()
        grads = torch.cat([p.grad.flatten() for p in params])
        return {k: float(v.detach()) for k, v in losses.items()}, grads

    ref, ref_grad = run(None)
    q = model.index_video(feats[:2].detach())
    with torch.no_grad():
        ref_scores = model.eval().video_similarity(q, feats, indexed=False)
    model.train()
    print(f'\n### Loss terms in float32 and under {device.type} autocast '
          f'(N={args.n}, T={args.frames}, R=9, D=512)\n')
    head = '| term | float32 | ' + ' | '.join(f'{str(d)[6:]} (relative change)'
                                              for d in dtypes) + ' |'
    print(head)
    print('|---' * (2 + len(dtypes)) + '|')
    results: Dict[torch.dtype, Dict[str, float]] = {}
    grads = {}
    for dtype in dtypes:
        results[dtype], grads[dtype] = run(dtype)
    for key, value in ref.items():
        cells = []
        for dtype in dtypes:
            rel_change = abs(results[dtype][key] - value) / max(
                abs(value), 1e-12)
            cells.append(f'{results[dtype][key]:.6f} ({rel_change:.1e})')
        print(f'| {key} | {value:.6f} | ' + ' | '.join(cells) + ' |')
    cells = []
    for dtype in dtypes:
        g = grads[dtype]
        cells.append(f'({float((g - ref_grad).norm() / ref_grad.norm()):.1e})')
    print('| gradients (relative L2) | - | ' + ' | '.join(cells) + ' |')
    cells = []
    model.eval()
    for dtype in dtypes:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype):
            scores = model.video_similarity(q, feats, indexed=False)
        cells.append(
            f'({float((scores.float() - ref_scores).abs().max()):.1e})')
    print('| eval scores (max abs change) | - | ' + ' | '.join(cells) + ' |')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--dtypes',
        nargs='+',
        default=['float16', 'bfloat16'],
        choices=['float16', 'bfloat16'])
    parser.add_argument(
        '--only', nargs='+', default=['ops', 'loss'], choices=['ops', 'loss'])
    parser.add_argument(
        '--size', type=int, default=112, help='frame size of the ops audit')
    parser.add_argument(
        '--videos',
        type=int,
        default=2,
        help='source videos of the ops audit (2B views)')
    parser.add_argument(
        '--window',
        type=int,
        default=4,
        help='frames per view of the ops audit')
    parser.add_argument('--teacher-depth', type=int, default=12)
    parser.add_argument('--n', type=int, default=32, help='views (loss)')
    parser.add_argument(
        '--frames', type=int, default=16, help='frames per view (loss)')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtypes = [getattr(torch, d) for d in args.dtypes]
    print(f'fp16 audit on {device}, torch {torch.__version__}')
    safe = True
    if 'ops' in args.only:
        for dtype in dtypes:
            safe = audit_ops(args, device, dtype) and safe
    if 'loss' in args.only:
        audit_loss(args, device, dtypes)
    return 0 if safe else 1


if __name__ == '__main__':
    sys.exit(main())
