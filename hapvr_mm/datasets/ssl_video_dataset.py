"""Unlabeled videos for self-supervised training (docs/method.md section 1).

:class:`SSLVideoDataset` lists videos from a folder, a list file or a folder
of frame folders; its pipeline (``DecodeSSLSegment`` and the view
transforms) turns each into a training sample. Bad videos (corrupt, empty,
unreadable, too short) are skipped: the sample is replaced by another random
one, and the path and reason are logged once per process, counted, and
appended to ``skipped_videos.txt`` in ``skip_log_dir`` so that the total over
dataloader workers can be read back with :func:`count_skipped`.
"""
import logging
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Set, Union

import numpy as np
from mmaction.registry import DATASETS, TRANSFORMS
from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger, print_log

from .video_io import VideoReadError, is_frame_folder, video_length_1fps

__all__ = [
    'SSLVideoDataset', 'count_skipped', 'load_skipped', 'SKIP_LOG_NAME',
    'VIDEO_EXTENSIONS'
]

#: File written (appended to) in ``skip_log_dir``: one ``path<TAB>reason``
#: line per skipped video and process.
SKIP_LOG_NAME = 'skipped_videos.txt'
#: Default video file extensions (matched case-insensitively).
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.webm', '.mkv', '.mov', '.flv')


def load_skipped(skip_log_dir: str) -> Dict[str, str]:
    """Read the skipped videos recorded in ``skip_log_dir``.

    Args:
        skip_log_dir (str): Folder holding :data:`SKIP_LOG_NAME`.

    Returns:
        dict[str, str]: ``{path: reason}`` (first reason seen per path);
        empty when the file does not exist.
    """
    out: Dict[str, str] = {}
    fname = osp.join(skip_log_dir, SKIP_LOG_NAME)
    if not osp.isfile(fname):
        return out
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            path, _, reason = line.partition('\t')
            out.setdefault(path, reason)
    return out


def count_skipped(skip_log_dir: str) -> int:
    """Number of distinct videos skipped, over all processes and workers.

    Call it at the end of training with the dataset's
    :attr:`SSLVideoDataset.skip_log_dir` (by default the runner's log
    folder, ``work_dir/<timestamp>``).

    Args:
        skip_log_dir (str): Folder holding :data:`SKIP_LOG_NAME`.

    Returns:
        int: Distinct skipped paths (0 when nothing was skipped).
    """
    return len(load_skipped(skip_log_dir))


def _current_log_dir() -> Optional[str]:
    """Folder of the current MMLogger's log file (the runner's log dir)."""
    log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
    return osp.dirname(osp.abspath(log_file)) if log_file else None


@DATASETS.register_module()
class SSLVideoDataset(BaseDataset):
    """Unlabeled videos for self-supervised training, skipping bad files.

    Sources (first match wins):

    * ``ann_file``: a text file with one video path (file or frame folder)
      per line, relative to ``data_root`` unless absolute; blank lines and
      lines starting with ``#`` are ignored. A relative ``ann_file`` is
      itself joined to ``data_root`` (mmengine's convention).
    * ``data_root`` with ``use_frame_folders=False`` (or None and the folder
      holds videos): every file whose extension is in ``extensions``
      (searched recursively when ``recursive``), sorted.
    * ``data_root`` with ``use_frame_folders=True`` (or None and the folder
      holds no video): every folder that directly holds image files
      (``00000.jpg, ...``), sorted; such a folder is not searched further.

    Each item's data info is ``dict(filename=path, window=W,
    min_frames=min_frames, sample_idx=i)``; the pipeline must start with a
    loading transform such as ``DecodeSSLSegment`` (which reads ``window``
    and ``min_frames`` from it when not given its own).

    At build time an empty source, or a source whose probed videos (up to
    ``num_probe``, spread evenly over the list) are all unreadable or shorter
    than ``min_frames``, raises ``ValueError`` naming the folder / file.

    During training, a :class:`VideoReadError` from the pipeline (corrupt,
    empty, unreadable, or fewer than ``min_frames`` frames at 1 fps) replaces
    the sample with another random index (NumPy's global generator); the
    first skip of a path in a process is logged with ``print_log(...,
    level=logging.WARNING)``, added to :attr:`skipped_paths` and appended to
    ``skip_log_dir/skipped_videos.txt``. The process (each dataloader worker
    has its own copy of the dataset) remembers the path and its reason
    (:attr:`skipped_reasons`): when the sampler draws it again it is skipped
    at once, without opening the file again and without a new log line, so
    a corrupt file is decoded (and counted in the log file) once per
    process. :attr:`num_skipped` counts every skip event of this process,
    remembered ones included. After ``max_refetch`` failed attempts in a
    row a ``RuntimeError`` lists the last failures. In ``test_mode`` errors
    are not skipped.

    Args:
        data_root (str): Folder of videos / frame folders, and root of the
            relative paths of ``ann_file``. Defaults to ''.
        ann_file (str): Optional list file. Defaults to '' (scan
            ``data_root``).
        pipeline (list[dict | callable]): Transforms. Defaults to [].
        window (int): The window ``W`` (segments have ``2W`` frames).
            Defaults to 28 (paper).
        min_frames (int): Videos with fewer frames at 1 fps are skipped.
            Defaults to 1 (any readable video is used; shorter than ``2W``
            ones are looped by ``DecodeSSLSegment``).
        extensions (Sequence[str]): Video file extensions, case-insensitive,
            with or without the dot. Defaults to :data:`VIDEO_EXTENSIONS`.
        use_frame_folders (bool, optional): Force frame-folder (True) or
            video-file (False) scanning; None (default) auto-detects.
        recursive (bool): Scan ``data_root`` recursively. Defaults to True.
        num_probe (int): Videos whose metadata is probed at build time
            (all if fewer; 0 disables the probe). Defaults to 8.
        skip_log_dir (str, optional): Folder for ``skipped_videos.txt``.
            ``'auto'`` (default) uses the folder of the current MMLogger's
            log file (the runner's ``log_dir``) when there is one, else no
            file; None disables the file.
        max_refetch (int): Attempts before giving up. Defaults to 100.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments
            (``indices``, ``serialize_data``, ``lazy_init``, ``test_mode``,
            ``metainfo``).
    """

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 window: int = 28,
                 min_frames: int = 1,
                 extensions: Sequence[str] = VIDEO_EXTENSIONS,
                 use_frame_folders: Optional[bool] = None,
                 recursive: bool = True,
                 num_probe: int = 8,
                 skip_log_dir: Optional[str] = 'auto',
                 max_refetch: int = 100,
                 **kwargs) -> None:
        checks = [('window', window, 1), ('min_frames', min_frames, 1),
                  ('num_probe', num_probe, 0), ('max_refetch', max_refetch, 0)]
        for name, value, low in checks:
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < low:
                raise ValueError(
                    f'{name} must be an int >= {low}, got {value!r}')
        if not ann_file and not data_root:
            raise ValueError('SSLVideoDataset needs data_root (a folder of '
                             'videos) or ann_file (a list file)')
        if isinstance(extensions, str):
            extensions = (extensions, )
        self.extensions = tuple(
            (e if e.startswith('.') else '.' + e).lower() for e in extensions)
        self.window = window
        self.min_frames = min_frames
        self.use_frame_folders = use_frame_folders
        self.recursive = recursive
        self.num_probe = num_probe
        if skip_log_dir == 'auto':
            skip_log_dir = _current_log_dir()
        self.skip_log_dir = skip_log_dir
        self.num_skipped = 0
        self.skipped_paths: Set[str] = set()
        self.skipped_reasons: Dict[str, str] = {}
        # build with mmaction's registry so that no default scope is needed
        pipeline = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
        ]
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            pipeline=pipeline,
            max_refetch=max_refetch,
            **kwargs)

    # ------------------------------------------------------------- listing
    @property
    def skip_log_file(self) -> Optional[str]:
        """str | None: Path of ``skipped_videos.txt`` (None: no file)."""
        if not self.skip_log_dir:
            return None
        return osp.join(self.skip_log_dir, SKIP_LOG_NAME)

    def _source_name(self) -> str:
        return f'list file {self.ann_file!r}' if self.ann_file \
            else f'folder {self.data_root!r}'

    def _read_list_file(self) -> List[str]:
        if not osp.isfile(self.ann_file):
            raise ValueError(f'list file {self.ann_file!r} does not exist')
        paths = []
        with open(self.ann_file, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                if not osp.isabs(line) and self.data_root:
                    line = osp.join(self.data_root, line)
                paths.append(line)
        return paths

    def _scan_videos(self) -> List[str]:
        out = []
        for root, dirs, files in os.walk(self.data_root, followlinks=True):
            dirs.sort()
            out.extend(
                osp.join(root, f) for f in sorted(files)
                if osp.splitext(f)[1].lower() in self.extensions)
            if not self.recursive:
                break
        return out

    def _scan_frame_folders(self) -> List[str]:
        out = []
        for root, dirs, _ in os.walk(self.data_root, followlinks=True):
            dirs.sort()
            keep = []
            for d in dirs:
                full = osp.join(root, d)
                if is_frame_folder(full):
                    out.append(full)
                else:
                    keep.append(d)
            dirs[:] = keep if self.recursive else []
        return out

    def load_data_list(self) -> List[dict]:
        """List the videos and check that some are readable.

        Returns:
            list[dict]: ``dict(filename=..., window=W, min_frames=...)``.

        Raises:
            ValueError: Missing folder / list file, no video, or no readable
                video among the probed ones.
        """
        if self.ann_file:
            paths = self._read_list_file()
        else:
            if not osp.isdir(self.data_root):
                raise ValueError(
                    f'data_root {self.data_root!r} is not a folder')
            paths = [] if self.use_frame_folders else self._scan_videos()
            if self.use_frame_folders or (self.use_frame_folders is None
                                          and not paths):
                paths = self._scan_frame_folders()
        if not paths:
            kind = ('frame folders' if self.use_frame_folders else
                    f'videos ({", ".join(self.extensions)}) or frame folders'
                    if self.use_frame_folders is None else
                    f'videos ({", ".join(self.extensions)})')
            raise ValueError(f'SSLVideoDataset: no {kind} found in '
                             f'{self._source_name()}')
        self._probe(paths)
        return [
            dict(filename=p, window=self.window, min_frames=self.min_frames)
            for p in paths
        ]

    def _probe(self, paths: List[str]) -> None:
        if self.num_probe == 0:
            return
        n = min(self.num_probe, len(paths))
        picks = np.linspace(0, len(paths) - 1, n).round().astype(np.int64)
        picks = np.unique(picks)
        reasons = []
        for i in picks:
            try:
                length = video_length_1fps(paths[i])
            except VideoReadError as exc:
                reasons.append(f'{paths[i]}: {exc.reason}')
                continue
            if length >= self.min_frames:
                return
            reasons.append(f'{paths[i]}: too short ({length} frames at 1 '
                           f'fps, min_frames={self.min_frames})')
        raise ValueError(
            f'SSLVideoDataset: no readable video in {self._source_name()} '
            f'({len(reasons)} probed of {len(paths)}):\n  ' +
            '\n  '.join(reasons))

    # ------------------------------------------------------------ skipping
    def _record_skip(self, exc: VideoReadError) -> None:
        self.num_skipped += 1
        if exc.path in self.skipped_paths:
            return
        self.skipped_paths.add(exc.path)
        self.skipped_reasons[exc.path] = exc.reason
        print_log(
            f'SSLVideoDataset: skipping video {exc.path!r} ({exc.reason}); '
            f'{len(self.skipped_paths)} distinct video(s) skipped so far in '
            f'process {os.getpid()}',
            logger='current',
            level=logging.WARNING)
        log_file = self.skip_log_file
        if log_file is None:
            return
        try:
            os.makedirs(self.skip_log_dir, exist_ok=True)
            reason = exc.reason.replace('\n', ' ').replace('\t', ' ')
            # one short O_APPEND write per line: safe across workers
            with open(log_file, 'a', encoding='utf-8') as f:
                f.write(f'{exc.path}\t{reason}\n')
        except OSError as err:
            print_log(
                f'SSLVideoDataset: cannot write {log_file!r}: {err}',
                logger='current',
                level=logging.WARNING)

    def __getitem__(self, idx: int) -> dict:
        """Pipeline output of item ``idx``, or of a random substitute.

        Args:
            idx (int): Index into the data list.

        Returns:
            dict: The pipeline's output.

        Raises:
            RuntimeError: ``max_refetch + 1`` attempts in a row failed.
            VideoReadError: In ``test_mode``.
        """
        if not self._fully_initialized:
            self.full_init()
        if self.test_mode:
            return super().__getitem__(idx)
        failures = []
        for _ in range(self.max_refetch + 1):
            path = self.get_data_info(idx).get('filename')
            reason = self.skipped_reasons.get(path)
            if reason is not None:
                # failed before in this process: skip without opening it
                self.num_skipped += 1
                failures.append(str(VideoReadError(path, reason)))
                idx = self._rand_another()
                continue
            try:
                data = self.prepare_data(idx)
            except VideoReadError as exc:
                self._record_skip(exc)
                failures.append(str(exc))
                data = None
            if data is not None:
                return data
            idx = self._rand_another()
        last = '\n  '.join(failures[-5:]) or '(the pipeline returned None)'
        raise RuntimeError(
            f'SSLVideoDataset: no valid sample after {self.max_refetch + 1} '
            f'attempts in {self._source_name()}; last failures:\n  {last}')
