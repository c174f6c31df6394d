"""The search index file: indexed features and global descriptors (HDF5).

Layout of an index (``attrs['format'] == 'hapvr-index'``)::

    attrs            format, version, config (path), config_json,
                     checkpoint, fingerprint, fps, short_side, crop,
                     max_frames, dims, dtype, skipped (JSON id -> reason)
    ids              [N] str       video ids, in indexing order
    paths            [N] str       absolute video paths ('' when unknown)
    num_frames       [N] int32     frames of each video
    global           [N, D] f32    L2-normalised global descriptors
    features/<row>   [T, R, D]     indexed features of row ``row`` (f16/f32)

Rows are committed in order: a row's ``features`` dataset and its
``global``/``paths``/``num_frames`` entries are written first and ``ids`` is
extended last, then the file is flushed. ``ids`` is therefore the commit
log: when a run is killed, :class:`IndexWriter` rolls back whatever lies
beyond it on the next open, so a resumed run ends with the same index as an
uninterrupted one.
"""
import json
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'INDEX_FORMAT', 'INDEX_VERSION', 'IndexWriter', 'VideoIndex',
    'is_index_file', 'row_key'
]

INDEX_FORMAT = 'hapvr-index'
INDEX_VERSION = 1


def row_key(row: int) -> str:
    """Name of row ``row``'s features dataset inside ``features/``."""
    return f'{int(row):08d}'


def _str_dtype():
    import h5py
    return h5py.string_dtype(encoding='utf-8')


def _decode(values) -> List[str]:
    return [v.decode('utf-8') if isinstance(v, bytes) else str(v)
            for v in values]


def is_index_file(path: str) -> bool:
    """Whether ``path`` is an HDF5 file in the search index layout."""
    import h5py
    if not osp.isfile(path):
        return False
    try:
        with h5py.File(path, 'r') as h5:
            return h5.attrs.get('format') == INDEX_FORMAT
    except OSError:
        return False


class IndexWriter:
    """Append videos to an index file, resuming an earlier run.

    Args:
        path (str): the ``.h5`` file (created when missing).
        dims (int): feature dimension ``D``.
        attrs (dict): metadata stored in the file's attributes (e.g.
            ``config``, ``checkpoint``, ``fps``); on resume they must match
            the stored ones for the keys listed in ``check_keys``.
        fp16 (bool): store features as float16. Defaults to False.
        check_keys (sequence[str]): attributes that must not change between
            runs on the same file. Defaults to ``('fingerprint', 'fps',
            'short_side', 'crop', 'max_frames', 'dims')``.

    Raises:
        ValueError: ``path`` exists but is no index, or was written with
            other settings (named in the message).
    """

    def __init__(self,
                 path: str,
                 dims: int,
                 attrs: Optional[dict] = None,
                 fp16: bool = False,
                 check_keys: Sequence[str] = ('fingerprint', 'fps',
                                              'short_side', 'crop',
                                              'max_frames', 'dims')) -> None:
        import h5py
        self.path = path
        self.dims = int(dims)
        self.dtype = np.float16 if fp16 else np.float32
        attrs = dict(attrs or {}, dims=self.dims)
        exists = osp.isfile(path) and osp.getsize(path) > 0
        try:
            self.h5 = h5py.File(path, 'a')
        except OSError as err:
            raise ValueError(
                f'{path} cannot be opened as HDF5 ({err}); delete it to '
                'start the index again') from err
        try:
            if exists and self.h5.attrs.get('format') != INDEX_FORMAT:
                raise ValueError(
                    f'{path} exists but is not a search index (a plain '
                    'feature file?); choose another --out')
            if exists and 'ids' in self.h5:
                self._check(attrs, check_keys)
                self._rollback()
            else:
                # new, or killed while being created: nothing was committed
                for key in list(self.h5.keys()):
                    del self.h5[key]
                self._create(attrs)
        except Exception:
            self.h5.close()
            raise
        self._ids = set(_decode(self.h5['ids'][()]))

    # ------------------------------------------------------------------ #
    def _create(self, attrs: dict) -> None:
        h5 = self.h5
        h5.attrs['format'] = INDEX_FORMAT
        h5.attrs['version'] = INDEX_VERSION
        h5.attrs['dtype'] = np.dtype(self.dtype).name
        h5.attrs['skipped'] = '{}'
        for key, value in attrs.items():
            h5.attrs[key] = 'none' if value is None else value
        for name in ('ids', 'paths'):
            h5.create_dataset(
                name, shape=(0, ), maxshape=(None, ), dtype=_str_dtype(),
                chunks=(1024, ))
        h5.create_dataset(
            'num_frames', shape=(0, ), maxshape=(None, ), dtype=np.int32,
            chunks=(1024, ))
        h5.create_dataset(
            'global', shape=(0, self.dims), maxshape=(None, self.dims),
            dtype=np.float32, chunks=(max(1, 65536 // self.dims), self.dims))
        h5.create_group('features')
        h5.flush()

    def _check(self, attrs: dict, keys: Sequence[str]) -> None:
        for key in keys:
            if key not in attrs:
                continue
            new = 'none' if attrs[key] is None else attrs[key]
            old = self.h5.attrs.get(key)
            if isinstance(old, bytes):
                old = old.decode('utf-8')
            if isinstance(old, np.generic):
                old = old.item()
            if old != new:
                raise ValueError(
                    f'{self.path} was indexed with {key}={old!r}, this run '
                    f'has {key}={new!r}: use the same settings to resume, or '
                    'another --out')
        stored = self.h5.attrs.get('dtype')
        if stored != np.dtype(self.dtype).name:
            raise ValueError(f'{self.path} stores {stored} features; resume '
                             f'it with the same --fp16 setting')

    def _rollback(self) -> None:
        """Drop whatever an interrupted run wrote beyond the last commit."""
        h5 = self.h5
        ids = _decode(h5['ids'][()])
        n = len(ids)
        while n and not ids[n - 1]:  # resized but the id never written
            n -= 1
        if n != len(ids):
            h5['ids'].resize(n, axis=0)
        for name in ('paths', 'num_frames', 'global'):
            if h5[name].shape[0] != n:
                h5[name].resize(n, axis=0)
        stale = [k for k in h5['features'] if int(k) >= n]
        for key in stale:
            del h5['features'][key]
        h5.flush()

    # ------------------------------------------------------------------ #
    def __len__(self) -> int:
        return self.h5['ids'].shape[0]

    def __contains__(self, video_id: str) -> bool:
        return str(video_id) in self._ids

    def add(self, video_id: str, features: Tensor, global_desc: Tensor,
            path: str = '') -> int:
        """Commit one video.

        Args:
            video_id (str): its id (unique in the index).
            features (Tensor): indexed features ``[T, R, D]``.
            global_desc (Tensor): global descriptor ``[D]``.
            path (str): its file. Defaults to ''.

        Returns:
            int: the row of the video.
        """
        video_id = str(video_id)
        if video_id in self._ids:
            raise ValueError(f'{video_id!r} is already in {self.path}')
        if features.dim() != 3 or features.shape[-1] != self.dims:
            raise ValueError(f'features of {video_id!r} must be [T, R, '
                             f'{self.dims}], got {tuple(features.shape)}')
        if tuple(global_desc.shape) != (self.dims, ):
            raise ValueError(f'global descriptor of {video_id!r} must be '
                             f'[{self.dims}], got {tuple(global_desc.shape)}')
        h5 = self.h5
        row = len(self)
        h5['features'].create_dataset(
            row_key(row),
            data=features.detach().float().cpu().numpy().astype(self.dtype))
        for name in ('paths', 'num_frames', 'global'):
            h5[name].resize(row + 1, axis=0)
        h5['paths'][row] = path
        h5['num_frames'][row] = int(features.shape[0])
        h5['global'][row] = global_desc.detach().float().cpu().numpy()
        h5['ids'].resize(row + 1, axis=0)
        h5['ids'][row] = video_id  # the commit
        self._ids.add(video_id)
        return row

    def flush(self) -> None:
        """Write everything committed so far to disk."""
        self.h5.flush()

    def set_skipped(self, skipped: Dict[str, str]) -> None:
        """Record the videos this run skipped (id -> reason)."""
        self.h5.attrs['skipped'] = json.dumps(skipped, sort_keys=True)

    def close(self) -> None:
        """Flush and close the file."""
        if self.h5.id.valid:
            self.h5.flush()
            self.h5.close()

    def __enter__(self) -> 'IndexWriter':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoIndex:
    """Read a search index: ids, global descriptors and features.

    Ids, paths, frame counts and the ``[N, D]`` global descriptors are read
    at once; features are read on demand (:meth:`features`), so an index
    larger than memory can be searched.

    Args:
        path (str): the index file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a search index.
    """

    def __init__(self, path: str) -> None:
        import h5py
        if not osp.isfile(path):
            raise FileNotFoundError(f'index file {path} does not exist')
        try:
            self.h5 = h5py.File(path, 'r')
        except OSError as err:
            raise ValueError(f'{path} is not a readable HDF5 file ({err})')
        if self.h5.attrs.get('format') != INDEX_FORMAT:
            self.h5.close()
            raise ValueError(
                f'{path} is not a search index (no format={INDEX_FORMAT!r} '
                'attribute); build one with tools/extract_features.py '
                '--videos ... or --index')
        self.path = path
        h5 = self.h5
        # rows beyond the last commit (an interrupted run) are ignored
        self.ids: List[str] = _decode(h5['ids'][()])
        while self.ids and not self.ids[-1]:
            self.ids.pop()
        n = len(self.ids)
        self.paths: List[str] = _decode(h5['paths'][:n])
        self.num_frames = np.asarray(h5['num_frames'][:n], dtype=np.int64)
        self.global_desc = torch.from_numpy(
            np.asarray(h5['global'][:n], dtype=np.float32))
        self.attrs = {
            k: (v.decode('utf-8') if isinstance(v, bytes) else
                v.item() if isinstance(v, np.generic) else v)
            for k, v in h5.attrs.items()
        }
        self.skipped: Dict[str, str] = json.loads(
            self.attrs.get('skipped', '{}'))
        self._row = {vid: i for i, vid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def fps(self) -> float:
        """Frames per second the videos were decoded at."""
        return float(self.attrs.get('fps', 1.0))

    def row(self, video_id: str) -> int:
        """Row of ``video_id``.

        Raises:
            KeyError: the id is not in the index (named in the message).
        """
        try:
            return self._row[str(video_id)]
        except KeyError:
            raise KeyError(f'{video_id!r} is not in the index {self.path} '
                           f'({len(self)} videos)') from None

    def find(self, name: str) -> Optional[int]:
        """Row of an id, else of the only video whose id or path ends with
        ``name`` at a folder boundary, with or without its extension
        (``'q000'`` finds ``'clips/q000.mp4'``); None when there is none.

        Raises:
            KeyError: several videos match ``name``.
        """
        if name in self._row:
            return self._row[name]

        def matches(s: str) -> bool:
            for cand in (s, osp.splitext(s)[0]):
                if cand == name or cand.endswith('/' + name) or \
                        cand.endswith(osp.sep + name):
                    return True
            return False

        hits = [
            i for i, (vid, path) in enumerate(zip(self.ids, self.paths))
            if matches(vid) or matches(path)
        ]
        if len(hits) > 1:
            raise KeyError(f'{name!r} matches {len(hits)} videos of '
                           f'{self.path}, e.g. {self.ids[hits[0]]!r} and '
                           f'{self.ids[hits[1]]!r}; give the full id')
        return hits[0] if hits else None

    def features(self, row: int) -> Tensor:
        """Indexed features of a row as float32 ``[T, R, D]``."""
        if not 0 <= row < len(self):
            raise IndexError(f'row {row} out of range for {self.path} '
                             f'({len(self)} videos)')
        return torch.from_numpy(
            np.asarray(self.h5['features'][row_key(row)][()],
                       dtype=np.float32))

    def iter_features(self, rows: Sequence[int]) -> Iterator[Tensor]:
        """Features of several rows, in order."""
        for row in rows:
            yield self.features(int(row))

    def close(self) -> None:
        """Close the file."""
        if self.h5.id.valid:
            self.h5.close()

    def __enter__(self) -> 'VideoIndex':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
