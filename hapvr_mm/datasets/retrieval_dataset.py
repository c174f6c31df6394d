"""Query / database videos of a retrieval benchmark (docs/method.md section 5).

:class:`RetrievalDataset` lists the query or the database videos of an
annotation (see :mod:`hapvr_mm.datasets.annotations`) and reads each one
from one of two sources:

* ``feature_file``: an HDF5 file with one dataset per video id holding
  ``[T, D]`` or ``[T, R, D]`` features (float16 or float32, as the public
  feature files). The file is opened lazily, once per process (dataloader
  workers open their own handle). Items are float32 ``[T, R, D]``
  (``[T, D]`` becomes ``[T, 1, D]``). Every item must have the same frame
  shape ``[R, D]``: ``feature_shape`` when given, else the most common
  frame shape of up to 64 entries spread over the annotation's ids. An entry
  of another frame shape is skipped like any bad entry (its id, the file and
  both shapes in the reason); when no entry of that sample has
  ``feature_shape``, building the dataset fails with one error naming the
  file and the expected and found shapes.
* ``video_pattern``: raw video files found by a pattern with ``{id}`` (e.g.
  ``'data/videos/{id}.mp4'``), decoded by ``pipeline`` (typically
  ``DecodeRetrievalVideo`` then ``PackRetrievalInputs``). Items are uint8
  ``[T, 3, H, W]`` frames for the model's backbone.

A video that cannot be read (no HDF5 dataset / no file, unreadable or
corrupt, empty) never raises: its item has ``inputs=None`` and the sample's
metainfo holds ``skip_reason``. The retrieval test loop logs, counts and
excludes it. A wrong annotation file fails when the dataset is built.
"""
import os
import os.path as osp
from collections import Counter
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmaction.registry import DATASETS, TRANSFORMS
from mmengine.dataset import BaseDataset
from mmengine.registry import FUNCTIONS
from mmengine.structures import BaseDataElement

from .annotations import RetrievalAnnotation, load_annotation
from .video_io import VideoReadError

__all__ = ['RetrievalDataset', 'retrieval_collate', 'features_to_tensor']

SPLITS = ('queries', 'targets')

#: Errors of reading one HDF5 entry that mean a bad file or entry (the
#: video is skipped); anything else propagates.
FEATURE_READ_ERRORS = (OSError, KeyError, ValueError)


def features_to_tensor(array: Any, video_id: str = '?') -> torch.Tensor:
    """Convert a stored feature array to float32 ``[T, R, D]``.

    Args:
        array (array-like): ``[T, D]`` or ``[T, R, D]`` (float16/32).
        video_id (str): id used in error messages.

    Returns:
        Tensor: float32 ``[T, R, D]`` (``R = 1`` for a ``[T, D]`` input).

    Raises:
        ValueError: wrong number of dimensions, non-numeric dtype, zero
            frames, or non-finite values.
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise ValueError(f'features of {video_id!r} must be [T, D] or '
                         f'[T, R, D], got shape {arr.shape}')
    if arr.dtype.kind not in 'fiu':
        raise ValueError(f'features of {video_id!r} must be numeric, got '
                         f'dtype {arr.dtype}')
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f'features of {video_id!r} are empty (shape '
                         f'{arr.shape})')
    tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f'features of {video_id!r} hold NaN or inf values')
    return tensor.unsqueeze(1) if tensor.dim() == 2 else tensor


@FUNCTIONS.register_module()
def retrieval_collate(data_batch: Sequence[dict]) -> dict:
    """Collate retrieval items without stacking (lengths differ).

    Args:
        data_batch (sequence[dict]): items ``dict(inputs=Tensor or None,
            data_samples=BaseDataElement)``.

    Returns:
        dict: ``inputs`` (list of Tensor or None) and ``data_samples``
        (list), in batch order.
    """
    inputs, samples = [], []
    for i, item in enumerate(data_batch):
        if not isinstance(item, dict) or 'data_samples' not in item:
            raise ValueError(f'item {i} of the batch must be a dict with '
                             f'"inputs" and "data_samples", got '
                             f'{type(item).__name__}')
        inputs.append(item.get('inputs'))
        samples.append(item['data_samples'])
    return dict(inputs=inputs, data_samples=samples)


@DATASETS.register_module()
class RetrievalDataset(BaseDataset):
    """The query or database videos of a retrieval benchmark.

    Args:
        annotation (dict | RetrievalAnnotation, optional): annotation config
            for :func:`~hapvr_mm.datasets.annotations.load_annotation`, e.g.
            ``dict(type='FIVR', ann_file='fivr.pk', version='5k')``.
        split (str): ``'queries'`` (the annotation's queries) or
            ``'targets'`` (every video the queries are scored against).
            Defaults to ``'queries'``.
        feature_file (str, optional): HDF5 file, one dataset per video id.
        video_pattern (str, optional): path pattern with ``{id}``.
        pipeline (list): transforms for ``video_pattern`` items; they receive
            ``dict(video_id, filename)`` and must return
            ``dict(inputs=..., data_samples=...)`` or a dict with ``imgs``.
            Defaults to ``[DecodeRetrievalVideo(), PackRetrievalInputs()]``
            for videos; must be empty for ``feature_file``.
        video_ids (sequence[str], optional): list these ids instead of an
            annotation's (e.g. for feature extraction); ``split`` is then
            ignored.
        max_videos (int, optional): keep only the first ``max_videos`` ids
            (quick runs). Defaults to None.
        feature_shape (sequence[int], optional): expected frame shape of the
            HDF5 features, ``[R, D]`` (or ``[D]`` for ``[T, D]`` entries);
            None infers it from the file (see the module doc). Defaults to
            None.
        **kwargs: passed to mmengine's ``BaseDataset`` (``serialize_data``
            defaults to False here, ``test_mode`` to True).

    Each item is ``dict(inputs=Tensor or None, data_samples=sample)``; the
    sample's metainfo holds ``video_id`` and, for a skipped video,
    ``skip_reason``.
    """

    METAINFO: dict = dict()

    def __init__(self,
                 annotation: Optional[Union[dict, RetrievalAnnotation]] = None,
                 split: str = 'queries',
                 feature_file: Optional[str] = None,
                 video_pattern: Optional[str] = None,
                 pipeline: Optional[List[Union[dict, Callable]]] = None,
                 video_ids: Optional[Sequence[str]] = None,
                 max_videos: Optional[int] = None,
                 feature_shape: Optional[Sequence[int]] = None,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if (feature_file is None) == (video_pattern is None):
            raise ValueError('RetrievalDataset needs exactly one source: '
                             'feature_file (HDF5) or video_pattern (with '
                             f'{{id}}), got feature_file={feature_file!r}, '
                             f'video_pattern={video_pattern!r}')
        if (annotation is None) == (video_ids is None):
            raise ValueError('RetrievalDataset needs either an annotation '
                             'config or a list of video_ids')
        if video_pattern is not None and '{id}' not in video_pattern:
            raise ValueError("video_pattern must contain '{id}', got "
                             f'{video_pattern!r}')
        if feature_file is not None:
            if pipeline:
                raise ValueError('a pipeline is not used with feature_file; '
                                 'pass pipeline=[] or None')
            if not osp.isfile(feature_file):
                raise FileNotFoundError(
                    f'HDF5 feature file not found: {feature_file}')
        if max_videos is not None and (not isinstance(max_videos, int)
                                       or max_videos < 1):
            raise ValueError(f'max_videos must be an int >= 1, got '
                             f'{max_videos!r}')
        if pipeline is None and video_pattern is not None:
            pipeline = [
                dict(type='DecodeRetrievalVideo'),
                dict(type='PackRetrievalInputs')
            ]
        if video_pattern is not None:
            # make sure the default transforms are registered, and build
            # them from mmaction's registry whatever the default scope is
            from .transforms import loading, retrieval  # noqa: F401
            pipeline = [
                TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline
            ]
        self.annotation_cfg = annotation
        self.split = split
        self.feature_file = feature_file
        self.video_pattern = video_pattern
        self.video_ids_arg = None if video_ids is None else [
            str(v) for v in video_ids
        ]
        self.max_videos = max_videos
        if feature_shape is not None:
            feature_shape = tuple(int(d) for d in feature_shape)
            if len(feature_shape) not in (1, 2) or min(feature_shape) < 1:
                raise ValueError(f'feature_shape must be [R, D] or [D] with '
                                 f'positive sizes, got {feature_shape}')
            if len(feature_shape) == 1:  # [T, D] entries become [T, 1, D]
                feature_shape = (1, ) + feature_shape
        self.feature_shape: Optional[Tuple[int, ...]] = feature_shape
        self.frame_shape: Optional[Tuple[int, ...]] = feature_shape
        self.annotation: Optional[RetrievalAnnotation] = None
        self._h5 = None
        self._h5_pid: Optional[int] = None
        kwargs.setdefault('serialize_data', False)
        kwargs.setdefault('test_mode', True)
        super().__init__(pipeline=pipeline or [], **kwargs)

    # ------------------------------------------------------------------ #
    def load_data_list(self) -> List[dict]:
        """List the split's videos (the annotation is read here).

        Returns:
            list[dict]: ``dict(video_id, index)`` (plus ``filename`` for
            videos), in the annotation's order.
        """
        if self.video_ids_arg is not None:
            ids = list(dict.fromkeys(self.video_ids_arg))
        else:
            self.annotation = load_annotation(self.annotation_cfg)
            ids = (
                self.annotation.queries
                if self.split == 'queries' else self.annotation.targets)
        if self.max_videos is not None:
            ids = ids[:self.max_videos]
        if self.feature_file is not None:
            reference = (
                self.annotation.all_ids
                if self.annotation is not None else ids)
            self.frame_shape = self._reference_frame_shape(reference)
        data_list = []
        for i, vid in enumerate(ids):
            info = dict(video_id=str(vid), index=i)
            if self.video_pattern is not None:
                info['filename'] = self.video_pattern.format(id=vid)
            data_list.append(info)
        return data_list

    @property
    def video_ids(self) -> List[str]:
        """Ids of the items, in order."""
        return [info['video_id'] for info in self.data_list]

    # ------------------------------------------------------------------ #
    def _hdf5(self):
        """The HDF5 handle of this process (opened on first use)."""
        pid = os.getpid()
        if self._h5 is None or self._h5_pid != pid:
            import h5py
            self._h5 = h5py.File(self.feature_file, 'r')
            self._h5_pid = pid
        return self._h5

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_h5'] = None  # h5py handles are not picklable
        state['_h5_pid'] = None
        return state

    def close(self) -> None:
        """Close the HDF5 handle of this process, if open."""
        if self._h5 is not None and self._h5_pid == os.getpid():
            try:
                self._h5.close()
            except Exception:  # noqa: BLE001 - already closed / finalising
                pass
        self._h5 = None
        self._h5_pid = None

    def _reference_frame_shape(self, ids: Sequence[str]
                               ) -> Optional[Tuple[int, ...]]:
        """Frame shape ``(R, D)`` every entry must have (see module doc)."""
        step = max(1, len(ids) // 64)
        found = Counter()
        examples = {}
        with_h5 = self._hdf5()
        for vid in list(ids)[::step][:64]:
            node = with_h5.get(vid)
            shape = getattr(node, 'shape', None)
            if shape is None or len(shape) not in (2, 3) or shape[0] == 0:
                continue  # missing or bad: skipped later with its reason
            frame = tuple(shape[1:]) if len(shape) == 3 else (1, shape[1])
            found[frame] += 1
            examples.setdefault(frame, vid)
        self.close()  # dataloader workers open their own handle
        if self.feature_shape is None:
            return found.most_common(1)[0][0] if found else None
        if found and self.feature_shape not in found:
            shapes = ', '.join(f'{list(k)} ({n} entries, e.g. '
                               f'{examples[k]!r})'
                               for k, n in found.most_common(3))
            raise ValueError(
                f'{self.feature_file}: no entry has the expected frame '
                f'shape {list(self.feature_shape)} (feature_shape); found '
                f'{shapes} among {sum(found.values())} entries checked. '
                'Were the features extracted with another backbone or '
                'PCA dimension?')
        return self.feature_shape

    def _load_features(self, vid: str) -> torch.Tensor:
        # Only file-format errors skip a video: h5py reports a missing,
        # unreadable or corrupt file / chunk as OSError, a missing or broken
        # link as KeyError and an unreadable selection as ValueError. Any
        # other exception (a bug, MemoryError) stops the run as it is.
        try:
            handle = self._hdf5()
        except OSError as err:
            raise _Skip(f'cannot open feature file {self.feature_file!r} '
                        f'({type(err).__name__}: {err})')
        if vid not in handle:
            raise _Skip(f'no dataset {vid!r} in {self.feature_file}')
        try:
            node = handle[vid]
            array = node[()] if hasattr(node, 'shape') else None
        except FEATURE_READ_ERRORS as err:  # corrupt chunk, broken link
            raise _Skip(f'unreadable features ({type(err).__name__}: '
                        f'{str(err).splitlines()[0] if str(err) else ""})')
        if array is None:
            raise _Skip(f'{vid!r} in {self.feature_file} is a group, not a '
                        'dataset')
        try:
            tensor = features_to_tensor(array, vid)
        except ValueError as err:
            raise _Skip(str(err))
        expected = self.frame_shape
        if expected is not None and tuple(tensor.shape[1:]) != expected:
            raise _Skip(f'features of {vid!r} in {self.feature_file} have '
                        f'shape {tuple(array.shape)}, expected '
                        f'[T, {", ".join(map(str, expected))}] like the '
                        'other entries')
        return tensor

    def _load_video(self, info: dict) -> dict:
        results = dict(info)
        try:
            out = self.pipeline(results)
        except VideoReadError as err:
            raise _Skip(err.reason)
        if out is None:
            raise _Skip('the pipeline returned None')
        return out

    def prepare_data(self, idx: int) -> dict:
        """Load item ``idx`` (never raises on a bad video).

        Args:
            idx (int): item index.

        Returns:
            dict: ``inputs`` (float32 ``[T, R, D]`` features, uint8
            ``[T, 3, H, W]`` frames, or None for a skipped video) and
            ``data_samples`` (``BaseDataElement`` with ``video_id`` and, when
            skipped, ``skip_reason``).
        """
        info = self.get_data_info(idx)
        vid = info['video_id']
        try:
            if self.feature_file is not None:
                inputs = self._load_features(vid)
                sample = BaseDataElement()
                sample.set_metainfo(dict(num_frames=int(inputs.shape[0])))
            else:
                out = self._load_video(info)
                inputs = out.get('inputs')
                sample = out.get('data_samples') or BaseDataElement()
                if inputs is None:
                    raise _Skip('the pipeline produced no inputs (end it '
                                'with PackRetrievalInputs)')
                if isinstance(inputs, torch.Tensor) and inputs.shape[0] == 0:
                    raise _Skip('zero frames after decoding')
        except _Skip as skip:
            inputs, sample = None, BaseDataElement()
            sample.set_metainfo(dict(skip_reason=skip.reason))
        sample.set_metainfo(dict(video_id=vid, index=info['index']))
        return dict(inputs=inputs, data_samples=sample)

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        return self.prepare_data(idx)


class _Skip(Exception):
    """Internal: the current video is skipped for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
