"""Find the videos to index or to search with: folders, lists, globs."""
import glob
import os
import os.path as osp
from typing import List, Sequence, Tuple

__all__ = ['VIDEO_EXTENSIONS', 'collect_videos', 'is_glob']

#: file name endings searched in folders (case-insensitive)
VIDEO_EXTENSIONS = ('mp4', 'avi', 'mkv', 'mov', 'webm', 'm4v', 'mpg', 'mpeg',
                    'flv', 'wmv', 'ts', '3gp')


def is_glob(spec: str) -> bool:
    """Whether ``spec`` is a glob pattern (holds ``*``, ``?`` or ``[``).

    Only a pattern by its characters: callers check first whether a file
    or folder of that name exists, which always means itself (a video
    named ``Movie [1080p].mp4`` is a file, not a pattern).
    """
    return any(c in spec for c in '*?[')


def _posix(path: str) -> str:
    return path.replace(os.sep, '/')


def collect_videos(specs: Sequence[str],
                   extensions: Sequence[str] = VIDEO_EXTENSIONS
                   ) -> List[Tuple[str, str]]:
    """List ``(video id, absolute path)`` for folders, list files and globs.

    * a folder: every file below it (recursively) whose name ends with one
      of ``extensions``; the id is the path relative to the folder
      (``'sub/clip.mp4'``);
    * a glob (``'videos/*.mp4'``, ``'**'`` recurses): the matching files;
      the id is the path as matched. A spec is a pattern only when no file
      or folder of that name exists: an existing ``Movie [1080p].mp4`` is
      that file;
    * a ``.txt`` list file: one video path per line (blank lines and lines
      starting with ``#`` ignored; relative paths are relative to the list
      file's folder); the id is the line;
    * a video file: itself, the id being the path as given.

    Paths are sorted within each spec; a video listed twice keeps its first
    id.

    Args:
        specs (sequence[str]): folders, globs, list files or video files.
        extensions (sequence[str]): endings for folders (no dot).

    Returns:
        list[tuple[str, str]]: ``(id, absolute path)`` in order.

    Raises:
        FileNotFoundError: a spec that names nothing (named in the message).
        ValueError: the same id for two different files.
    """
    ends = tuple('.' + e.lower().lstrip('.') for e in extensions)
    found: List[Tuple[str, str]] = []
    for spec in specs:
        if osp.isdir(spec):
            items = []
            for root, dirs, files in os.walk(spec, followlinks=True):
                dirs.sort()
                for name in files:
                    if name.lower().endswith(ends):
                        path = osp.join(root, name)
                        items.append((_posix(osp.relpath(path, spec)), path))
            if not items:
                raise FileNotFoundError(
                    f'no video ({", ".join(ends)}) under folder {spec}')
            found += sorted(items)
        elif osp.isfile(spec) and spec.lower().endswith('.txt'):
            base = osp.dirname(osp.abspath(spec))
            with open(spec, encoding='utf-8') as f:
                lines = [ln.strip() for ln in f]
            lines = [ln for ln in lines if ln and not ln.startswith('#')]
            if not lines:
                raise FileNotFoundError(f'list file {spec} names no video')
            found += [(ln, osp.join(base, ln)) for ln in lines]
        elif osp.isfile(spec):
            found.append((_posix(osp.normpath(spec)), spec))
        elif is_glob(spec):
            paths = sorted(
                p for p in glob.glob(spec, recursive=True) if osp.isfile(p))
            if not paths:
                raise FileNotFoundError(f'no file matches {spec!r}')
            found += [(_posix(osp.normpath(p)), p) for p in paths]
        else:
            raise FileNotFoundError(f'{spec} is not a folder, a glob, a '
                                    'list file or a video file')
    out, by_id, seen = [], {}, set()
    for vid, path in found:
        path = osp.abspath(path)
        if path in seen:
            continue
        if vid in by_id and by_id[vid] != path:
            raise ValueError(f'id {vid!r} names both {by_id[vid]} and '
                             f'{path}; index them separately')
        by_id[vid] = path
        seen.add(path)
        out.append((vid, path))
    return out
