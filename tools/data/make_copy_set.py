"""Write a copy-detection set: one clip, its transformed copies, others.

The set checks search end to end on files that look like the copies users
hunt for: one clip (the query, ``query.mp4``), ``copies`` transformed
copies of it (``copy_<k>_<name>.mp4``) and ``distractors`` unrelated
videos (``other_<k>.mp4``), all procedural footage of
``tools/data/make_demo_dataset.py`` (textured backgrounds, moving shapes,
shot cuts). The copies, in order (the first ``copies`` are written):

``reencoded`` (half resolution, re-encoded), ``logo`` (an opaque logo
patch), ``cropped`` (60 % of the area, rescaled), ``mirrored`` (left-right
flip), ``colour`` (hue/saturation/gain shift), ``blurred`` (Gaussian
blur), ``speed`` (played at 1.5x) and ``text`` (a text banner).

``annotation.json`` (the JSON annotation format: ``queries``,
``database``, ``relevance``) names the query and its copies as relevant;
the database is every other file.

Example::

    python tools/data/make_copy_set.py --out data/copy_set --seed 0
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

import cv2
import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from hapvr_mm.datasets.transforms.frame import hflip, logo_overlay
from hapvr_mm.utils import load_script

COPY_NAMES = ('reencoded', 'logo', 'cropped', 'mirrored', 'colour', 'blurred',
              'speed', 'text')


def _demo_tool():
    """``tools/data/make_demo_dataset.py`` as a module (its renderer)."""
    return load_script(osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'))


def _transform(demo, name: str, frames: np.ndarray, rng: np.random.Generator,
               fps: float) -> np.ndarray:
    """One named copy of ``frames`` (uint8 RGB ``[N, H, W, 3]``)."""
    n, h, w = frames.shape[:3]
    if name == 'reencoded':
        return np.stack([
            cv2.resize(
                f, (w // 2 // 2 * 2, h // 2 // 2 * 2),
                interpolation=cv2.INTER_AREA) for f in frames
        ])
    if name == 'logo':
        out, _ = logo_overlay(frames, rng, size_range=(0.3, 0.4))
        return out
    if name == 'cropped':
        cw, ch = int(w * 0.77) // 2 * 2, int(h * 0.77) // 2 * 2
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return np.stack([
            cv2.resize(
                f[y0:y0 + ch, x0:x0 + cw], (w, h),
                interpolation=cv2.INTER_LINEAR) for f in frames
        ])
    if name == 'mirrored':
        return hflip(frames)
    if name == 'speed':
        idx = np.minimum((np.arange(int(n / 1.5)) * 1.5).astype(np.int64),
                         n - 1)
        return frames[idx]
    key = dict(
        colour='colour_shift', blurred='blur', text='text_overlay')[name]
    out, _ = demo.make_copy(frames, [key], rng, rng, fps)
    return out


def make_copy_set(out: str,
                  seed: int = 0,
                  copies: int = 7,
                  distractors: int = 48,
                  clip_seconds: float = 10.0,
                  other_seconds: Sequence[float] = (6.0, 14.0),
                  width: int = 320,
                  height: int = 240,
                  fps: float = 10.0) -> Dict:
    """Write the set under ``out`` (see the module docstring).

    Args:
        out (str): output folder (created; existing files are replaced).
        seed (int): seed of all content. Defaults to 0.
        copies (int): copies of the clip, 1 to 8 (:data:`COPY_NAMES`
            order). Defaults to 7.
        distractors (int): unrelated videos. Defaults to 48.
        clip_seconds (float): length of the clip. Defaults to 10.
        other_seconds (sequence[float]): ``(min, max)`` length of the
            unrelated videos. Defaults to (6, 14).
        width (int): frame width (even). Defaults to 320.
        height (int): frame height (even). Defaults to 240.
        fps (float): frame rate of the files. Defaults to 10.

    Returns:
        dict: ``annotation`` (path), ``query`` (id), ``copies`` (ids, in
        :data:`COPY_NAMES` order), ``distractors`` (ids) and ``folder``.

    Raises:
        ValueError: ``copies`` outside 1..8, a negative ``distractors``,
            odd or tiny frame sizes.
    """
    if not 1 <= copies <= len(COPY_NAMES):
        raise ValueError(f'copies must be 1 to {len(COPY_NAMES)}, got '
                         f'{copies}')
    if distractors < 0:
        raise ValueError(f'distractors must be >= 0, got {distractors}')
    if width % 4 or height % 4 or min(width, height) < 32:
        raise ValueError(f'frame size must be multiples of 4, at least 32, '
                         f'got {width}x{height}')
    demo = _demo_tool()
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    clip = demo.render_video(rng, width, height, fps, clip_seconds)
    demo.write_mp4(osp.join(out, 'query.mp4'), clip, fps)
    copy_ids = []
    for k, name in enumerate(COPY_NAMES[:copies]):
        frames = _transform(demo, name, clip,
                            np.random.default_rng((seed, 1, k)), fps)
        vid = f'copy_{k}_{name}'
        demo.write_mp4(osp.join(out, vid + '.mp4'), frames, fps)
        copy_ids.append(vid)
    other_ids = []
    for k in range(distractors):
        orng = np.random.default_rng((seed, 2, k))
        seconds = float(orng.uniform(*other_seconds))
        frames = demo.render_video(orng, width, height, fps, seconds)
        vid = f'other_{k:03d}'
        demo.write_mp4(osp.join(out, vid + '.mp4'), frames, fps)
        other_ids.append(vid)
    annotation = dict(
        queries=['query'],
        database=copy_ids + other_ids,
        relevance=dict(query=copy_ids))
    path = osp.join(out, 'annotation.json')
    with open(path, 'w') as f:
        json.dump(annotation, f, indent=1)
    return dict(
        annotation=path,
        query='query',
        copies=copy_ids,
        distractors=other_ids,
        folder=out)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--copies', type=int, default=7)
    parser.add_argument('--distractors', type=int, default=48)
    parser.add_argument('--clip-seconds', type=float, default=10.0)
    args = parser.parse_args(argv)
    summary = make_copy_set(args.out, args.seed, args.copies, args.distractors,
                            args.clip_seconds)
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == '__main__':
    main()
