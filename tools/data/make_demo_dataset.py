"""Write a small, deterministic near-duplicate video benchmark as mp4 files.

Every video is procedural: one to three "shots", each a random background
(gradient, stripes, checkerboard or smooth noise, slowly drifting) with two to
five moving shapes of random colours, so that different videos look clearly
different and consecutive seconds differ. Files are MPEG-4 Part 2 ('mp4v')
written by OpenCV at a low frame rate and resolution, and each one is read
back with decord (a file decord cannot read is an error).

Layout under ``--out``::

    train/t0000.mp4 ...             unlabeled training clips (independent)
    train/corrupt_000.mp4 ...       only with --corrupt N (truncated /
                                    random bytes / empty)
    eval/videos/q000.mp4 ...        queries
    eval/videos/db0000.mp4 ...      database: transformed copies of the
                                    queries and unrelated distractors,
                                    in shuffled order
    eval/annotation.json            {"queries": [...], "database": [...],
                                     "relevance": {query: [positive ids]}}
    eval/metadata.json              per database video: its query (or null
                                    for a distractor) and transformations

Each copy of a query applies one or two of: crop/scale, colour shift, text
overlay, blur, temporal crop, speed change, picture-in-picture (every type
is used at least once when there are >= 7 copies in all). Ids are file
stems. The same ``--seed`` gives the same files, frame for frame.

Example::

    python tools/data/make_demo_dataset.py --out data/demo --seed 0
"""
import argparse
import contextlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import string
import sys
import time
from typing import (Callable, ContextManager, Dict, List, Optional, Sequence,
                    Tuple)

import cv2
import numpy as np

TRANSFORM_NAMES = ('crop_scale', 'colour_shift', 'text_overlay', 'blur',
                   'temporal_crop', 'speed_change', 'picture_in_picture')

# stream codes for per-video random generators: each video's content depends
# only on (seed, stream, index), not on how many other videos are written
_TRAIN, _QUERY, _DISTRACTOR, _COPY, _HOST, _CORRUPT, _SHUFFLE = range(1, 8)


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


# --------------------------------------------------------------- rendering
def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hue = rng.integers(0, 180)
    sat = rng.integers(120, 256)
    val = rng.integers(110, 256)
    hsv = np.array([hue, sat, val], dtype=np.uint8).reshape(1, 1, 3)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _make_background(rng: np.random.Generator, width: int,
                     height: int) -> Callable[[float], np.ndarray]:
    """Return ``f(t) -> [H, W, 3] float32`` for a random drifting texture."""
    kind = rng.choice(['gradient', 'stripes', 'checker', 'noise'])
    c0, c1 = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    proj = xx * np.cos(angle) + yy * np.sin(angle)
    speed = rng.uniform(4, 20) * rng.choice([-1, 1])  # pixels per second
    if kind == 'gradient':
        span = float(proj.max() - proj.min()) + 1.0
        base = proj - proj.min()

        def field(t):
            return 0.5 + 0.5 * np.sin(2 * np.pi * (base + speed * t) / span)
    elif kind == 'stripes':
        period = rng.uniform(12, 40)

        def field(t):
            return 0.5 + 0.5 * np.sign(
                np.sin(2 * np.pi * (proj + speed * t) / period))
    elif kind == 'checker':
        cell = rng.uniform(10, 30)
        dx, dy = speed * np.cos(angle), speed * np.sin(angle)

        def field(t):
            a = np.floor((xx + dx * t) / cell) + np.floor((yy + dy * t) / cell)
            return (a % 2).astype(np.float32)
    else:
        rows = int(rng.integers(3, 7))
        cols = int(rng.integers(4, 9))
        grid = rng.random((rows, cols, 3)).astype(np.float32)
        big = cv2.resize(
            grid, (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
        big = np.tile(big, (2, 2, 1))
        vx, vy = speed * np.cos(angle), speed * np.sin(angle)

        def field(t):
            ox = int(round(vx * t)) % (2 * width)
            oy = int(round(vy * t)) % (2 * height)
            return np.clip(big[oy:oy + height, ox:ox + width], 0, 1)

    def render(t: float) -> np.ndarray:
        f = field(t)
        if f.ndim == 2:
            f = f[..., None]
        return c0 * (1 - f) + c1 * f

    return render


class _Shape:
    """A moving shape that bounces off the borders."""

    def __init__(self, rng: np.random.Generator, width: int,
                 height: int) -> None:
        self.kind = str(rng.choice(['circle', 'rect', 'triangle', 'ellipse']))
        self.size = float(rng.uniform(0.07, 0.25) * min(width, height) * 1.5)
        self.colour = tuple(int(c) for c in _random_colour(rng))
        self.pos = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        self.vel = rng.uniform(-40, 40, size=2)
        self.spin = float(rng.uniform(-1.5, 1.5))
        self.phase = float(rng.uniform(0, 2 * np.pi))
        self.bounds = np.array([width, height], dtype=np.float64)

    def position(self, t: float) -> np.ndarray:
        # reflect the free path into [0, bound] (a bouncing trajectory)
        p = (self.pos + self.vel * t) % (2 * self.bounds)
        return np.where(p > self.bounds, 2 * self.bounds - p, p)

    def draw(self, img: np.ndarray, t: float) -> None:
        cx, cy = self.position(t)
        s, a = self.size, self.phase + self.spin * t
        if self.kind == 'circle':
            cv2.circle(img, (int(cx), int(cy)), int(s / 2), self.colour, -1,
                       cv2.LINE_AA)
        elif self.kind == 'ellipse':
            cv2.ellipse(img, (int(cx), int(cy)), (int(s / 2), int(s / 4)),
                        float(np.degrees(a)), 0, 360, self.colour, -1,
                        cv2.LINE_AA)
        else:
            n = 4 if self.kind == 'rect' else 3
            ang = a + np.arange(n) * 2 * np.pi / n
            pts = np.stack(
                [cx + s / 2 * np.cos(ang), cy + s / 2 * np.sin(ang)], 1)
            cv2.fillPoly(img, [pts.round().astype(np.int32)], self.colour,
                         cv2.LINE_AA)


def render_video(rng: np.random.Generator, width: int, height: int, fps: float,
                 seconds: float) -> np.ndarray:
    """Render a procedural video of one to three shots.

    Args:
        rng (np.random.Generator): Source of all random choices.
        width (int): Frame width.
        height (int): Frame height.
        fps (float): Frame rate of the file.
        seconds (float): Duration.

    Returns:
        np.ndarray: uint8 RGB ``[round(seconds * fps), height, width, 3]``.
    """
    n = max(int(round(seconds * fps)), 1)
    num_shots = int(rng.integers(1, 4))
    cuts = np.sort(
        rng.choice(
            np.arange(1, n), size=min(num_shots - 1, n - 1),
            replace=False)) if n > 1 else np.array([])
    bounds = [0, *cuts.tolist(), n]
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for s in range(len(bounds) - 1):
        bg = _make_background(rng, width, height)
        shapes = [
            _Shape(rng, width, height) for _ in range(int(rng.integers(2, 6)))
        ]
        for i in range(bounds[s], bounds[s + 1]):
            t = i / fps
            img = np.ascontiguousarray(
                np.clip(bg(t) + 0.5, 0, 255).astype(np.uint8))
            for shape in shapes:
                shape.draw(img, t)
            frames[i] = img
    return frames


# ---------------------------------------------------------- transformations
def _crop_scale(frames, rng, ctx):
    n, h, w = frames.shape[:3]
    area = rng.uniform(0.5, 0.8)
    aspect = rng.uniform(0.85, 1.15)
    cw = int(np.clip(round(w * np.sqrt(area * aspect)), 8, w))
    ch = int(np.clip(round(h * np.sqrt(area / aspect)), 8, h))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    scale = float(rng.choice([0.8, 1.0, 1.2]))
    ow, oh = (int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2)
    out = np.stack([
        cv2.resize(
            f[y0:y0 + ch, x0:x0 + cw], (ow, oh),
            interpolation=cv2.INTER_LINEAR) for f in frames
    ])
    return out, dict(box=[x0, y0, cw, ch], size=[ow, oh])


def _colour_shift(frames, rng, ctx):
    hue = int(rng.integers(12, 40)) * int(rng.choice([-1, 1]))
    sat = float(rng.uniform(0.6, 1.4))
    gain = float(rng.uniform(0.75, 1.25))
    bias = float(rng.uniform(-25, 25))
    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + hue) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
        rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
        out[i] = np.clip(rgb.astype(np.float32) * gain + bias, 0,
                         255).astype(np.uint8)
    return out, dict(hue=hue, saturation=sat, gain=gain, bias=bias)


def _text_overlay(frames, rng, ctx):
    h, w = frames.shape[1:3]
    letters = string.ascii_uppercase + string.digits
    text = ''.join(rng.choice(list(letters), size=int(rng.integers(4, 9))))
    scale = float(rng.uniform(0.4, 0.7)) * w / 160
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale,
                                     thick)
    x = int(rng.integers(0, max(w - tw, 1)))
    y = int(rng.integers(th + 2, max(h - base, th + 3)))
    colour = tuple(int(c) for c in _random_colour(rng))
    banner = bool(rng.random() < 0.5)
    out = frames.copy()
    for f in out:
        if banner:
            cv2.rectangle(f, (0, y - th - 3), (w, y + base + 2), (0, 0, 0), -1)
        cv2.putText(f, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                    thick, cv2.LINE_AA)
    return out, dict(text=text, banner=banner)


def _blur(frames, rng, ctx):
    sigma = float(rng.uniform(1.2, 2.5))
    out = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])
    return out, dict(sigma=sigma)


def _temporal_crop(frames, rng, ctx):
    n = len(frames)
    # 50-80 % of the frames, at least 3 s, always at least one frame less
    keep = max(
        int(round(n * rng.uniform(0.5, 0.8))), int(round(3 * ctx['fps'])))
    keep = max(min(keep, n - 1), 1)
    start = int(rng.integers(0, n - keep + 1))
    return frames[start:start + keep], dict(start=start, length=keep)


def _speed_change(frames, rng, ctx):
    speed = float(rng.choice([0.5, 0.75, 1.5, 2.0]))
    n = len(frames)
    m = max(int(np.floor(n / speed)), 1)
    idx = np.minimum((np.arange(m) * speed).astype(np.int64), n - 1)
    return frames[idx], dict(speed=speed)


def _picture_in_picture(frames, rng, ctx):
    n, h, w = frames.shape[:3]
    host = render_video(ctx['host_rng'], w, h, ctx['fps'], n / ctx['fps'])
    ratio = float(rng.uniform(0.45, 0.65))
    iw, ih = int(round(w * ratio)), int(round(h * ratio))
    x0 = int(rng.integers(0, w - iw + 1))
    y0 = int(rng.integers(0, h - ih + 1))
    for i in range(n):
        host[i, y0:y0 + ih, x0:x0 + iw] = cv2.resize(
            frames[i], (iw, ih), interpolation=cv2.INTER_AREA)
    return host, dict(box=[x0, y0, iw, ih])


_TRANSFORMS: Dict[str, Callable] = dict(
    crop_scale=_crop_scale,
    colour_shift=_colour_shift,
    text_overlay=_text_overlay,
    blur=_blur,
    temporal_crop=_temporal_crop,
    speed_change=_speed_change,
    picture_in_picture=_picture_in_picture)
_TEMPORAL = ('temporal_crop', 'speed_change')


def make_copy(frames: np.ndarray, names: Sequence[str],
              rng: np.random.Generator, host_rng: np.random.Generator,
              fps: float) -> Tuple[np.ndarray, List[dict]]:
    """Apply the named transformations (temporal ones first).

    Args:
        frames (np.ndarray): uint8 RGB ``[N, H, W, 3]`` of the query.
        names (Sequence[str]): Names from :data:`TRANSFORM_NAMES`.
        rng (np.random.Generator): Parameters of the transformations.
        host_rng (np.random.Generator): Content of a picture-in-picture host.
        fps (float): Frame rate of the file.

    Returns:
        tuple: The transformed frames ``[N', H', W', 3]`` and a list of
        ``dict(name=..., **params)``.
    """
    ctx = dict(fps=fps, host_rng=host_rng)
    order = sorted(
        names, key=lambda n: (n not in _TEMPORAL, TRANSFORM_NAMES.index(n)))
    log = []
    for name in order:
        frames, params = _TRANSFORMS[name](frames, rng, ctx)
        log.append(dict(name=name, **params))
    return np.ascontiguousarray(frames), log


# ------------------------------------------------------------------- files
def write_mp4(path: str, frames: np.ndarray, fps: float) -> None:
    """Write frames as an MPEG-4 Part 2 ('mp4v') mp4 file with OpenCV.

    Args:
        path (str): Output file.
        frames (np.ndarray): uint8 RGB ``[N, H, W, 3]``.
        fps (float): Frame rate stored in the file.

    Raises:
        RuntimeError: OpenCV cannot open the writer.
    """
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), float(fps),
                             (int(w), int(h)))
    if not writer.isOpened():
        raise RuntimeError(f'OpenCV cannot open an mp4v writer for {path!r} '
                           '(is OpenCV built with FFmpeg?)')
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def verify_with_decord(path: str, num_frames: int, width: int,
                       height: int) -> int:
    """Check that decord reads ``path``; return its length at 1 fps.

    Args:
        path (str): The file just written.
        num_frames (int): Frames written.
        width (int): Frame width written.
        height (int): Frame height written.

    Returns:
        int: Number of frames at 1 fps (all of them are decoded).

    Raises:
        RuntimeError: decord fails, or frame count / size differ.
    """
    import decord
    try:
        vr = decord.VideoReader(path, num_threads=1)
        n = len(vr)
        fps = vr.get_avg_fps()
        idx = np.floor(np.arange(0, n, fps) + 0.5).astype(np.int64)
        idx = idx[idx < n]
        batch = vr.get_batch(idx.tolist()).asnumpy()
    except Exception as exc:
        raise RuntimeError(f'decord cannot read {path!r}: {exc}') from exc
    if n != num_frames or batch.shape[1:] != (height, width, 3):
        raise RuntimeError(
            f'decord read {path!r} as {n} frames of {batch.shape[1:]}, '
            f'expected {num_frames} frames of {(height, width, 3)}')
    return int(len(idx))


def _quiet_decoder() -> ContextManager:
    """hapvr_mm's ``silence_native_stderr`` (decord/FFmpeg print errors on
    file descriptor 2), loaded from its file so that this tool does not
    import the whole package; a no-op when the file is not there."""
    path = osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'hapvr_mm', 'datasets', 'video_io.py')
    if not osp.isfile(path):
        return contextlib.nullcontext()
    spec = importlib.util.spec_from_file_location('_hapvr_video_io', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.silence_native_stderr()


def _decord_rejects(path: str) -> bool:
    """Whether decord refuses the file (its own error output is hidden)."""
    import decord
    try:
        with _quiet_decoder():
            vr = decord.VideoReader(path, num_threads=1)
            if len(vr) == 0:
                return True
            vr.get_batch(list(range(len(vr)))).asnumpy()
    except Exception:
        return True
    return False


def _write_corrupt(path: str, kind: str, source: str,
                   rng: np.random.Generator) -> None:
    if kind == 'truncated':
        with open(source, 'rb') as f:
            data = f.read()
        data = data[:max(len(data) * 3 // 10, 1)]
    elif kind == 'random':
        data = rng.bytes(4096)
    else:
        data = b''
    with open(path, 'wb') as f:
        f.write(data)


# ------------------------------------------------------------------- steps
def _check_arguments(num_train: int, num_queries: int, copies_per_query: int,
                     num_distractors: int, width: int, height: int, fps: float,
                     min_seconds: float, max_seconds: float,
                     corrupt: int) -> None:
    """Raise ``ValueError`` for an option outside its range."""
    counts = (('num_train', num_train, 0), ('num_queries', num_queries, 1),
              ('copies_per_query', copies_per_query, 1),
              ('num_distractors', num_distractors, 0), ('corrupt', corrupt, 0))
    for name, value, low in counts:
        if int(value) != value or value < low:
            raise ValueError(f'{name} must be an int >= {low}, got {value}')
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f'width and height must be even and >= 16, got '
                         f'{width}x{height}')
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f'expected 0 < min_seconds <= max_seconds, got '
                         f'{min_seconds} and {max_seconds}')
    if fps <= 0:
        raise ValueError(f'fps must be > 0, got {fps}')
    if corrupt and not num_train:
        raise ValueError('--corrupt needs at least one training clip')


def _prepare_folders(out: str, overwrite: bool) -> Tuple[str, str, str]:
    """Create ``train/`` and ``eval/videos/`` (emptied with ``overwrite``).

    Returns:
        tuple[str, str, str]: The train, eval and eval video folders.
    """
    train_dir = osp.join(out, 'train')
    eval_dir = osp.join(out, 'eval')
    video_dir = osp.join(eval_dir, 'videos')
    for d in (train_dir, eval_dir):
        if osp.isdir(d) and os.listdir(d):
            if not overwrite:
                raise FileExistsError(
                    f'{d!r} is not empty; pass --overwrite to replace it')
            shutil.rmtree(d)
    os.makedirs(train_dir, exist_ok=True)
    os.makedirs(video_dir, exist_ok=True)
    return train_dir, eval_dir, video_dir


class _VideoWriter:
    """Writes mp4 files, checks them with decord and keeps the statistics.

    Args:
        seed (int): Seed of everything.
        fps (float): Frame rate of the files.
        width (int): Frame width.
        height (int): Frame height.
        min_seconds (float): Shortest duration.
        max_seconds (float): Longest duration.
        verbose (bool): Print progress.
    """

    def __init__(self, seed: int, fps: float, width: int, height: int,
                 min_seconds: float, max_seconds: float,
                 verbose: bool) -> None:
        self.seed = seed
        self.fps = fps
        self.width = width
        self.height = height
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        self.verbose = verbose
        self.lengths: Dict[str, int] = {}  # path -> frames at 1 fps
        self.num_bytes = 0

    def log(self, msg: str) -> None:
        if self.verbose:
            print(msg, flush=True)

    def render(self, stream: int, index: int) -> np.ndarray:
        """A new procedural video from the generator ``(stream, index)``."""
        rng = _rng(self.seed, stream, index)
        seconds = float(rng.uniform(self.min_seconds, self.max_seconds))
        return render_video(rng, self.width, self.height, self.fps, seconds)

    def save(self, path: str, frames: np.ndarray) -> None:
        write_mp4(path, frames, self.fps)
        self.lengths[path] = verify_with_decord(path, len(frames),
                                                frames.shape[2],
                                                frames.shape[1])
        self.num_bytes += osp.getsize(path)


def _write_train_clips(writer: _VideoWriter, train_dir: str,
                       num_train: int) -> List[str]:
    """Write the unlabeled training clips; return their paths."""
    paths = []
    for i in range(num_train):
        path = osp.join(train_dir, f't{i:04d}.mp4')
        writer.save(path, writer.render(_TRAIN, i))
        paths.append(path)
        if (i + 1) % 16 == 0 or i + 1 == num_train:
            writer.log(f'[train] {i + 1}/{num_train} clips')
    return paths


def _copy_transform_names(k: int, rng: np.random.Generator) -> List[str]:
    """Transformations of copy ``k``: one by turn, a second one half of the
    time (drawn from ``rng``)."""
    names = [TRANSFORM_NAMES[k % len(TRANSFORM_NAMES)]]
    if rng.random() < 0.5:
        others = [n for n in TRANSFORM_NAMES if n != names[0]]
        names.append(str(rng.choice(others)))
    return names


def _write_queries(writer: _VideoWriter, video_dir: str, num_queries: int,
                   copies_per_query: int) -> Tuple[List[str], List[tuple]]:
    """Write the queries and render their transformed copies.

    Returns:
        tuple: Query ids, and ``(frames, query id, transformation log)`` per
        copy, in query order.
    """
    queries, copies = [], []
    for q in range(num_queries):
        qid = f'q{q:03d}'
        frames = writer.render(_QUERY, q)
        writer.save(osp.join(video_dir, qid + '.mp4'), frames)
        queries.append(qid)
        for c in range(copies_per_query):
            k = q * copies_per_query + c
            crng = _rng(writer.seed, _COPY, k)
            names = _copy_transform_names(k, crng)
            cframes, tlog = make_copy(frames, names, crng,
                                      _rng(writer.seed, _HOST, k), writer.fps)
            copies.append((cframes, qid, tlog))
        writer.log(f'[eval] query {q + 1}/{num_queries} '
                   f'(+{copies_per_query} copies rendered)')
    return queries, copies


def _write_database(writer: _VideoWriter, video_dir: str, copies: List[tuple],
                    num_distractors: int) -> Tuple[List[str], Dict, Dict]:
    """Write the copies and the distractors in a seeded random order.

    Returns:
        tuple: Database ids, ``{id: dict(query=..., transforms=...)}`` and
        ``{query id: [ids of its copies]}``.
    """
    items: List[Tuple[Optional[np.ndarray], Optional[str], list, int]] = [
        (f, qid, tlog, -1) for f, qid, tlog in copies
    ] + [(None, None, [], d) for d in range(num_distractors)]
    order = _rng(writer.seed, _SHUFFLE).permutation(len(items))
    database, metadata, relevance = [], {}, {}
    for n, j in enumerate(order):
        frames, qid, tlog, d = items[j]
        did = f'db{n:04d}'
        if frames is None:
            frames = writer.render(_DISTRACTOR, d)
        writer.save(osp.join(video_dir, did + '.mp4'), frames)
        database.append(did)
        metadata[did] = dict(query=qid, transforms=tlog)
        if qid is not None:
            relevance.setdefault(qid, []).append(did)
        if (n + 1) % 16 == 0 or n + 1 == len(items):
            writer.log(f'[eval] database {n + 1}/{len(items)} videos')
    return database, metadata, relevance


def _write_json_files(writer: _VideoWriter, eval_dir: str, queries: List[str],
                      database: List[str], relevance: Dict,
                      metadata: Dict) -> str:
    """Write ``annotation.json`` and ``metadata.json``; return the first."""
    relevance = {q: sorted(relevance.get(q, [])) for q in queries}
    annotation = dict(queries=queries, database=database, relevance=relevance)
    path = osp.join(eval_dir, 'annotation.json')
    with open(path, 'w') as f:
        json.dump(annotation, f, indent=1, sort_keys=True)
    with open(osp.join(eval_dir, 'metadata.json'), 'w') as f:
        json.dump(
            dict(
                seed=writer.seed,
                fps=writer.fps,
                size=[writer.width, writer.height],
                videos=metadata),
            f,
            indent=1,
            sort_keys=True)
    return path


def _write_corrupt_files(writer: _VideoWriter, train_dir: str,
                         train_paths: List[str], corrupt: int) -> None:
    """Add ``corrupt`` unreadable files (truncated / random / empty)."""
    kinds = ('truncated', 'random', 'empty')
    for i in range(corrupt):
        path = osp.join(train_dir, f'corrupt_{i:03d}.mp4')
        kind = kinds[i % 3]
        _write_corrupt(path, kind, train_paths[i % len(train_paths)],
                       _rng(writer.seed, _CORRUPT, i))
        if not _decord_rejects(path):
            raise RuntimeError(f'corrupt file {path!r} ({kind}) is readable')
    if corrupt:
        writer.log(
            f'[train] {corrupt} corrupt files (truncated / random / empty)')


# -------------------------------------------------------------------- main
def make_demo_dataset(out: str,
                      seed: int = 0,
                      num_train: int = 48,
                      num_queries: int = 8,
                      copies_per_query: int = 3,
                      num_distractors: int = 24,
                      width: int = 160,
                      height: int = 120,
                      fps: float = 5.0,
                      min_seconds: float = 8.0,
                      max_seconds: float = 20.0,
                      corrupt: int = 0,
                      overwrite: bool = False,
                      verbose: bool = True) -> Dict:
    """Write the demo benchmark under ``out``; see the module docstring.

    Args:
        out (str): Output folder (``train/`` and ``eval/`` are created).
        seed (int): Seed of everything. Defaults to 0.
        num_train (int): Unlabeled training clips. Defaults to 48.
        num_queries (int): Queries. Defaults to 8.
        copies_per_query (int): Transformed copies per query (the positives).
            Defaults to 3.
        num_distractors (int): Unrelated database videos. Defaults to 24.
        width (int): Frame width (even). Defaults to 160.
        height (int): Frame height (even). Defaults to 120.
        fps (float): Frame rate of the files. Defaults to 5.
        min_seconds (float): Shortest duration. Defaults to 8.
        max_seconds (float): Longest duration. Defaults to 20.
        corrupt (int): Corrupt files added to ``train/``. Defaults to 0.
        overwrite (bool): Replace existing ``train/`` and ``eval/`` folders
            under ``out``. Defaults to False.
        verbose (bool): Print progress and a summary. Defaults to True.

    Returns:
        dict: Summary (counts, 1-fps lengths, paths, seconds taken).
    """
    _check_arguments(num_train, num_queries, copies_per_query, num_distractors,
                     width, height, fps, min_seconds, max_seconds, corrupt)
    t_start = time.time()
    train_dir, eval_dir, video_dir = _prepare_folders(out, overwrite)
    writer = _VideoWriter(seed, fps, width, height, min_seconds, max_seconds,
                          verbose)
    train_paths = _write_train_clips(writer, train_dir, num_train)
    queries, copies = _write_queries(writer, video_dir, num_queries,
                                     copies_per_query)
    database, metadata, relevance = _write_database(writer, video_dir, copies,
                                                    num_distractors)
    annotation = _write_json_files(writer, eval_dir, queries, database,
                                   relevance, metadata)
    _write_corrupt_files(writer, train_dir, train_paths, corrupt)

    train_len = [writer.lengths[p] for p in train_paths]
    eval_len = [
        v for p, v in writer.lengths.items() if p.startswith(video_dir)
    ]
    summary = dict(
        out=out,
        seed=seed,
        num_train=num_train,
        num_corrupt=corrupt,
        num_queries=num_queries,
        num_copies=len(copies),
        num_distractors=num_distractors,
        num_database=len(database),
        transforms_used=sorted({t['name']
                                for _, _, tl in copies
                                for t in tl}),
        train_frames_1fps=[
            min(train_len, default=0),
            max(train_len, default=0)
        ],
        eval_frames_1fps=[min(eval_len), max(eval_len)],
        megabytes=round(writer.num_bytes / 2**20, 2),
        seconds=round(time.time() - t_start, 1),
        annotation=annotation)
    writer.log('summary: ' + json.dumps(summary))
    return summary


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring).

    Args:
        argv (Sequence[str], optional): Arguments; None reads ``sys.argv``.

    Returns:
        argparse.Namespace: The options.
    """
    p = argparse.ArgumentParser(
        description='Write a small deterministic near-duplicate video '
        'benchmark (mp4 files + JSON annotation).')
    p.add_argument('--out', default='data/demo', help='output folder')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train', type=int, default=48)
    p.add_argument('--num-queries', type=int, default=8)
    p.add_argument('--copies-per-query', type=int, default=3)
    p.add_argument('--num-distractors', type=int, default=24)
    p.add_argument('--width', type=int, default=160)
    p.add_argument('--height', type=int, default=120)
    p.add_argument(
        '--fps', type=float, default=5.0, help='frame rate of the files')
    p.add_argument('--min-seconds', type=float, default=8.0)
    p.add_argument('--max-seconds', type=float, default=20.0)
    p.add_argument(
        '--corrupt',
        type=int,
        default=0,
        help='also write N corrupt files into train/')
    p.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing train/ and eval/ under --out')
    p.add_argument('--quiet', action='store_true')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the demo benchmark as the command line asks.

    Args:
        argv (Sequence[str], optional): Arguments; None reads ``sys.argv``.

    Returns:
        int: Exit status (0).
    """
    a = parse_args(argv)
    make_demo_dataset(
        a.out,
        seed=a.seed,
        num_train=a.num_train,
        num_queries=a.num_queries,
        copies_per_query=a.copies_per_query,
        num_distractors=a.num_distractors,
        width=a.width,
        height=a.height,
        fps=a.fps,
        min_seconds=a.min_seconds,
        max_seconds=a.max_seconds,
        corrupt=a.corrupt,
        overwrite=a.overwrite,
        verbose=not a.quiet)
    return 0


if __name__ == '__main__':
    sys.exit(main())
