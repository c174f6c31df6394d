"""Temporal transformations of HAP-VR's strong view (docs/method.md s. 1).

Every operation works on a 1-D integer *index list* into the frames of a clip
and returns a new index list; two negative sentinels stand for synthetic
frames: :data:`BLACK` (an all-zero frame) and :data:`NOISE` (a frame of
uniform random noise). :func:`gather_frames` turns an index list into frames.

The registered classes are thin wrappers and are *lazy*: they leave
``results['imgs']`` (``[T, H, W, 3]`` uint8) untouched and compose the index
list kept under ``results['temporal_inds']`` (:data:`PENDING_KEY`; the
identity when absent), so the ``2W`` full-resolution source frames are
never copied as a whole: only the ``W`` frames the crop keeps are read.
:func:`materialize_frames` applies a pending index list; every frame
transform of this package does so before reading ``imgs``
(:class:`~hapvr_mm.datasets.transforms.frame.VideoRandomResizedCrop` crops
straight from the source frames), :class:`HAPVRViews` does so at the end of
each view, and :class:`MaterializeFrames` does so anywhere in a pipeline
(put it before transforms from other packages).

Randomness comes from a :class:`numpy.random.Generator`. The registered
classes draw a fresh generator from NumPy's global random state on every
call (see :func:`get_rng`), so ``np.random.seed`` (which mmengine sets per
data-loader worker) makes a pipeline reproducible.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from mmaction.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

__all__ = [
    'BLACK', 'NOISE', 'TEMPORAL_TRANSFORMS', 'get_rng', 'gather_frames',
    'shuffle_dropout', 'fast_forward', 'slow_motion', 'reverse', 'pause',
    'choose_temporal_transform', 'random_temporal_transform',
    'temporal_crop_indices', 'random_temporal_crop', 'ShuffleDropout',
    'FastForward', 'SlowMotion', 'TemporalReverse', 'TemporalPause',
    'RandomTemporalTransform', 'RandomTemporalCrop', 'PENDING_KEY',
    'pending_indices', 'materialize_frames', 'MaterializeFrames'
]

#: Index sentinel of an all-black (zero) frame.
BLACK = -1
#: Index sentinel of a frame of uniform random noise in [0, 255].
NOISE = -2

#: Key of ``results`` holding an index list not yet applied to ``imgs``.
PENDING_KEY = 'temporal_inds'

#: Names of the five temporal transformations, in the order of their
#: probabilities in :func:`choose_temporal_transform`.
TEMPORAL_TRANSFORMS = ('shuffle_dropout', 'fast_forward', 'slow_motion',
                       'reverse', 'pause')

RngLike = Union[None, int, np.random.Generator]


def get_rng(rng: RngLike = None) -> np.random.Generator:
    """Return a NumPy generator.

    Args:
        rng (None | int | np.random.Generator): a generator (returned as is),
            a seed, or None to draw a fresh generator seeded from NumPy's
            global random state (``np.random.seed`` controls it). Default:
            None.

    Returns:
        np.random.Generator: the generator to use.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise ValueError('rng must be None, an int seed or a '
                     f'np.random.Generator, got {type(rng).__name__}')


def _check_indices(indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 1:
        raise ValueError('expected a 1-D index list [T], got shape '
                         f'{tuple(indices.shape)}')
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise ValueError('expected integer frame indices, got dtype '
                         f'{indices.dtype}')
    return indices.astype(np.int64, copy=False)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError('expected frames of shape [T, H, W, 3], got '
                         f'{tuple(frames.shape)}')
    if frames.dtype != np.uint8:
        raise ValueError(f'expected uint8 frames, got dtype {frames.dtype}')
    return frames


def gather_frames(frames: np.ndarray,
                  indices: np.ndarray,
                  rng: RngLike = None) -> np.ndarray:
    """Materialise an index list into frames.

    Args:
        frames (np.ndarray): source clip ``[T, H, W, 3]`` uint8.
        indices (np.ndarray): index list ``[T']`` with values in ``[0, T)``
            or the sentinels :data:`BLACK` / :data:`NOISE`.
        rng (None | int | np.random.Generator): randomness of the noise
            frames (each noise frame is drawn independently). Default: None.

    Returns:
        np.ndarray: new frames ``[T', H, W, 3]`` uint8.
    """
    frames = _check_frames(frames)
    indices = _check_indices(indices)
    num = frames.shape[0]
    bad = (indices >= num) | (indices < NOISE)
    if bad.any():
        raise ValueError(f'frame indices must lie in [0, {num}) or be '
                         f'BLACK={BLACK} / NOISE={NOISE}, got '
                         f'{indices[bad][:5].tolist()}')
    out = frames[np.clip(indices, 0, None)]
    black = indices == BLACK
    noise = indices == NOISE
    if black.any():
        out[black] = 0
    if noise.any():
        rng = get_rng(rng)
        out[noise] = rng.integers(
            0,
            256,
            size=(int(noise.sum()), ) + frames.shape[1:],
            dtype=np.uint8)
    return out


def shuffle_dropout(indices: np.ndarray,
                    rng: RngLike = None,
                    seg_len_range: Tuple[int, int] = (4, 16),
                    shuffle_prob: float = 0.5,
                    drop_prob: float = 0.3,
                    remove_prob: float = 0.5,
                    noise_prob: float = 0.5,
                    return_info: bool = False
                    ) -> Union[np.ndarray, Tuple[np.ndarray, Dict]]:
    """Cut into equal segments, maybe shuffle them, and drop out some.

    The authors' rule (docs/method.md section 1, quirks included):

    1. ONE segment length ``L`` is drawn uniformly from
       ``[seg_len_range[0], seg_len_range[1])`` for the whole list; the
       list is cut into ``T // L`` segments of length ``L`` and the last
       ``T mod L`` indices are dropped. A list shorter than ``L`` is one
       segment (nothing dropped).
    2. With ``shuffle_prob`` the segment order is permuted.
    3. Each segment gets a code: 0 (kept), or, when marked (``drop_prob``),
       1 (removed, ``remove_prob``) or 2 (its frames replaced).
    4. Only when ``0 < sum of the codes < number of segments`` are the code
       1 segments removed and the frames of the code 2 segments replaced,
       EACH FRAME independently by :data:`NOISE` (``noise_prob``) or
       :data:`BLACK`; otherwise every segment is kept as it is (steps 1-2
       still apply).

    Args:
        indices (np.ndarray): index list ``[T]``, ``T >= 1``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        seg_len_range (tuple[int, int]): half-open range of the segment
            length. Default: (4, 16).
        shuffle_prob (float): probability of shuffling the segment order.
            Default: 0.5.
        drop_prob (float): probability of marking each segment. Default: 0.3.
        remove_prob (float): probability that a marked segment is removed
            (code 1; else code 2). Default: 0.5.
        noise_prob (float): probability that a replaced frame is noise
            rather than black. Default: 0.5.
        return_info (bool): also return a dict with ``seg_len`` (``L``),
            ``num_segments``, ``dropped_tail`` (indices dropped at the end),
            ``shuffled``, ``codes`` (``[num_segments]``, in the final order)
            and ``applied`` (whether the codes were applied).
            Default: False.

    Returns:
        np.ndarray | tuple[np.ndarray, dict]: the new index list ``[T']``
        (int64), ``T' <= T``, and the info dict with ``return_info``.
    """
    indices = _check_indices(indices)
    if indices.size == 0:
        raise ValueError('shuffle_dropout needs a non-empty index list, got '
                         'shape (0,)')
    lo, hi = int(seg_len_range[0]), int(seg_len_range[1])
    if not 1 <= lo < hi:
        raise ValueError('seg_len_range must be (lo, hi) with 1 <= lo < hi, '
                         f'got {tuple(seg_len_range)}')
    rng = get_rng(rng)
    seg_len = int(rng.integers(lo, hi))
    if indices.size < seg_len:
        seg_len = indices.size
    num = indices.size // seg_len
    segments = indices[:num * seg_len].reshape(num, seg_len)
    shuffled = bool(rng.random() < shuffle_prob)
    if shuffled:
        segments = segments[rng.permutation(num)]
    marked = rng.random(num) < drop_prob
    codes = marked * np.where(rng.random(num) < remove_prob, 1, 2)
    applied = bool(0 < codes.sum() < num)
    if applied:
        segments = segments.copy()
        replaced = codes == 2
        fill = np.where(
            rng.random((int(replaced.sum()), seg_len)) < noise_prob, NOISE,
            BLACK)
        segments[replaced] = fill
        segments = segments[codes != 1]
    out = segments.reshape(-1).copy()
    if not return_info:
        return out
    return out, dict(
        seg_len=seg_len,
        num_segments=num,
        dropped_tail=indices.size - num * seg_len,
        shuffled=shuffled,
        codes=codes,
        applied=applied)


def fast_forward(indices: np.ndarray,
                 rng: RngLike = None,
                 speeds: Sequence[int] = (2, 3)) -> np.ndarray:
    """Keep every k-th index from the first, k drawn uniformly from
    ``speeds``.

    Args:
        indices (np.ndarray): index list ``[T]``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        speeds (Sequence[int]): candidate speed-ups. Default: (2, 3).

    Returns:
        np.ndarray: ``indices[::k]``, ``ceil(T / k)`` entries.
    """
    indices = _check_indices(indices)
    if len(speeds) == 0 or min(speeds) < 1:
        raise ValueError(f'speeds must be positive ints, got {speeds}')
    rng = get_rng(rng)
    k = int(speeds[int(rng.integers(len(speeds)))])
    return indices[::k].copy()


def slow_motion(indices: np.ndarray, factor: int = 2) -> np.ndarray:
    """Repeat every index ``factor`` times in place.

    Args:
        indices (np.ndarray): index list ``[T]``.
        factor (int): repetitions. Default: 2.

    Returns:
        np.ndarray: index list ``[factor * T]``.
    """
    indices = _check_indices(indices)
    if factor < 1:
        raise ValueError(f'factor must be >= 1, got {factor}')
    return np.repeat(indices, factor)


def reverse(indices: np.ndarray) -> np.ndarray:
    """Reverse the index list.

    Args:
        indices (np.ndarray): index list ``[T]``.

    Returns:
        np.ndarray: ``indices[::-1]`` ``[T]``.
    """
    return _check_indices(indices)[::-1].copy()


def pause(indices: np.ndarray,
          rng: RngLike = None,
          max_len: int = 7) -> np.ndarray:
    """Freeze the clip on one random frame.

    As the authors do: a position ``p`` is drawn uniformly from
    ``[0, T - 1)`` (any frame but the last; 0 when ``T = 1``) and
    ``indices[p]`` gets ``n`` extra copies right after itself, ``n``
    uniform in ``[0, max_len)`` (so ``n = 0``, no pause, is possible).

    Args:
        indices (np.ndarray): index list ``[T]``, ``T >= 1``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        max_len (int): exclusive bound of the extra copies (``W / 4`` in
            HAP-VR: 0 to ``W / 4 - 1`` copies). Default: 7.

    Returns:
        np.ndarray: index list ``[T + n]``.
    """
    indices = _check_indices(indices)
    if indices.size == 0:
        raise ValueError('pause needs a non-empty index list, got shape (0,)')
    if max_len < 1:
        raise ValueError(f'max_len must be >= 1, got {max_len}')
    rng = get_rng(rng)
    pos = int(rng.integers(max(indices.size - 1, 1)))
    num = int(rng.integers(max_len))
    return np.concatenate([
        indices[:pos + 1],
        np.full(num, indices[pos], dtype=np.int64), indices[pos + 1:]
    ])


def choose_temporal_transform(probs: Sequence[float],
                              rng: RngLike = None) -> int:
    """Draw which temporal transformation to apply.

    Args:
        probs (Sequence[float]): probabilities of the options, in order;
            they must be >= 0 and sum to at most 1. ``1 - sum(probs)`` is the
            probability of applying none.

    Returns:
        int: the chosen option's position in ``probs``, or -1 for none.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1 or (probs < 0).any() or probs.sum() > 1 + 1e-6:
        raise ValueError('probs must be non-negative and sum to <= 1, got '
                         f'{probs.tolist()}')
    u = get_rng(rng).random()
    cum = np.cumsum(probs)
    pos = int(np.searchsorted(cum, u, side='right'))
    return pos if pos < probs.size else -1


def random_temporal_transform(
    indices: np.ndarray,
    window: int,
    rng: RngLike = None,
    probs: Optional[Dict[str, float]] = None,
    shuffle_dropout_cfg: Optional[dict] = None,
    speeds: Sequence[int] = (2, 3)
) -> Tuple[np.ndarray, str]:
    """Apply one temporal transformation chosen at random.

    Args:
        indices (np.ndarray): index list ``[T]``.
        window (int): the window ``W``; pause inserts 0 to
            ``max(W // 4, 1) - 1`` extra copies.
        rng (None | int | np.random.Generator): randomness. Default: None.
        probs (dict | None): probability per name of
            :data:`TEMPORAL_TRANSFORMS` (missing names: 0). Default (None):
            ``shuffle_dropout=0.5`` and 0.1 for each other one.
        shuffle_dropout_cfg (dict | None): keyword arguments of
            :func:`shuffle_dropout`. Default: None.
        speeds (Sequence[int]): fast-forward speeds. Default: (2, 3).

    Returns:
        tuple[np.ndarray, str]: the new index list and the name applied
        (``'none'`` when none was).
    """
    if probs is None:
        probs = dict(
            shuffle_dropout=0.5,
            fast_forward=0.1,
            slow_motion=0.1,
            reverse=0.1,
            pause=0.1)
    unknown = set(probs) - set(TEMPORAL_TRANSFORMS)
    if unknown:
        raise ValueError(f'unknown temporal transforms {sorted(unknown)}; '
                         f'expected names in {TEMPORAL_TRANSFORMS}')
    rng = get_rng(rng)
    choice = choose_temporal_transform(
        [probs.get(name, 0.0) for name in TEMPORAL_TRANSFORMS], rng)
    if choice < 0:
        return _check_indices(indices).copy(), 'none'
    name = TEMPORAL_TRANSFORMS[choice]
    if name == 'shuffle_dropout':
        out = shuffle_dropout(indices, rng, **(shuffle_dropout_cfg or {}))
    elif name == 'fast_forward':
        out = fast_forward(indices, rng, speeds)
    elif name == 'slow_motion':
        out = slow_motion(indices)
    elif name == 'reverse':
        out = reverse(indices)
    else:
        out = pause(indices, rng, max(window // 4, 1))
    return out, name


def temporal_crop_indices(num: int,
                          window: int,
                          rng: RngLike = None,
                          pad_mode: str = 'loop') -> np.ndarray:
    """Positions of a random temporal crop of ``window`` out of ``num``.

    When ``num >= window`` a random contiguous run is taken. When fewer
    remain, ``pad_mode='loop'`` loops the sequence (positions
    ``(s + arange(window)) % num`` from a random start ``s``, the way a
    short video is looped) and ``'repeat_last'`` keeps all positions and
    repeats the last one.

    Args:
        num (int): length of the list to crop, ``>= 1``.
        window (int): the crop length ``W``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        pad_mode (str): ``'loop'`` or ``'repeat_last'``. Default: 'loop'.

    Returns:
        np.ndarray: positions ``[W]`` (int64) into the list.
    """
    if num < 1 or window < 1:
        raise ValueError(f'need num >= 1 and window >= 1, got num={num}, '
                         f'window={window}')
    if pad_mode not in ('loop', 'repeat_last'):
        raise ValueError("pad_mode must be 'loop' or 'repeat_last', got "
                         f'{pad_mode!r}')
    rng = get_rng(rng)
    if num >= window:
        start = int(rng.integers(num - window + 1))
        return np.arange(start, start + window, dtype=np.int64)
    if pad_mode == 'loop':
        start = int(rng.integers(num))
        return (start + np.arange(window, dtype=np.int64)) % num
    return np.minimum(np.arange(window, dtype=np.int64), num - 1)


def random_temporal_crop(indices: np.ndarray,
                         window: int,
                         rng: RngLike = None,
                         pad_mode: str = 'loop') -> np.ndarray:
    """Crop an index list to ``window`` entries at random.

    Args:
        indices (np.ndarray): index list ``[T]``, ``T >= 1``.
        window (int): the crop length ``W``.
        rng (None | int | np.random.Generator): randomness. Default: None.
        pad_mode (str): see :func:`temporal_crop_indices`. Default: 'loop'.

    Returns:
        np.ndarray: index list ``[W]``.
    """
    indices = _check_indices(indices)
    if indices.size == 0:
        raise ValueError('cannot crop an empty index list, got shape (0,)')
    return indices[temporal_crop_indices(indices.size, window, rng, pad_mode)]


def pending_indices(results: dict) -> np.ndarray:
    """The index list of ``results`` not yet applied to its frames.

    Args:
        results (dict): with ``imgs`` ``[T, H, W, 3]`` and maybe
            :data:`PENDING_KEY`.

    Returns:
        np.ndarray: ``results[PENDING_KEY]``, or ``arange(T)`` when absent.
    """
    imgs = _check_frames(results['imgs'])
    inds = results.get(PENDING_KEY)
    if inds is None:
        return np.arange(imgs.shape[0], dtype=np.int64)
    return _check_indices(inds)


def materialize_frames(results: dict, rng: RngLike = None) -> np.ndarray:
    """Apply the pending index list of ``results`` to its frames.

    Args:
        results (dict): with ``imgs`` ``[T, H, W, 3]`` uint8 and maybe
            :data:`PENDING_KEY` (removed).
        rng (None | int | np.random.Generator): randomness of the noise
            frames. Default: None.

    Returns:
        np.ndarray: the frames ``[T', H, W, 3]``, also stored in
        ``results['imgs']``.
    """
    inds = results.pop(PENDING_KEY, None)
    if inds is not None:
        results['imgs'] = gather_frames(results['imgs'], inds, rng)
    return _check_frames(results['imgs'])


@TRANSFORMS.register_module()
class MaterializeFrames(BaseTransform):
    """Apply a pending temporal index list (see :func:`materialize_frames`).

    Writes ``imgs`` ``[T', H, W, 3]`` and removes ``temporal_inds``.
    """

    def transform(self, results: dict) -> dict:
        """Materialise ``results['imgs']``."""
        materialize_frames(results)
        return results


class _TemporalTransform(BaseTransform):
    """Base of the registered temporal transforms (lazy, see the module)."""

    name = ''

    def _indices(self, indices: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        """Apply the operation to the pending index list.

        Args:
            results (dict): with ``imgs`` ``[T, H, W, 3]`` uint8.

        Returns:
            dict: ``results`` with :data:`PENDING_KEY` ``[T']`` and
            ``temporal_transform`` set to the operation's name.
        """
        inds = self._indices(pending_indices(results), get_rng(None))
        results[PENDING_KEY] = inds
        results['temporal_transform'] = self.name
        return results


@TRANSFORMS.register_module()
class ShuffleDropout(_TemporalTransform):
    """Shuffle-dropout of the frames (see :func:`shuffle_dropout`).

    Args:
        seg_len_range (tuple[int, int]): Default: (4, 16).
        shuffle_prob (float): Default: 0.5.
        drop_prob (float): Default: 0.3.
        remove_prob (float): Default: 0.5.
        noise_prob (float): Default: 0.5.
    """

    name = 'shuffle_dropout'

    def __init__(self,
                 seg_len_range: Tuple[int, int] = (4, 16),
                 shuffle_prob: float = 0.5,
                 drop_prob: float = 0.3,
                 remove_prob: float = 0.5,
                 noise_prob: float = 0.5) -> None:
        self.cfg = dict(
            seg_len_range=tuple(seg_len_range),
            shuffle_prob=shuffle_prob,
            drop_prob=drop_prob,
            remove_prob=remove_prob,
            noise_prob=noise_prob)

    def _indices(self, indices, rng):
        return shuffle_dropout(indices, rng, **self.cfg)

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v}' for k, v in self.cfg.items())
        return f'{self.__class__.__name__}({args})'


@TRANSFORMS.register_module()
class FastForward(_TemporalTransform):
    """Keep every k-th frame (see :func:`fast_forward`).

    Args:
        speeds (Sequence[int]): Default: (2, 3).
    """

    name = 'fast_forward'

    def __init__(self, speeds: Sequence[int] = (2, 3)) -> None:
        if len(speeds) == 0 or min(speeds) < 1:
            raise ValueError(f'speeds must be positive ints, got {speeds}')
        self.speeds = tuple(int(s) for s in speeds)

    def _indices(self, indices, rng):
        return fast_forward(indices, rng, self.speeds)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(speeds={self.speeds})'


@TRANSFORMS.register_module()
class SlowMotion(_TemporalTransform):
    """Repeat every frame (see :func:`slow_motion`).

    Args:
        factor (int): Default: 2.
    """

    name = 'slow_motion'

    def __init__(self, factor: int = 2) -> None:
        if factor < 1:
            raise ValueError(f'factor must be >= 1, got {factor}')
        self.factor = int(factor)

    def _indices(self, indices, rng):
        return slow_motion(indices, self.factor)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(factor={self.factor})'


@TRANSFORMS.register_module()
class TemporalReverse(_TemporalTransform):
    """Play the frames backwards (see :func:`reverse`)."""

    name = 'reverse'

    def _indices(self, indices, rng):
        return reverse(indices)


@TRANSFORMS.register_module()
class TemporalPause(_TemporalTransform):
    """Freeze on a random frame (see :func:`pause`).

    Args:
        window (int): the window ``W``; 0 to ``max(W // 4, 1) - 1`` extra
            copies. Default: 28.
    """

    name = 'pause'

    def __init__(self, window: int = 28) -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.window = int(window)

    def _indices(self, indices, rng):
        return pause(indices, rng, max(self.window // 4, 1))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(window={self.window})'


@TRANSFORMS.register_module()
class RandomTemporalTransform(_TemporalTransform):
    """Apply one of the five temporal transformations, or none.

    Args:
        window (int): the window ``W`` (pause length). Default: 28.
        probs (dict | None): probability per name of
            :data:`TEMPORAL_TRANSFORMS`; the rest is "none". Default (None):
            ``dict(shuffle_dropout=0.5, fast_forward=0.1, slow_motion=0.1,
            reverse=0.1, pause=0.1)``.
        shuffle_dropout_cfg (dict | None): keyword arguments of
            :func:`shuffle_dropout`. Default: None.
        speeds (Sequence[int]): fast-forward speeds. Default: (2, 3).

    Sets ``results['temporal_transform']`` to the name applied or ``'none'``.
    """

    def __init__(
        self,
        window: int = 28,
        probs: Optional[Dict[str, float]] = None,
        shuffle_dropout_cfg: Optional[dict] = None,
        speeds: Sequence[int] = (2, 3)
    ) -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        if probs is None:
            probs = dict(
                shuffle_dropout=0.5,
                fast_forward=0.1,
                slow_motion=0.1,
                reverse=0.1,
                pause=0.1)
        unknown = set(probs) - set(TEMPORAL_TRANSFORMS)
        if unknown:
            raise ValueError(f'unknown temporal transforms {sorted(unknown)};'
                             f' expected names in {TEMPORAL_TRANSFORMS}')
        values = np.asarray(list(probs.values()), dtype=np.float64)
        if (values < 0).any() or values.sum() > 1 + 1e-6:
            raise ValueError('probs must be non-negative and sum to <= 1, '
                             f'got {probs}')
        self.window = int(window)
        self.probs = dict(probs)
        self.shuffle_dropout_cfg = dict(shuffle_dropout_cfg or {})
        self.speeds = tuple(int(s) for s in speeds)

    def transform(self, results: dict) -> dict:
        """Apply a random temporal transformation to ``results['imgs']``.

        Args:
            results (dict): with ``imgs`` ``[T, H, W, 3]`` uint8.

        Returns:
            dict: ``results`` with :data:`PENDING_KEY` ``[T']`` and
            ``temporal_transform`` (the name applied, or ``'none'``).
        """
        inds, name = random_temporal_transform(
            pending_indices(results), self.window, get_rng(None), self.probs,
            self.shuffle_dropout_cfg, self.speeds)
        results[PENDING_KEY] = inds
        results['temporal_transform'] = name
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(window={self.window}, '
                f'probs={self.probs}, '
                f'shuffle_dropout_cfg={self.shuffle_dropout_cfg}, '
                f'speeds={self.speeds})')


@TRANSFORMS.register_module()
class RandomTemporalCrop(BaseTransform):
    """Random temporal crop of the clip to ``window`` frames.

    Args:
        window (int): the window ``W``. Default: 28.
        pad_mode (str): what to do when fewer than ``W`` frames remain:
            ``'loop'`` (loop the clip from a random start) or
            ``'repeat_last'``. Default: 'loop'.
    """

    def __init__(self, window: int = 28, pad_mode: str = 'loop') -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        if pad_mode not in ('loop', 'repeat_last'):
            raise ValueError("pad_mode must be 'loop' or 'repeat_last', got "
                             f'{pad_mode!r}')
        self.window = int(window)
        self.pad_mode = pad_mode

    def transform(self, results: dict) -> dict:
        """Crop ``results['imgs']`` in time.

        Args:
            results (dict): with ``imgs`` ``[T, H, W, 3]`` uint8, ``T >= 1``.

        Returns:
            dict: ``results`` with :data:`PENDING_KEY` ``[W]`` (the frames
            are materialised by the next frame transform).
        """
        inds = pending_indices(results)
        if inds.size == 0:
            raise ValueError('RandomTemporalCrop got an empty clip, shape '
                             f'{tuple(results["imgs"].shape)}')
        results[PENDING_KEY] = random_temporal_crop(inds, self.window,
                                                    get_rng(None),
                                                    self.pad_mode)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(window={self.window}, '
                f'pad_mode={self.pad_mode!r})')
