"""Spatial transforms of a view: crop, flip, overlays and blur.

The crop and the flip apply the SAME random parameters to every frame of a
view (one box, one flip decision). The frame transforms of the strong view
(text overlay, logo / emoji overlay, Gaussian blur) are drawn PER FRAME, as
the authors do (docs/method.md section 1): every frame gets its own
decision and its own parameters, so a view mixes altered and unaltered
frames (``per_frame=False`` gives one draw for the whole view instead).
Everything is written with OpenCV and NumPy only (no torchvision) and never
modifies its input in place.

The logo / emoji overlay is procedural: instead of a library of emoji
images it draws an emoji-like patch (a large body shape, smiley faces,
stars, rings, polygons) with OpenCV and alpha-blends it into the frame.
"""
import math
import string
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from .temporal import (BLACK, NOISE, PENDING_KEY, RngLike, _check_frames,
                       _check_indices, get_rng, materialize_frames)

__all__ = [
    'random_resized_crop_params', 'resized_crop', 'hflip',
    'render_text_overlay', 'render_logo_overlay', 'alpha_blend',
    'text_overlay', 'logo_overlay', 'gaussian_blur', 'per_frame_apply',
    'VideoRandomResizedCrop', 'VideoFlip', 'VideoTextOverlay',
    'VideoLogoOverlay', 'VideoGaussianBlur'
]

_INTERP = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
}

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN,
          cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL,
          cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)

_CHARS = string.ascii_letters + string.digits + '@#&!?.:-  '

#: The shapes :func:`render_logo_overlay` can draw.
LOGO_SHAPES = ('circle', 'polygon', 'star', 'ring', 'smiley')

Size = Union[int, Tuple[int, int]]


def _pair(size: Size, name: str = 'size') -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f'{name} must be a positive int or (h, w), got '
                         f'{size}')
    return size


def _check_range(rng_: Sequence[float],
                 name: str,
                 low: float = 0.0,
                 high: float = math.inf) -> Tuple[float, float]:
    lo, hi = float(rng_[0]), float(rng_[1])
    if not low <= lo <= hi <= high:
        raise ValueError(f'{name} must be (lo, hi) with {low} <= lo <= hi '
                         f'<= {high}, got {tuple(rng_)}')
    return lo, hi


def _check_prob(p: float, name: str = 'prob') -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f'{name} must be in [0, 1], got {p}')
    return float(p)


def random_resized_crop_params(height: int,
                               width: int,
                               scale: Tuple[float, float] = (0.08, 1.0),
                               ratio: Tuple[float, float] = (3 / 4, 4 / 3),
                               rng: RngLike = None,
                               max_attempts: int = 10
                               ) -> Tuple[int, int, int, int]:
    """Draw a RandomResizedCrop box.

    The box's area is ``U(scale) * H * W`` and its aspect ratio ``w / h`` is
    log-uniform in ``ratio``; up to ``max_attempts`` draws are tried until
    the box fits, then its position is uniform. If none fits, the largest
    centred box whose aspect ratio is ``W / H`` clamped to ``ratio`` is used.

    Args:
        height (int): frame height ``H``.
        width (int): frame width ``W``.
        scale (tuple[float, float]): area fraction range. Default:
            (0.08, 1.0).
        ratio (tuple[float, float]): aspect ratio range. Default: (3/4, 4/3).
        rng (None | int | np.random.Generator): randomness. Default: None.
        max_attempts (int): draws before the fallback. Default: 10.

    Returns:
        tuple[int, int, int, int]: ``(top, left, h, w)`` of the box.
    """
    if height < 1 or width < 1:
        raise ValueError(f'frame size must be positive, got {height}x{width}')
    s_lo, s_hi = _check_range(scale, 'scale', 0.0, 1.0)
    r_lo, r_hi = _check_range(ratio, 'ratio', 1e-6)
    rng = get_rng(rng)
    area = height * width
    for _ in range(max_attempts):
        target = area * rng.uniform(s_lo, s_hi)
        aspect = math.exp(rng.uniform(math.log(r_lo), math.log(r_hi)))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(height - h + 1))
            left = int(rng.integers(width - w + 1))
            return top, left, h, w
    aspect = width / height
    if aspect < r_lo:
        w, h = width, int(round(width / r_lo))
    elif aspect > r_hi:
        h, w = height, int(round(height * r_hi))
    else:
        h, w = height, width
    h, w = max(min(h, height), 1), max(min(w, width), 1)
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(frames: np.ndarray,
                 box: Tuple[int, int, int, int],
                 size: Size,
                 interpolation: str = 'bilinear',
                 indices: Optional[np.ndarray] = None,
                 rng: RngLike = None) -> np.ndarray:
    """Crop the same box out of every frame and resize it.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8.
        box (tuple[int, int, int, int]): ``(top, left, h, w)``.
        size (int | tuple[int, int]): output ``(h, w)`` (int: square).
        interpolation (str): ``nearest``, ``bilinear``, ``bicubic`` or
            ``area``. Default: 'bilinear'.
        indices (np.ndarray | None): optional temporal index list ``[T']``
            (see :mod:`.temporal`) to read the frames through: output frame
            ``t`` is made from ``frames[indices[t]]``; a ``BLACK`` entry gives
            a black frame and a ``NOISE`` entry uniform noise drawn at the
            output size. Default: None (all frames in order).
        rng (None | int | np.random.Generator): randomness of the noise
            frames. Default: None.

    Returns:
        np.ndarray: clip ``[T (or T'), size_h, size_w, 3]`` uint8.
    """
    frames = _check_frames(frames)
    if indices is None:
        indices = np.arange(frames.shape[0])
    indices = _check_indices(indices)
    bad = (indices >= frames.shape[0]) | (indices < NOISE)
    if bad.any():
        raise ValueError(f'frame indices must lie in [0, {frames.shape[0]}) '
                         f'or be BLACK={BLACK} / NOISE={NOISE}, got '
                         f'{indices[bad][:5].tolist()}')
    out_h, out_w = _pair(size)
    top, left, h, w = (int(v) for v in box)
    H, W = frames.shape[1:3]
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > H or left + w > W:
        raise ValueError(f'crop box (top, left, h, w)={tuple(box)} does not '
                         f'fit frames of size {H}x{W}')
    if interpolation not in _INTERP:
        raise ValueError(f'interpolation must be one of {sorted(_INTERP)}, '
                         f'got {interpolation!r}')
    flag = _INTERP[interpolation]
    if (indices == NOISE).any():
        rng = get_rng(rng)
    out = np.empty((indices.size, out_h, out_w, 3), dtype=np.uint8)
    for t, i in enumerate(indices.tolist()):
        if i == BLACK:
            out[t] = 0
        elif i == NOISE:
            out[t] = rng.integers(0, 256, size=out.shape[1:], dtype=np.uint8)
        else:
            crop = frames[i, top:top + h, left:left + w]
            out[t] = cv2.resize(crop, (out_w, out_h), interpolation=flag)
    return out


def hflip(frames: np.ndarray) -> np.ndarray:
    """Flip every frame horizontally.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]``.

    Returns:
        np.ndarray: new contiguous clip ``[T, H, W, 3]``.
    """
    return np.ascontiguousarray(_check_frames(frames)[:, :, ::-1])


def alpha_blend(frames: np.ndarray, colour: np.ndarray, alpha: np.ndarray,
                top: int, left: int) -> np.ndarray:
    """Alpha-blend one RGBA-like patch into every frame at one place.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8.
        colour (np.ndarray): patch colours ``[h, w, 3]`` (uint8 or float).
        alpha (np.ndarray): patch opacity ``[h, w]`` in [0, 1].
        top (int): patch row in the frame (the patch is clipped to the
            frame).
        left (int): patch column in the frame.

    Returns:
        np.ndarray: new clip ``[T, H, W, 3]`` uint8.
    """
    frames = _check_frames(frames)
    if colour.shape[:2] != alpha.shape or colour.ndim != 3:
        raise ValueError(f'colour [h, w, 3] and alpha [h, w] disagree: '
                         f'{colour.shape} vs {alpha.shape}')
    H, W = frames.shape[1:3]
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + alpha.shape[0], H)
    x1 = min(left + alpha.shape[1], W)
    out = frames.copy()
    if y1 <= y0 or x1 <= x0:
        return out
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None].astype(np.float32)
    c = colour[y0 - top:y1 - top, x0 - left:x1 - left].astype(np.float32)
    region = out[:, y0:y1, x0:x1].astype(np.float32)
    region = region * (1.0 - a) + c * a
    out[:, y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return out


def _fits(text: str, font: int, scale: float, width: int) -> bool:
    (tw, _), _ = cv2.getTextSize(text, font, scale, 1)
    return tw <= width


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a drawn mask: ``2 * area / boundary``."""
    ink = (mask > 127).astype(np.uint8)
    area = int(ink.sum())
    if area == 0:
        return 0.0
    inner = int(cv2.erode(ink, np.ones((3, 3), np.uint8)).sum())
    return 2.0 * area / max(area - inner, 1)


def _set_stroke(mask: np.ndarray, stroke: float) -> np.ndarray:
    """Set the strokes of a text mask to about ``stroke`` pixels wide.

    OpenCV's Hershey strokes are one pixel wide in OpenCV 4 and scale with
    the font in OpenCV 5, so the width is measured and then grown or thinned
    by a grey-scale dilation or erosion (never below one pixel), the same
    way in both.
    """
    now = _stroke_width(mask)
    change = int(round(stroke - now))
    if change < 0:  # thin strokes of 3+ pixels, to 2 pixels at least
        change = -min(-change, max(int(now) - 2, 0))
    if change == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                       (abs(change) + 1, abs(change) + 1))
    if change > 0:
        return cv2.dilate(mask, kernel)
    thin = cv2.erode(mask, kernel)
    return thin if thin.max() == mask.max() else mask


def render_text_overlay(
    height: int,
    width: int,
    rng: RngLike = None,
    font_size_range: Tuple[float, float] = (0.2, 0.5),
    alpha_range: Tuple[float, float] = (0.7, 1.0),
    max_length: int = 100,
    stroke_range: Tuple[float, float] = (0.04, 0.08)
) -> Dict:
    """Render a random caption with ``cv2.putText``, the authors' way.

    The font size (the text line's height, ascent plus descent) is a
    uniform fraction ``font_size_range`` of the frame's short side. A
    random string of ``max_length`` characters (letters, digits, a few
    symbols) is drawn in a random Hershey font and colour, with strokes
    ``stroke_range`` of the font size wide; the longest prefix that fits the
    frame's width is found and the caption is a prefix of it whose length
    is uniform in ``[1, longest]``. It is placed uniformly where it fits
    and has a uniform opacity in ``alpha_range``. When not one character
    fits, nothing is drawn (the authors' rule).

    Args:
        height (int): frame height ``H``.
        width (int): frame width ``W``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        font_size_range (tuple[float, float]): font size over
            ``min(H, W)``. Default: (0.2, 0.5).
        alpha_range (tuple[float, float]): opacity range. Default:
            (0.7, 1.0).
        max_length (int): characters drawn before fitting. Default: 100.
        stroke_range (tuple[float, float]): stroke width over the font
            size; the default gives the authors' mean text coverage (about
            4 % of a frame). Default: (0.04, 0.08).

    Returns:
        dict: ``colour`` ``[H, W, 3]`` uint8, ``alpha`` ``[H, W]`` float32
        in [0, 1] (zero off the text), ``text`` (the string, '' when
        nothing fits) and ``font_size`` (pixels).
    """
    rng = get_rng(rng)
    font_size = max(int(min(height, width) * rng.uniform(*font_size_range)), 1)
    chars = rng.integers(len(_CHARS), size=max_length)
    # a visible first character: every prefix draws something
    chars[0] = rng.integers(len(_CHARS.rstrip()))
    text = ''.join(_CHARS[int(i)] for i in chars)
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    (_, th), base = cv2.getTextSize('Ag', font, 1.0, 1)
    scale = font_size / max(th + base, 1)
    stroke = font_size * rng.uniform(*stroke_range)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    opacity = rng.uniform(*alpha_range)
    fx, fy = rng.random(2)
    alpha = np.zeros((height, width), dtype=np.float32)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = colour
    # longest prefix that fits the width (widths grow with the length)
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(text[:mid], font, scale, width):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0 or font_size > height:
        return dict(colour=canvas, alpha=alpha, text='', font_size=font_size)
    text = text[:int(rng.integers(1, lo + 1))]
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    x = int(fx * (width - tw))
    y = int(fy * max(height - th - base, 0)) + th
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.putText(mask, text, (x, y), font, scale, 255, 1, cv2.LINE_AA)
    mask = _set_stroke(mask, stroke).astype(np.float32)
    alpha = mask / max(float(mask.max()), 1.0) * opacity
    return dict(colour=canvas, alpha=alpha, text=text, font_size=font_size)


def _star(cx: float, cy: float, r: float, points: int,
          rot: float) -> np.ndarray:
    angles = rot + np.arange(2 * points) * math.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, r, 0.62 * r)
    pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)],
                   axis=1)
    return np.round(pts).astype(np.int32)


def _draw_shape(layer: np.ndarray, colour: np.ndarray, name: str, cx: float,
                cy: float, r: float, col: Tuple[int, int, int],
                rng: np.random.Generator) -> None:
    """Draw one shape into ``layer`` (its mask) and ``colour``."""
    centre = (int(round(cx)), int(round(cy)))
    shape = np.zeros_like(layer)
    if name == 'circle' or name == 'smiley':
        cv2.circle(shape, centre, max(int(round(r)), 1), 255, -1, cv2.LINE_AA)
    elif name == 'ring':
        thick = max(int(round(r * rng.uniform(0.45, 0.65))), 1)
        cv2.circle(shape, centre, max(int(round(r - thick / 2)), 1), 255,
                   thick, cv2.LINE_AA)
    elif name == 'polygon':
        k = int(rng.integers(6, 11))
        ang = rng.uniform(0, 2 * math.pi) + np.linspace(
            0, 2 * math.pi, k, endpoint=False)
        rad = r * rng.uniform(0.9, 1.0, size=k)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)],
                       axis=1)
        cv2.fillPoly(shape, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    else:  # star
        pts = _star(cx, cy, r, int(rng.integers(5, 9)),
                    rng.uniform(0, 2 * math.pi))
        cv2.fillPoly(shape, [pts], 255, cv2.LINE_AA)
    colour[shape > 0] = col
    np.maximum(layer, shape, out=layer)
    if name == 'smiley':  # eyes and mouth in a dark "ink" colour
        ink = tuple(int(v) // 4 for v in col)
        er = max(int(round(r * 0.12)), 1)
        for sx in (-1, 1):
            eye = (int(round(cx + sx * 0.35 * r)), int(round(cy - 0.3 * r)))
            cv2.circle(colour, eye, er, ink, -1, cv2.LINE_AA)
        cv2.ellipse(colour, centre,
                    (max(int(round(0.55 * r)), 1), max(
                        int(round(0.45 * r)), 1)), 0, 20, 160, ink,
                    max(int(round(0.1 * r)), 1), cv2.LINE_AA)


def render_logo_overlay(size: int,
                        rng: RngLike = None,
                        shapes: Sequence[str] = LOGO_SHAPES) -> Dict:
    """Render a procedural logo / emoji-like patch.

    Like an emoji image, the patch is mostly filled by one body shape from
    ``shapes`` (a disc, a smiley face with eyes and mouth, a star, a thick
    ring or a near-regular polygon) centred in it with a radius of 0.48 to
    0.5 of the side, in a random colour; up to two smaller decorations
    (random shapes of ``shapes``, a quarter to half that radius) are drawn
    on top. Everything is anti-aliased; the union of the shapes is the
    patch's mask.

    Args:
        size (int): patch side in pixels, ``>= 4``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        shapes (Sequence[str]): shape names from :data:`LOGO_SHAPES`.
            Default: all.

    Returns:
        dict: ``colour`` ``[size, size, 3]`` uint8, ``mask``
        ``[size, size]`` float32 in [0, 1] and ``shapes`` (names drawn,
        the body first).
    """
    size = int(size)
    if size < 4:
        raise ValueError(f'logo size must be >= 4 pixels, got {size}')
    bad = set(shapes) - set(LOGO_SHAPES)
    if not shapes or bad:
        raise ValueError(f'shapes must be a non-empty subset of {LOGO_SHAPES}'
                         f', got {tuple(shapes)}')
    rng = get_rng(rng)
    colour = np.zeros((size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    c = (size - 1) / 2.0
    drawn = []
    for k in range(1 + int(rng.integers(3))):
        name = shapes[int(rng.integers(len(shapes)))]
        col = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if k == 0:  # the body
            r = rng.uniform(0.48, 0.5) * size
            cx = cy = c
        else:  # a decoration inside the patch
            r = rng.uniform(0.25, 0.5) * size / 2
            cx = c + rng.uniform(-1, 1) * (size / 2 - r)
            cy = c + rng.uniform(-1, 1) * (size / 2 - r)
        _draw_shape(mask, colour, name, cx, cy, r, col, rng)
        drawn.append(name)
    return dict(
        colour=colour, mask=mask.astype(np.float32) / 255.0, shapes=drawn)


def text_overlay(frames: np.ndarray,
                 rng: RngLike = None,
                 **kwargs) -> Tuple[np.ndarray, str]:
    """Write one random caption on the given frames.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8 (one frame for the
            per-frame rule).
        rng (None | int | np.random.Generator): randomness. Default: None.
        **kwargs: options of :func:`render_text_overlay`.

    Returns:
        tuple[np.ndarray, str]: new clip ``[T, H, W, 3]`` and the text
        ('' when none fits).
    """
    frames = _check_frames(frames)
    over = render_text_overlay(frames.shape[1], frames.shape[2], rng, **kwargs)
    rows = np.flatnonzero(over['alpha'].any(axis=1))
    cols = np.flatnonzero(over['alpha'].any(axis=0))
    if rows.size == 0:
        return frames.copy(), over['text']
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out = alpha_blend(frames, over['colour'][y0:y1, x0:x1],
                      over['alpha'][y0:y1, x0:x1], int(y0), int(x0))
    return out, over['text']


def logo_overlay(
    frames: np.ndarray,
    rng: RngLike = None,
    size_range: Tuple[float, float] = (0.2, 0.5),
    alpha_range: Tuple[float, float] = (0.7, 1.0),
    shapes: Sequence[str] = LOGO_SHAPES
) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """Alpha-blend one procedural logo / emoji into the given frames.

    As the authors' emoji overlay: the (square) patch's side is a uniform
    fraction ``size_range`` of the largest side that fits, ``min(H, W)``;
    its top-left corner is uniform where it fits; its opacity is uniform in
    ``alpha_range``.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8 (one frame for the
            per-frame rule).
        rng (None | int | np.random.Generator): randomness. Default: None.
        size_range (tuple[float, float]): patch side over ``min(H, W)``.
            Default: (0.2, 0.5).
        alpha_range (tuple[float, float]): opacity range. Default:
            (0.7, 1.0).
        shapes (Sequence[str]): see :func:`render_logo_overlay`.

    Returns:
        tuple[np.ndarray, tuple[int, int, int]]: new clip ``[T, H, W, 3]``
        and the patch's ``(top, left, side)`` (side 0 when the frame is
        too small for one).
    """
    frames = _check_frames(frames)
    rng = get_rng(rng)
    H, W = frames.shape[1:3]
    side = int(rng.uniform(*size_range) * min(H, W))
    if side < 4:  # frame too small for a logo
        return frames.copy(), (0, 0, 0)
    logo = render_logo_overlay(side, rng, shapes)
    top = int(rng.random() * (H - side))
    left = int(rng.random() * (W - side))
    alpha = logo['mask'] * rng.uniform(*alpha_range)
    return alpha_blend(frames, logo['colour'], alpha, top,
                       left), (top, left, side)


def per_frame_apply(frames: np.ndarray,
                    prob: float,
                    fn: Callable[[np.ndarray, np.random.Generator], Tuple],
                    rng: np.random.Generator,
                    per_frame: bool = True) -> Tuple[np.ndarray, List]:
    """Apply a random frame transform with probability ``prob``.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8 (not modified).
        prob (float): probability of applying ``fn``.
        fn (callable): ``fn(clip, rng) -> (new clip, info)`` drawing its own
            parameters.
        rng (np.random.Generator): randomness.
        per_frame (bool): True: every frame decides and draws its
            parameters on its own (the authors' rule); False: one decision
            and one draw for the whole clip. Default: True.

    Returns:
        tuple[np.ndarray, list]: the clip ``[T, H, W, 3]`` (the input
        itself when nothing was applied) and ``fn``'s info per frame (None
        where not applied).
    """
    frames = _check_frames(frames)
    num = frames.shape[0]
    if not per_frame:
        if num and rng.random() < prob:
            out, info = fn(frames, rng)
            return out, [info] * num
        return frames, [None] * num
    hits = np.flatnonzero(rng.random(num) < prob)
    infos: List = [None] * num
    if hits.size == 0:
        return frames, infos
    out = frames.copy()
    for t in hits.tolist():
        new, infos[t] = fn(frames[t:t + 1], rng)
        out[t] = new[0]
    return out, infos


def gaussian_blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Blur every frame with the same Gaussian.

    The kernel size is derived from ``sigma`` by OpenCV (about
    ``6 sigma + 1``, odd).

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8.
        sigma (float): standard deviation in pixels, ``> 0``.

    Returns:
        np.ndarray: new clip ``[T, H, W, 3]`` uint8.
    """
    frames = _check_frames(frames)
    if sigma <= 0:
        raise ValueError(f'sigma must be > 0, got {sigma}')
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        out[t] = cv2.GaussianBlur(
            frames[t], (0, 0),
            sigmaX=float(sigma),
            sigmaY=float(sigma),
            borderType=cv2.BORDER_REFLECT_101)
    return out


@TRANSFORMS.register_module()
class VideoRandomResizedCrop(BaseTransform):
    """RandomResizedCrop with one box for all frames of the clip.

    Args:
        size (int | tuple[int, int]): output size (int: square). Default: 224.
        scale (tuple[float, float]): area fraction range; HAP-VR uses
            (0.8, 1.0) for the weak and (0.5, 1.0) for the strong view.
            Default: (0.8, 1.0).
        ratio (tuple[float, float]): aspect ratio range. Default: (3/4, 4/3).
        interpolation (str): resize interpolation. Default: 'bilinear'.

    Writes ``imgs`` ``[T, size_h, size_w, 3]``, ``img_shape`` and
    ``crop_box`` ``(top, left, h, w)``.
    """

    def __init__(self,
                 size: Size = 224,
                 scale: Tuple[float, float] = (0.8, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3),
                 interpolation: str = 'bilinear') -> None:
        self.size = _pair(size)
        self.scale = _check_range(scale, 'scale', 0.0, 1.0)
        self.ratio = _check_range(ratio, 'ratio', 1e-6)
        if interpolation not in _INTERP:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(_INTERP)}, got {interpolation!r}')
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        """Crop and resize ``results['imgs']`` ``[T, H, W, 3]``.

        A pending temporal index list is applied while cropping (the source
        frames are read once, never copied whole).
        """
        imgs = _check_frames(results['imgs'])
        rng = get_rng(None)
        box = random_resized_crop_params(imgs.shape[1], imgs.shape[2],
                                         self.scale, self.ratio, rng)
        results['imgs'] = resized_crop(imgs, box, self.size,
                                       self.interpolation,
                                       results.pop(PENDING_KEY, None), rng)
        results['img_shape'] = self.size
        results['crop_box'] = box
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'scale={self.scale}, ratio={self.ratio}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class VideoFlip(BaseTransform):
    """Horizontal flip of all frames with probability ``flip_ratio``.

    Args:
        flip_ratio (float): flip probability. Default: 0.5.

    Writes ``imgs`` and ``flip`` (bool).
    """

    def __init__(self, flip_ratio: float = 0.5) -> None:
        self.flip_ratio = _check_prob(flip_ratio, 'flip_ratio')

    def transform(self, results: dict) -> dict:
        """Maybe flip ``results['imgs']`` ``[T, H, W, 3]``."""
        imgs = materialize_frames(results)
        flip = bool(get_rng(None).random() < self.flip_ratio)
        if flip:
            results['imgs'] = hflip(imgs)
        results['flip'] = flip
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(flip_ratio={self.flip_ratio})'


@TRANSFORMS.register_module()
class VideoTextOverlay(BaseTransform):
    """Random captions (``cv2.putText``), drawn per frame with ``prob``.

    Every frame decides on its own (``prob``) and gets its own caption,
    font, size, colour, opacity and place (see :func:`render_text_overlay`).

    Args:
        prob (float): probability per frame. Default: 0.3.
        font_size_range (tuple[float, float]): font size over the frame's
            short side. Default: (0.2, 0.5).
        alpha_range (tuple[float, float]): opacity. Default: (0.7, 1.0).
        per_frame (bool): draw per frame (the authors' rule); False: one
            draw for the whole view. Default: True.

    Writes ``imgs`` and ``overlay_text`` (per frame: the string, or None
    where no caption was drawn).
    """

    def __init__(self,
                 prob: float = 0.3,
                 font_size_range: Tuple[float, float] = (0.2, 0.5),
                 alpha_range: Tuple[float, float] = (0.7, 1.0),
                 per_frame: bool = True) -> None:
        self.prob = _check_prob(prob)
        lo, _ = _check_range(font_size_range, 'font_size_range', 0, 1)
        if lo <= 0:
            raise ValueError('font_size_range must be above 0, got '
                             f'{tuple(font_size_range)}')
        self.kwargs = dict(
            font_size_range=tuple(font_size_range),
            alpha_range=_check_range(alpha_range, 'alpha_range', 0, 1))
        self.per_frame = bool(per_frame)

    def _one(self, clip: np.ndarray, rng: np.random.Generator) -> Tuple:
        out, text = text_overlay(clip, rng, **self.kwargs)
        return out, (text or None)

    def transform(self, results: dict) -> dict:
        """Maybe caption the frames of ``results['imgs']`` ``[T, H, W, 3]``.
        """
        imgs = materialize_frames(results)
        imgs, texts = per_frame_apply(imgs, self.prob, self._one,
                                      get_rng(None), self.per_frame)
        results['imgs'] = imgs
        results['overlay_text'] = texts
        return results

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.kwargs.items())
        return (f'{self.__class__.__name__}(prob={self.prob}, {args}, '
                f'per_frame={self.per_frame})')


@TRANSFORMS.register_module()
class VideoLogoOverlay(BaseTransform):
    """Procedural logo / emoji, drawn per frame with probability ``prob``.

    Every frame decides on its own and gets its own patch, size, opacity
    and place (see :func:`logo_overlay`). The patch is drawn with OpenCV
    (see :func:`render_logo_overlay`), not taken from emoji images.

    Args:
        prob (float): probability per frame. Default: 0.3.
        size_range (tuple[float, float]): patch side over the largest side
            that fits, ``min(H, W)``. Default: (0.2, 0.5).
        alpha_range (tuple[float, float]): opacity. Default: (0.7, 1.0).
        shapes (Sequence[str]): shapes to draw from. Default: all of
            :data:`LOGO_SHAPES`.
        per_frame (bool): draw per frame (the authors' rule); False: one
            draw for the whole view. Default: True.

    Writes ``imgs`` and ``overlay_logo`` (per frame: ``(top, left, side)``
    or None).
    """

    def __init__(self,
                 prob: float = 0.3,
                 size_range: Tuple[float, float] = (0.2, 0.5),
                 alpha_range: Tuple[float, float] = (0.7, 1.0),
                 shapes: Sequence[str] = LOGO_SHAPES,
                 per_frame: bool = True) -> None:
        self.prob = _check_prob(prob)
        bad = set(shapes) - set(LOGO_SHAPES)
        if not shapes or bad:
            raise ValueError(f'shapes must be a non-empty subset of '
                             f'{LOGO_SHAPES}, got {tuple(shapes)}')
        self.kwargs = dict(
            size_range=_check_range(size_range, 'size_range', 0, 1),
            alpha_range=_check_range(alpha_range, 'alpha_range', 0, 1),
            shapes=tuple(shapes))
        self.per_frame = bool(per_frame)

    def _one(self, clip: np.ndarray, rng: np.random.Generator) -> Tuple:
        out, where = logo_overlay(clip, rng, **self.kwargs)
        return out, (where if where[2] else None)

    def transform(self, results: dict) -> dict:
        """Maybe stamp logos on the frames of ``results['imgs']``
        ``[T, H, W, 3]``."""
        imgs = materialize_frames(results)
        imgs, where = per_frame_apply(imgs, self.prob, self._one,
                                      get_rng(None), self.per_frame)
        results['imgs'] = imgs
        results['overlay_logo'] = where
        return results

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.kwargs.items())
        return (f'{self.__class__.__name__}(prob={self.prob}, {args}, '
                f'per_frame={self.per_frame})')


@TRANSFORMS.register_module()
class VideoGaussianBlur(BaseTransform):
    """Gaussian blur, drawn per frame with probability ``prob``.

    Args:
        prob (float): probability per frame. Default: 0.5.
        sigma_range (tuple[float, float]): the sigma (radius) is uniform in
            this range, in pixels, drawn per blurred frame.
            Default: (0.1, 2.0).
        per_frame (bool): draw per frame (the authors' rule); False: one
            draw for the whole view. Default: True.

    Writes ``imgs`` and ``blur_sigma`` (per frame: float or None).
    """

    def __init__(self,
                 prob: float = 0.5,
                 sigma_range: Tuple[float, float] = (0.1, 2.0),
                 per_frame: bool = True) -> None:
        self.prob = _check_prob(prob)
        self.sigma_range = _check_range(sigma_range, 'sigma_range', 1e-6)
        self.per_frame = bool(per_frame)

    def _one(self, clip: np.ndarray, rng: np.random.Generator) -> Tuple:
        sigma = float(rng.uniform(*self.sigma_range))
        return gaussian_blur(clip, sigma), sigma

    def transform(self, results: dict) -> dict:
        """Maybe blur the frames of ``results['imgs']`` ``[T, H, W, 3]``."""
        imgs = materialize_frames(results)
        imgs, sigmas = per_frame_apply(imgs, self.prob, self._one,
                                       get_rng(None), self.per_frame)
        results['imgs'] = imgs
        results['blur_sigma'] = sigmas
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'sigma_range={self.sigma_range}, '
                f'per_frame={self.per_frame})')
