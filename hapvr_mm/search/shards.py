"""A search index written as a set of shards, read as one index.

Several indexing processes (``tools/extract_features.py --launcher
pytorch --out DIR/``) each write their own shard, an ordinary index file
(:mod:`.index_file`: own writer lock, own commit protocol), into one
folder::

    DIR/shard-00000.h5     rank 0's videos
    DIR/shard-00001.h5     rank 1's videos
    DIR/manifest.json      written by rank 0 once every rank has finished

A killed process loses at most the video it was writing; the others'
committed videos stay in their shards, and a new run (with any number of
processes) skips every id committed in any shard of the folder.

:class:`ShardedIndex` reads a shard set as one :class:`~.VideoIndex`: its
rows are the shards' rows concatenated in shard order (``shard-00000``
first). It reads either a folder (every ``shard-*.h5`` present, e.g. after
a killed run) or a manifest (exactly the shards it lists, with the number
of videos each held when it was written). :func:`open_index` opens a file,
a folder or a manifest alike.

Manifest (JSON)::

    format        'hapvr-index-shards'
    version       1
    shards        [{"file": "shard-00000.h5", "videos": 3}, ...]
    videos        total committed videos
    fingerprint, fps, short_side, crop, max_frames, dims, dtype
                  what every shard agrees on
"""
import bisect
import datetime
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .index_file import INDEX_FORMAT, VideoIndex, _decode

__all__ = [
    'MANIFEST_FORMAT', 'MANIFEST_VERSION', 'MANIFEST_NAME', 'AGREED_KEYS',
    'ShardedIndex', 'open_index', 'is_shard_set', 'shard_name', 'list_shards',
    'read_committed', 'committed_ids', 'write_manifest', 'remove_manifest',
    'global_index_path'
]

MANIFEST_FORMAT = 'hapvr-index-shards'
MANIFEST_VERSION = 1
MANIFEST_NAME = 'manifest.json'
#: attributes every shard of a set must share (the model, the decoding
#: and the stored layout)
AGREED_KEYS = ('fingerprint', 'fps', 'short_side', 'crop', 'max_frames',
               'dims', 'dtype')
_SHARD_RE = re.compile(r'^shard-(\d{5,})\.h5$')


def shard_name(rank: int) -> str:
    """File name of rank ``rank``'s shard: ``shard-{rank:05d}.h5``."""
    if int(rank) < 0:
        raise ValueError(f'a shard rank must be >= 0, got {rank}')
    return f'shard-{int(rank):05d}.h5'


def list_shards(folder: str) -> List[str]:
    """Paths of the ``shard-*.h5`` files of ``folder``, in shard order.

    Args:
        folder (str): the shard set's folder.

    Returns:
        list[str]: the shard paths, ordered by shard number (empty when
        there is none).

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'shard folder {folder} does not exist')
    found = []
    for name in os.listdir(folder):
        match = _SHARD_RE.match(name)
        if match and osp.isfile(osp.join(folder, name)):
            found.append((int(match.group(1)), name))
    return [osp.join(folder, name) for _, name in sorted(found)]


def _plain(value):
    if isinstance(value, bytes):
        return value.decode('utf-8')
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_committed(path: str) -> Tuple[List[str], Dict[str, object]]:
    """Committed ids and attributes of one shard, without opening it for
    writing.

    Rows beyond the last commit (a killed writer's) are ignored, and a
    shard killed before its first commit (no ``ids`` yet, or an empty file)
    holds no video.

    Args:
        path (str): the shard file.

    Returns:
        tuple: ``(ids, attrs)``: the committed ids in row order and the
        file's attributes (plain Python values).

    Raises:
        ValueError: ``path`` is not HDF5, or an HDF5 file that is no search
            index.
    """
    import h5py
    if osp.getsize(path) == 0:
        return [], {}
    try:
        h5 = h5py.File(path, 'r')
    except OSError as err:
        raise ValueError(f'shard {path} is not a readable HDF5 file ({err})')
    with h5:
        attrs = {k: _plain(v) for k, v in h5.attrs.items()}
        if attrs.get('format') != INDEX_FORMAT:
            if not attrs and not len(h5):  # killed while being created
                return [], {}
            raise ValueError(f'shard {path} is not a search index (no '
                             f'format={INDEX_FORMAT!r} attribute)')
        ids = _decode(h5['ids'][()]) if 'ids' in h5 else []
    while ids and not ids[-1]:
        ids.pop()
    return ids, attrs


def shard_set_dtype(folder: str) -> Optional[str]:
    """Feature type of the shards already in a folder (the first that
    records one), or None for a folder without shards.

    Args:
        folder (str): the shard set's folder.

    Returns:
        str | None: ``'float16'`` or ``'float32'``, or None.
    """
    for path in list_shards(folder):
        _, attrs = read_committed(path)
        if attrs.get('dtype'):
            return str(attrs['dtype'])
    return None


def _check_agree(ref: Dict[str, object], ref_name: str, attrs: Dict[str,
                                                                    object],
                 name: str, keys: Sequence[str]) -> None:
    """Raise a ValueError naming ``name`` when it disagrees with ``ref``."""
    for key in keys:
        if key not in ref and key not in attrs:
            continue
        old, new = ref.get(key), attrs.get(key)
        if old != new:
            raise ValueError(
                f'shard {name} has {key}={new!r} but {ref_name} has '
                f'{key}={old!r}: the shards of a set must come from the '
                'same model, decoding settings and --fp16 setting; move '
                f'{name} out of the set (or re-index it)')


def committed_ids(folder: str,
                  expect: Optional[Dict[str, object]] = None,
                  expect_name: str = 'this run') -> Dict[str, str]:
    """Every id committed in any shard of ``folder`` (for resuming).

    Args:
        folder (str): the shard set's folder (missing: no id).
        expect (dict, optional): attributes a shard must have (the keys of
            :data:`AGREED_KEYS` present in it), e.g. those of the run about
            to add to the set. Defaults to None (only the shards are
            compared with one another).
        expect_name (str): what ``expect`` is called in errors.

    Returns:
        dict: id -> file name of the shard holding it.

    Raises:
        ValueError: a shard disagrees with ``expect`` or with the others,
            or an id is in two shards (both named).
    """
    where: Dict[str, str] = {}
    if not osp.isdir(folder):
        return where
    ref, ref_name = (dict(expect), expect_name) if expect else (None, '')
    for path in list_shards(folder):
        ids, attrs = read_committed(path)
        if not attrs:
            continue
        if ref is None:
            ref, ref_name = attrs, path
        else:
            _check_agree(ref, ref_name, attrs, path, AGREED_KEYS)
        name = osp.basename(path)
        for vid in ids:
            if vid in where:
                raise ValueError(f'{vid!r} is in two shards, '
                                 f'{osp.join(folder, where[vid])} and {path}')
            where[vid] = name
    return where


def remove_manifest(folder: str) -> None:
    """Delete ``folder``'s manifest (a run that adds to the set starts)."""
    try:
        os.unlink(osp.join(folder, MANIFEST_NAME))
    except FileNotFoundError:
        pass


def write_manifest(folder: str) -> Dict[str, object]:
    """Write ``folder/manifest.json`` for the shards present, atomically.

    The shards are checked first (the same model and settings, no id
    twice); the manifest is written to a temporary file and renamed, so a
    reader sees the old manifest or the new one, never a part.

    Args:
        folder (str): the shard set's folder.

    Returns:
        dict: the manifest written.

    Raises:
        FileNotFoundError: no folder, or no shard in it.
        ValueError: the shards disagree (the one at fault named).
    """
    shards = list_shards(folder)
    if not shards:
        raise FileNotFoundError(f'{folder} holds no shard-*.h5 file')
    committed_ids(folder)  # same model and settings, no id twice
    entries, attrs = [], {}
    for path in shards:
        ids, shard_attrs = read_committed(path)
        attrs = attrs or shard_attrs
        entries.append(dict(file=osp.basename(path), videos=len(ids)))
    manifest = dict(
        format=MANIFEST_FORMAT,
        version=MANIFEST_VERSION,
        shards=entries,
        videos=sum(e['videos'] for e in entries),
        created=datetime.datetime.now().isoformat(timespec='seconds'))
    for key in AGREED_KEYS:
        if key in attrs:
            manifest[key] = attrs[key]
    path = osp.join(folder, MANIFEST_NAME)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return manifest


def _read_manifest(path: str) -> Tuple[List[str], List[int], Dict]:
    """Shard paths, counts and the manifest itself, validated."""
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path} is not a readable JSON manifest ({err})')
    if not isinstance(manifest, dict) or \
            manifest.get('format') != MANIFEST_FORMAT:
        raise ValueError(f'{path} is not a shard-set manifest (no '
                         f'format={MANIFEST_FORMAT!r})')
    version = manifest.get('version')
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise ValueError(f'{path} has manifest version {version!r}; this '
                         f'version reads up to {MANIFEST_VERSION}')
    entries = manifest.get('shards')
    if not isinstance(entries, list) or not entries:
        raise ValueError(f'{path} lists no shard')
    folder = osp.dirname(osp.abspath(path))
    paths, counts = [], []
    for entry in entries:
        name = entry.get('file') if isinstance(entry, dict) else None
        count = entry.get('videos') if isinstance(entry, dict) else None
        # a shard is a plain file name inside the manifest's folder
        if not isinstance(name, str) or not _SHARD_RE.match(name) or \
                not isinstance(count, int) or count < 0:
            raise ValueError(f'{path}: bad shard entry {entry!r} (want '
                             '{"file": "shard-NNNNN.h5", "videos": N})')
        paths.append(osp.join(folder, name))
        counts.append(count)
    return paths, counts, manifest


class ShardedIndex(VideoIndex):
    """Read a set of shards as one index, with :class:`~.VideoIndex`'s
    interface.

    Ids, paths, frame counts and global descriptors are the shards'
    concatenated in shard order (row ``r`` of the set is a row of one
    shard); :meth:`features` reads only that video from its shard.
    ``attrs`` are the first shard's (the model's config, checkpoint,
    fingerprint and decoding settings, shared by all); ``skipped`` merges
    the shards' skipped videos, less those committed in any shard.

    Args:
        path (str): the set's folder (every ``shard-*.h5`` in it) or its
            ``manifest.json`` (the shards it lists).

    Raises:
        FileNotFoundError: no such folder or manifest, a shard listed in
            the manifest is missing (named), or the folder holds no shard.
        ValueError: a shard is no index, disagrees with the first shard on
            the model fingerprint, decoding settings, dims or dtype, holds
            another number of videos than the manifest says, or shares an
            id with another shard (the shards at fault named).
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.manifest: Optional[Dict] = None
        if osp.isdir(path):
            self.folder = self.path
            self.shard_paths = list_shards(path)
            counts = None
            if not self.shard_paths:
                raise FileNotFoundError(
                    f'{path} holds no shard-*.h5 file (build a shard set '
                    'with tools/extract_features.py --out FOLDER/)')
        elif osp.isfile(path):
            self.folder = osp.dirname(osp.abspath(path))
            self.shard_paths, counts, self.manifest = _read_manifest(path)
            for shard in self.shard_paths:
                if not osp.isfile(shard):
                    raise FileNotFoundError(
                        f'shard {shard} listed in the manifest {path} does '
                        'not exist')
        else:
            raise FileNotFoundError(f'shard set {path} does not exist')
        self.shards: List[VideoIndex] = []
        try:
            self._open(counts)
        except BaseException:
            self.close()
            raise

    def _open(self, counts: Optional[List[int]]) -> None:
        first = None
        owner: Dict[str, str] = {}
        for k, shard_path in enumerate(self.shard_paths):
            try:
                shard = VideoIndex(shard_path)
            except KeyError as err:  # killed before its first commit
                raise ValueError(
                    f'shard {shard_path} has no committed rows table '
                    f'({err}); run the indexing again to repair it') from None
            self.shards.append(shard)
            attrs = {key: shard.attrs.get(key) for key in AGREED_KEYS}
            if first is None:
                first = (attrs, shard_path)
            else:
                _check_agree(first[0], first[1], attrs, shard_path,
                             AGREED_KEYS)
            if counts is not None and counts[k] != len(shard):
                raise ValueError(
                    f'shard {shard_path} holds {len(shard)} videos but the '
                    f'manifest {self.path} says {counts[k]}: the set changed '
                    'after the manifest was written; open the folder '
                    f'{self.folder} instead, or finish the indexing run')
            for vid in shard.ids:
                if vid in owner:
                    raise ValueError(f'{vid!r} is in two shards, '
                                     f'{owner[vid]} and {shard_path}')
                owner[vid] = shard_path
        if self.manifest is not None:
            for key in AGREED_KEYS:
                if key in self.manifest and \
                        self.manifest[key] != first[0].get(key):
                    raise ValueError(
                        f'the manifest {self.path} says {key}='
                        f'{self.manifest[key]!r} but its shards have '
                        f'{key}={first[0].get(key)!r}')
        sizes = [len(s) for s in self.shards]
        #: first row of each shard, and the total at the end
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.ids = [vid for s in self.shards for vid in s.ids]
        self.paths = [p for s in self.shards for p in s.paths]
        self.num_frames = np.concatenate([s.num_frames for s in self.shards
                                          ]).astype(np.int64)
        self._dims = int(first[0].get('dims') or 0) or \
            int(self.shards[0].global_shape[1])
        # global descriptors stay in the shards' files until asked for
        self._global_desc = None
        self.attrs = dict(self.shards[0].attrs)
        skipped: Dict[str, str] = {}
        for shard in self.shards:
            skipped.update(shard.skipped)
        self.skipped = {
            vid: why
            for vid, why in sorted(skipped.items()) if vid not in owner
        }
        self.attrs['skipped'] = json.dumps(self.skipped, sort_keys=True)
        self.attrs['shards'] = len(self.shards)
        self._row = {vid: i for i, vid in enumerate(self.ids)}

    @property
    def global_desc(self) -> Tensor:
        """All ``[N, D]`` float32 global descriptors of the set, read from
        the shards on first use (see :meth:`global_view` for large sets)."""
        if self._global_desc is None:
            self._global_desc = torch.from_numpy(self.global_view()[:])
        return self._global_desc

    @property
    def global_shape(self) -> tuple:
        """``(N, D)`` of the set's global descriptors (nothing read)."""
        return (len(self), self._dims)

    def global_view(self) -> '_SetGlobalView':
        """A lazy ``[N, D]`` array-like over the shards' descriptors.

        Returns:
            _SetGlobalView: ``shape`` and float32 row slicing / indexing,
            each row read from its shard's file.
        """
        return _SetGlobalView([s.global_view() for s in self.shards],
                              self.offsets, self._dims, self.path)

    def iter_global(self, chunk: int = 65536):
        """Global descriptors of the set in chunks of rows.

        Args:
            chunk (int): rows per chunk. Defaults to 65,536.

        Yields:
            tuple[int, Tensor]: the first row and float32 ``[<= chunk, D]``.
        """
        view = self.global_view()
        for start in range(0, len(self), chunk):
            yield start, torch.from_numpy(view[start:start + chunk])

    def locate(self, row: int) -> Tuple[int, int]:
        """The shard of a row and the row inside it.

        Args:
            row (int): a row of the set.

        Returns:
            tuple[int, int]: ``(shard number, row in that shard)``.

        Raises:
            IndexError: ``row`` is out of range.
        """
        if not 0 <= row < len(self):
            raise IndexError(f'row {row} out of range for {self.path} '
                             f'({len(self)} videos)')
        k = bisect.bisect_right(self.offsets, row) - 1
        return k, int(row - self.offsets[k])

    def features(self, row: int) -> Tensor:
        """Indexed features of a row as float32 ``[T, R, D]``, read from
        its shard only."""
        k, local = self.locate(row)
        return self.shards[k].features(local)

    def storage(self) -> Dict[str, float]:
        """Storage figures of the whole set (see
        :meth:`~.VideoIndex.storage`; ``file_bytes`` sums the shards)."""
        parts = [s.storage() for s in self.shards]
        minutes = sum(p['minutes'] for p in parts)
        feature_bytes = sum(p['feature_bytes'] for p in parts)
        file_bytes = sum(p['file_bytes'] for p in parts)
        shape = next((p for p in parts if p['videos']), parts[0])
        return dict(
            videos=len(self),
            minutes=minutes,
            dtype=self.dtype,
            regions=shape['regions'],
            dims=shape['dims'],
            feature_bytes=feature_bytes,
            bytes_per_minute=feature_bytes / minutes if minutes else 0.0,
            file_bytes=file_bytes,
            file_bytes_per_minute=file_bytes / minutes if minutes else 0.0)

    def close(self) -> None:
        """Close every shard."""
        for shard in self.shards:
            shard.close()


class _SetGlobalView:
    """The global descriptors of a shard set as one lazy ``[N, D]`` array.

    Args:
        views (list): each shard's :meth:`~.VideoIndex.global_view`.
        offsets (np.ndarray): first row of each shard, then ``N``.
        dims (int): ``D``.
        path (str): the set (for messages).
    """

    def __init__(self, views: list, offsets: np.ndarray, dims: int,
                 path: str) -> None:
        self.views, self.offsets, self.path = views, offsets, path
        self.shape = (int(offsets[-1]), int(dims))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        n, d = self.shape
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self[np.arange(start, stop, step)]
            parts = []
            for k, view in enumerate(self.views):
                lo = max(start, int(self.offsets[k]))
                hi = min(stop, int(self.offsets[k + 1]))
                if lo < hi:
                    off = int(self.offsets[k])
                    parts.append(view[lo - off:hi - off])
            return np.concatenate(parts) if parts else \
                np.zeros((0, d), np.float32)
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            bad = rows[(rows < 0) | (rows >= n)][0]
            raise IndexError(f'row {bad} out of range for {self.path} '
                             f'({n} videos)')
        out = np.empty((len(rows), d), np.float32)
        shard = np.searchsorted(self.offsets, rows, side='right') - 1
        for k in np.unique(shard):
            mask = shard == k
            out[mask] = self.views[k][rows[mask] - int(self.offsets[k])]
        return out


def is_shard_set(path: str) -> bool:
    """Whether ``path`` names a shard set (a folder or a ``.json``
    manifest) rather than an index file."""
    path = str(path)
    return osp.isdir(path) or path.endswith(('/', os.sep)) or \
        path.lower().endswith('.json')


def open_index(path: str) -> VideoIndex:
    """Open an index file, a shard folder or a shard-set manifest.

    Args:
        path (str): an ``.h5`` index, a folder of ``shard-*.h5`` files or
            its ``manifest.json``.

    Returns:
        VideoIndex: a :class:`~.VideoIndex` for a file, a
        :class:`ShardedIndex` for a folder or manifest.

    Raises:
        FileNotFoundError: nothing at ``path`` (or a listed shard missing).
        ValueError: not an index, or shards that do not form one set.
    """
    if is_shard_set(path):
        return ShardedIndex(path)
    return VideoIndex(path)


def global_index_path(index: Union[VideoIndex, str]) -> str:
    """Where the faiss global index of an index is saved (its base path).

    An index file keeps it next to itself (``<file>.faiss``); a shard set
    inside its folder (``<folder>/global.faiss``).

    Args:
        index (VideoIndex | str): an open index, or its path.

    Returns:
        str: the base path to give ``GlobalIndex.load_or_build``.
    """
    if isinstance(index, ShardedIndex):
        return osp.join(index.folder, 'global')
    path = index.path if isinstance(index, VideoIndex) else str(index)
    if osp.isdir(path):
        return osp.join(path, 'global')
    return path
