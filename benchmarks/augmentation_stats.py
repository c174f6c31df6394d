"""Measure the statistics of the training augmentations against the rules.

Draws seeded samples of every rule of docs/method.md section 1 (and the
teacher input of section 4, the schedule of section 1) at the paper's sizes
(224 x 224 frames, W = 28, 2W = 56 loaded frames) and prints a Markdown
table: statistic, the rule's value, the measured value. docs/augmentations.md
quotes its output.

Usage::

    python benchmarks/augmentation_stats.py [--views 400] [--draws 20000]
"""
import argparse
import math
import time
from types import SimpleNamespace

import numpy as np
import torch

from hapvr_mm.datasets.transforms.frame import (VideoGaussianBlur,
                                                VideoLogoOverlay,
                                                VideoTextOverlay, logo_overlay,
                                                render_text_overlay,
                                                text_overlay)
from hapvr_mm.datasets.transforms.temporal import (BLACK, NOISE, fast_forward,
                                                   pause, random_temporal_crop,
                                                   shuffle_dropout)
from hapvr_mm.models.data_preprocessors.video_in_video import viv_box

W, S = 28, 224


def frame_stats(views: int, seed: int) -> list:
    """Per-frame draws of the frame transforms on W-frame strong views."""
    np.random.seed(seed)
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 256, (W, S, S, 3), dtype=np.uint8)
    text, logo, blur = VideoTextOverlay(), VideoLogoOverlay(), \
        VideoGaussianBlur()
    hits = {k: [] for k in ('overlay_text', 'overlay_logo', 'blur_sigma')}
    for _ in range(views):
        res = blur(logo(text(dict(imgs=clip))))
        for k in hits:
            hits[k].append([v is not None for v in res[k]])
    h = {k: np.array(v) for k, v in hits.items()}
    any_ = h['overlay_text'] | h['overlay_logo'] | h['blur_sigma']
    q = 0.7 * 0.7 * 0.5
    rows = [
        ('text overlay: frames altered', '0.30',
         f'{h["overlay_text"].mean():.3f}'),
        ('emoji/logo overlay: frames altered', '0.30',
         f'{h["overlay_logo"].mean():.3f}'),
        ('blur: frames altered', '0.50', f'{h["blur_sigma"].mean():.3f}'),
        ('P(frame t and t+1 captioned)', '0.09',
         f'{(h["overlay_text"][:, 1:] & h["overlay_text"][:, :-1]).mean():.3f}'
         ),
        ('strong views with no frame altered (per-view rule: 0.245)',
         f'{q**W:.1e}', f'{(~any_.any(1)).mean():.3f}'),
        ('strong views with some but not all frames altered',
         f'{1 - q**W - (1 - q)**W:.4f}',
         f'{(any_.any(1) & ~any_.all(1)).mean():.3f}'),
    ]
    # sizes and coverage: one draw on a black and a white frame, a pixel is
    # covered when it changed in either
    pair = np.stack(
        [np.zeros((S, S, 3), np.uint8),
         np.full((S, S, 3), 255, np.uint8)])
    cover_t, cover_l, font, side = [], [], [], []
    for _ in range(views * 3):
        out, _ = text_overlay(pair, rng)
        cover_t.append(((out[0] != 0) | (out[1] != 255)).any(-1).mean())
        font.append(render_text_overlay(S, S, rng)['font_size'] / S)
        out, (_, _, sd) = logo_overlay(pair, rng)
        cover_l.append(((out[0] != 0) | (out[1] != 255)).any(-1).mean())
        side.append(sd / S)
    rows += [
        ('text font size / short side (mean, min-max)', '0.35, 0.2-0.5',
         f'{np.mean(font):.3f}, {min(font):.3f}-{max(font):.3f}'),
        ('emoji side / largest fit (mean, min-max)', '0.35, 0.2-0.5',
         f'{np.mean(side):.3f}, {min(side):.3f}-{max(side):.3f}'),
        ('text pixel coverage per captioned frame (per-view rule: 0.029)',
         'about 0.04', f'{np.mean(cover_t):.3f}'),
        ('emoji pixel coverage per stamped frame (per-view rule: 0.023)',
         'about 0.09', f'{np.mean(cover_l):.3f}'),
    ]
    return rows


def expected_replaced(T: int = 2 * W) -> float:
    """Exact E[#black/noise frames] of shuffle-dropout on T frames."""
    total = 0.0
    for L in range(4, 16):
        n = T // L
        for n1 in range(n + 1):
            for n2 in range(n + 1 - n1):
                prob = (
                    math.comb(n, n1) * math.comb(n - n1, n2) *
                    0.7**(n - n1 - n2) * 0.15**n1 * 0.15**n2)
                if 0 < n1 + 2 * n2 < n:
                    total += prob * n2 * L / 12
    return total


def doubling_crop(inds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The authors' temporal crop: double a short list until it holds W,
    then start uniformly in ``[0, max(len - W, 1))``."""
    while inds.size < W:
        inds = np.concatenate([inds, inds])
    start = int(rng.integers(max(inds.size - W, 1)))
    return inds[start:start + W]


def temporal_stats(draws: int, seed: int) -> list:
    """Shuffle-dropout, pause and fast-forward draws."""
    rng = np.random.default_rng(seed)
    before, after = np.empty(draws), np.empty(draws)
    doubled = np.empty(draws)
    for i in range(draws):
        out = shuffle_dropout(np.arange(2 * W), rng)
        before[i] = np.isin(out, (BLACK, NOISE)).sum()
        view = random_temporal_crop(out, W, rng)
        after[i] = np.isin(view, (BLACK, NOISE)).sum()
        doubled[i] = np.isin(doubling_crop(out, rng), (BLACK, NOISE)).sum()
    se = after.std() / math.sqrt(draws)
    extra = np.array([
        pause(np.arange(2 * W), rng, W // 4).size - 2 * W for _ in range(draws)
    ])
    first = {int(fast_forward(np.arange(2 * W), rng)[0]) for _ in range(100)}
    return [
        ('shuffle-dropout: black/noise frames of the 56 loaded',
         f'{expected_replaced():.2f} (exact)', f'{before.mean():.2f}'),
        ('shuffle-dropout: black/noise frames per 28-frame view '
         '(per-segment rule: 5.1)', 'about 3.4 (audit)',
         f'{after.mean():.2f} +- {se:.2f}'),
        ('the same with the authors\' doubling crop', 'about 3.4 (audit)',
         f'{doubled.mean():.2f} +- {se:.2f}'),
        ('black/noise share of all strong frames (p=0.5 views)', 'about 0.059',
         f'{0.5 * after.mean() / W:.3f}'),
        ('pause: extra copies (mean, min-max)', '3.0, 0-6',
         f'{extra.mean():.2f}, {extra.min()}-{extra.max()}'),
        ('pause: share of each count 0..6', '0.143 each',
         ' '.join(f'{c:.3f}'
                  for c in np.bincount(extra, minlength=7) / draws)),
        ('fast-forward: first kept frame', '0', str(sorted(first))),
    ]


def viv_stats(draws: int, seed: int) -> list:
    """Mean pasted area of video-in-video at 224 x 224."""
    gen = torch.Generator().manual_seed(seed)
    area = []
    for _ in range(draws):
        lam = 0.3 + 0.4 * float(torch.rand(1, generator=gen))
        _, _, h, w = viv_box(S, S, lam, gen)
        area.append(h * w / S / S)
    return [('video-in-video: pasted area / frame (box-inside rule: 0.50)',
             '0.336 (E[(s - s^2/4)^2])', f'{np.mean(area):.3f}')]


def teacher_stats(seed: int) -> list:
    """What the DINO teacher receives, both input modes."""
    from mmaction.registry import MODELS

    from hapvr_mm.engine.hooks import PseudoLabelHook
    torch.manual_seed(seed)
    rows = []
    for mode in ('raw', 'imagenet'):
        model = torch.nn.Module()
        model.needs_teacher = True
        model.fc = torch.nn.Linear(1, 1)
        model.data_preprocessor = MODELS.build(
            dict(
                type='HAPVRDataPreprocessor',
                video_in_video=dict(type='VideoInVideo', prob=1.0)))
        model.set_teacher = lambda t: None
        hook = PseudoLabelHook(
            teacher=dict(
                type='DINOViT',
                img_size=32,
                depth=1,
                embed_dim=48,
                num_heads=2,
                init_cfg=None),
            input_mode=mode)
        hook.before_train(SimpleNamespace(model=model))
        clips = [
            torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
            for _ in range(8)
        ]
        views = model.data_preprocessor(
            dict(inputs=clips), training=True)['inputs']
        x = hook.teacher_input(views.flatten(0, 1))
        whole = bool(torch.equal(x, x.round()))
        rows.append((f'teacher input, input_mode={mode!r} (min, max, whole)',
                     '0, 255, yes' if mode == 'raw' else '-2.12, 2.64, no',
                     f'{x.min():.2f}, {x.max():.2f}, '
                     f'{"yes" if whole else "no"}'))
    return rows


def lr_stats() -> list:
    """The paper schedule's lr at a few iterations."""
    import os.path as osp

    from mmaction.registry import PARAM_SCHEDULERS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(
        osp.join(root, 'configs', '_base_', 'schedules', 'adamw_30k.py'))
    opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=cfg.base_lr)
    scheds = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=opt))
        for s in cfg.param_scheduler
    ]
    lrs = []
    for _ in range(cfg.max_iters):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in scheds:
            s.step()
    lr = cfg.base_lr

    def rule(t):
        if t < 1000:
            return 0.01 * lr + 0.99 * lr * t / 1000
        return 0.1 * lr + 0.45 * lr * (1 + math.cos(math.pi * t / 30000))

    return [(f'lr at iteration {t} / base lr', f'{rule(t) / lr:.6f}',
             f'{lrs[t] / lr:.6f}') for t in (0, 999, 1000, 15000, 29999)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--views',
        type=int,
        default=400,
        help='strong views for the frame transforms')
    parser.add_argument(
        '--draws',
        type=int,
        default=20000,
        help='draws of the temporal rules and of ViV')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    rows = (
        frame_stats(args.views, args.seed) +
        temporal_stats(args.draws, args.seed) +
        viv_stats(args.draws, args.seed) + teacher_stats(args.seed) +
        lr_stats())
    print('| statistic | rule | measured |')
    print('|---|---|---|')
    for name, rule, got in rows:
        print(f'| {name} | {rule} | {got} |')
    print(f'\n({args.views} strong views, {args.draws} temporal/ViV draws, '
          f'seed {args.seed}, {time.time() - start:.0f} s)')


if __name__ == '__main__':
    main()
