"""RandAugment for clips, written with OpenCV and NumPy (no torchvision).

``num_ops`` operations are drawn uniformly (with replacement) from
:data:`RANDAUGMENT_OPS` and applied in turn, each with the SAME parameters to
every frame of the clip. The magnitude follows the common torchvision
convention: the strength is ``s = magnitude / (num_magnitude_bins - 1)``
(31 bins by default, so HAP-VR's magnitude 9 is ``s = 0.3``; use
``num_magnitude_bins=11`` for the original paper's 0-10 scale), and at
strength ``s``:

==============  ==============================================  ==========
op              parameter                                       sign
==============  ==============================================  ==========
identity        none                                            -
autocontrast    none (per channel min/max stretched to 0..255)  -
equalize        none (per channel histogram equalisation)       -
rotate          angle ``30 s`` degrees about the centre         random
solarize        invert pixels ``>= 255 (1 - s)``                -
color           saturation factor ``1 + 0.9 s``                 random
posterize       keep ``8 - round(4 s)`` bits                    -
contrast        contrast factor ``1 + 0.9 s``                   random
brightness      brightness factor ``1 + 0.9 s``                 random
sharpness       sharpness factor ``1 + 0.9 s``                  random
shear_x/y       shear ``0.3 s`` about the centre                random
translate_x/y   shift ``0.45 s`` of the width / height          random
==============  ==============================================  ==========

The statistics of autocontrast, equalize and contrast (min/max, histogram,
mean grey) are taken over the whole clip, so every frame gets the same
mapping. Blends follow the usual "enhance" definition
``clip(degenerate + f (img - degenerate))`` with the degenerate image being
the grey image (color), the mean grey (contrast), black (brightness) or a
3x3 smoothed image (sharpness; the one-pixel border is left as it is).
"""
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from .temporal import RngLike, _check_frames, get_rng, materialize_frames

__all__ = [
    'RANDAUGMENT_OPS', 'randaugment_op_value', 'apply_randaugment_op',
    'rand_augment', 'VideoRandAugment'
]

#: The op list of RandAugment.
RANDAUGMENT_OPS = ('identity', 'autocontrast', 'equalize', 'rotate',
                   'solarize', 'color', 'posterize', 'contrast', 'brightness',
                   'sharpness', 'shear_x', 'shear_y', 'translate_x',
                   'translate_y')

_SIGNED = ('rotate', 'color', 'contrast', 'brightness', 'sharpness', 'shear_x',
           'shear_y', 'translate_x', 'translate_y')

Fill = Union[int, Sequence[int]]


def randaugment_op_value(name: str,
                         strength: float,
                         sign: int = 1,
                         size: Tuple[int, int] = (224, 224)) -> float:
    """Parameter of one op at a given strength.

    Args:
        name (str): op name from :data:`RANDAUGMENT_OPS`.
        strength (float): ``s`` in [0, 1].
        sign (int): +1 or -1, used by the signed ops. Default: 1.
        size (tuple[int, int]): frame ``(H, W)`` (for translations).
            Default: (224, 224).

    Returns:
        float: the angle (degrees), factor, threshold, number of bits, shear
        or shift in pixels of the op (0 for the ops without parameter).
    """
    if name not in RANDAUGMENT_OPS:
        raise ValueError(f'unknown RandAugment op {name!r}; expected one of '
                         f'{RANDAUGMENT_OPS}')
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f'strength must be in [0, 1], got {strength}')
    sign = -1 if sign < 0 else 1
    if name == 'rotate':
        return sign * 30.0 * strength
    if name == 'solarize':
        return 255.0 * (1.0 - strength)
    if name == 'posterize':
        return float(8 - int(round(4 * strength)))
    if name in ('color', 'contrast', 'brightness', 'sharpness'):
        return 1.0 + sign * 0.9 * strength
    if name in ('shear_x', 'shear_y'):
        return sign * 0.3 * strength
    if name == 'translate_x':
        return sign * 0.45 * strength * size[1]
    if name == 'translate_y':
        return sign * 0.45 * strength * size[0]
    return 0.0


def _lut(frames: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a per-channel lookup table ``lut`` ``[3, 256]``."""
    lut = np.clip(np.rint(lut), 0, 255).astype(np.uint8)
    lut = np.ascontiguousarray(lut.T.reshape(256, 1, 3))
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        out[t] = cv2.LUT(frames[t], lut)
    return out


def _blend(frames: np.ndarray,
           factor: float,
           degenerate: Optional[np.ndarray] = None,
           offset: float = 0.0) -> np.ndarray:
    """``clip(f img + (1 - f) degenerate + offset)`` frame by frame."""
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        other = frames[t] if degenerate is None else degenerate[t]
        beta = 0.0 if degenerate is None else 1.0 - factor
        out[t] = cv2.addWeighted(frames[t], factor, other, beta, offset)
    return out


def _channel_hist(frames: np.ndarray) -> np.ndarray:
    """Histograms ``[3, 256]`` (int64) of each channel over the clip."""
    hist = np.zeros((3, 256), dtype=np.int64)
    for f in frames:
        for c in range(3):
            hist[c] += cv2.calcHist([f], [c], None, [256],
                                    [0, 256]).ravel().astype(np.int64)
    return hist


def _grey(frame: np.ndarray) -> np.ndarray:
    """Grey (ITU-R 601 luma) version of an RGB frame, as RGB."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def _warp(frames: np.ndarray, matrix: np.ndarray, fill: Fill) -> np.ndarray:
    H, W = frames.shape[1:3]
    border = tuple(int(v) for v in np.broadcast_to(fill, (3, )))
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        out[t] = cv2.warpAffine(
            frames[t],
            matrix, (W, H),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=border)
    return out


def apply_randaugment_op(frames: np.ndarray,
                         name: str,
                         value: float = 0.0,
                         fill: Fill = 0) -> np.ndarray:
    """Apply one RandAugment op with a given parameter to every frame.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8.
        name (str): op name from :data:`RANDAUGMENT_OPS`.
        value (float): the op's parameter (see
            :func:`randaugment_op_value`). Default: 0.
        fill (int | Sequence[int]): value of the pixels uncovered by the
            geometric ops. Default: 0.

    Returns:
        np.ndarray: new clip ``[T, H, W, 3]`` uint8.
    """
    frames = _check_frames(frames)
    H, W = frames.shape[1:3]
    cx, cy = (W - 1) / 2.0, (H - 1) / 2.0
    if name == 'identity':
        return frames.copy()
    if name == 'autocontrast':
        hist = _channel_hist(frames)
        lut = np.tile(np.arange(256, dtype=np.float32), (3, 1))
        for c in range(3):
            levels = np.flatnonzero(hist[c])
            lo, hi = levels[0], levels[-1]
            if hi > lo:
                lut[c] = (lut[c] - lo) * 255.0 / (hi - lo)
        return _lut(frames, lut)
    if name == 'equalize':
        hist = _channel_hist(frames)
        lut = np.tile(np.arange(256, dtype=np.float32), (3, 1))
        for c in range(3):
            cdf = np.cumsum(hist[c])
            cdf_min = cdf[np.flatnonzero(hist[c])[0]]
            total = cdf[-1]
            if total > cdf_min:  # else a single level: nothing to do
                lut[c] = (cdf - cdf_min) * 255.0 / (total - cdf_min)
        return _lut(frames, lut)
    if name == 'solarize':
        x = np.arange(256, dtype=np.float32)
        lut = np.where(x >= value, 255.0 - x, x)
        return _lut(frames, np.stack([lut] * 3))
    if name == 'posterize':
        bits = int(value)
        if not 1 <= bits <= 8:
            raise ValueError(f'posterize bits must be in [1, 8], got {bits}')
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        return frames & mask
    if name == 'color':
        return _blend(frames, value, np.stack([_grey(f) for f in frames]))
    if name == 'contrast':
        means = np.mean([cv2.mean(f)[:3] for f in frames], axis=0)
        mean_grey = float(means @ np.array([0.299, 0.587, 0.114]))
        return _blend(frames, value, None, (1.0 - value) * mean_grey)
    if name == 'brightness':
        return _blend(frames, value)
    if name == 'sharpness':
        kernel = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13
        smooth = frames.copy()
        for t in range(frames.shape[0]):
            inner = cv2.filter2D(frames[t], -1, kernel)
            smooth[t, 1:-1, 1:-1] = inner[1:-1, 1:-1]
        return _blend(frames, value, smooth)
    if name == 'rotate':
        return _warp(frames, cv2.getRotationMatrix2D((cx, cy), value, 1.0),
                     fill)
    if name == 'shear_x':
        m = np.array([[1, value, -value * cy], [0, 1, 0]], np.float64)
        return _warp(frames, m, fill)
    if name == 'shear_y':
        m = np.array([[1, 0, 0], [value, 1, -value * cx]], np.float64)
        return _warp(frames, m, fill)
    if name == 'translate_x':
        return _warp(frames, np.array([[1, 0, value], [0, 1, 0]], np.float64),
                     fill)
    if name == 'translate_y':
        return _warp(frames, np.array([[1, 0, 0], [0, 1, value]], np.float64),
                     fill)
    raise ValueError(f'unknown RandAugment op {name!r}; expected one of '
                     f'{RANDAUGMENT_OPS}')


def rand_augment(frames: np.ndarray,
                 rng: RngLike = None,
                 num_ops: int = 2,
                 magnitude: float = 9,
                 num_magnitude_bins: int = 31,
                 ops: Sequence[str] = RANDAUGMENT_OPS,
                 fill: Fill = 0) -> Tuple[np.ndarray, List[Tuple[str, float]]]:
    """RandAugment of a clip with the same ops for every frame.

    Args:
        frames (np.ndarray): clip ``[T, H, W, 3]`` uint8.
        rng (None | int | np.random.Generator): randomness. Default: None.
        num_ops (int): ops applied in turn. Default: 2.
        magnitude (float): magnitude in ``[0, num_magnitude_bins - 1]``.
            Default: 9.
        num_magnitude_bins (int): number of magnitude levels; the strength is
            ``magnitude / (num_magnitude_bins - 1)``. Default: 31.
        ops (Sequence[str]): op names to draw from. Default:
            :data:`RANDAUGMENT_OPS`.
        fill (int | Sequence[int]): fill of the geometric ops. Default: 0.

    Returns:
        tuple[np.ndarray, list[tuple[str, float]]]: the new clip
        ``[T, H, W, 3]`` uint8 and the ``(op, parameter)`` pairs applied.
    """
    frames = _check_frames(frames)
    if num_ops < 0:
        raise ValueError(f'num_ops must be >= 0, got {num_ops}')
    if num_magnitude_bins < 2 or not 0 <= magnitude <= num_magnitude_bins - 1:
        raise ValueError('magnitude must be in [0, num_magnitude_bins - 1] '
                         f'with num_magnitude_bins >= 2, got magnitude='
                         f'{magnitude}, num_magnitude_bins='
                         f'{num_magnitude_bins}')
    bad = set(ops) - set(RANDAUGMENT_OPS)
    if not ops or bad:
        raise ValueError(f'ops must be a non-empty subset of '
                         f'{RANDAUGMENT_OPS}, got {tuple(ops)}')
    rng = get_rng(rng)
    strength = magnitude / (num_magnitude_bins - 1)
    applied = []
    out = frames
    for _ in range(num_ops):
        name = ops[int(rng.integers(len(ops)))]
        sign = -1 if (name in _SIGNED and rng.random() < 0.5) else 1
        value = randaugment_op_value(name, strength, sign, out.shape[1:3])
        out = apply_randaugment_op(out, name, value, fill)
        applied.append((name, value))
    if out is frames:
        out = frames.copy()
    return out, applied


@TRANSFORMS.register_module()
class VideoRandAugment(BaseTransform):
    """RandAugment with one set of ops and parameters for the whole clip.

    Args:
        num_ops (int): ops per clip. Default: 2.
        magnitude (float): magnitude. Default: 9.
        num_magnitude_bins (int): magnitude levels (strength
            ``magnitude / (bins - 1)``). Default: 31.
        ops (Sequence[str] | None): op names; None for all of
            :data:`RANDAUGMENT_OPS`. Default: None.
        fill (int | Sequence[int]): fill of the geometric ops. Default: 0.

    Writes ``imgs`` and ``randaugment`` (the ``(op, parameter)`` pairs).
    """

    def __init__(self,
                 num_ops: int = 2,
                 magnitude: float = 9,
                 num_magnitude_bins: int = 31,
                 ops: Union[None, Sequence[str]] = None,
                 fill: Fill = 0) -> None:
        ops = tuple(RANDAUGMENT_OPS if ops is None else ops)
        bad = set(ops) - set(RANDAUGMENT_OPS)
        if not ops or bad:
            raise ValueError(f'ops must be a non-empty subset of '
                             f'{RANDAUGMENT_OPS}, got {ops}')
        if num_ops < 0:
            raise ValueError(f'num_ops must be >= 0, got {num_ops}')
        if (num_magnitude_bins < 2
                or not 0 <= magnitude <= num_magnitude_bins - 1):
            raise ValueError('magnitude must be in [0, num_magnitude_bins - '
                             f'1], got magnitude={magnitude}, '
                             f'num_magnitude_bins={num_magnitude_bins}')
        self.num_ops = int(num_ops)
        self.magnitude = magnitude
        self.num_magnitude_bins = int(num_magnitude_bins)
        self.ops = ops
        self.fill = fill

    def transform(self, results: dict) -> dict:
        """RandAugment ``results['imgs']`` ``[T, H, W, 3]``."""
        imgs, applied = rand_augment(
            materialize_frames(results), get_rng(None), self.num_ops,
            self.magnitude, self.num_magnitude_bins, self.ops, self.fill)
        results['imgs'] = imgs
        results['randaugment'] = applied
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_ops={self.num_ops}, '
                f'magnitude={self.magnitude}, '
                f'num_magnitude_bins={self.num_magnitude_bins}, '
                f'ops={self.ops}, fill={self.fill})')
