"""Check, before a long run, that every file and folder a config names exists.

:func:`find_missing_files` walks the parts of a config that a run will use
(the model, the training hooks, the dataloaders and evaluators of the
stages that run, ``load_from``) and collects every local path under a key
that names a file or a folder (:data:`FILE_KEYS`, :data:`FOLDER_KEYS`,
``video_pattern``) which does not exist, with the dotted config key to
set. :func:`check_config_files` raises one :class:`PreflightError` that
lists them all (a plain exception: the tools catch it and stop with the list
and no traceback).

:func:`check_checkpoint_file` tells a truncated checkpoint (an interrupted
copy or download) from a good one before ``torch.load`` fails with a message
that does not name the file.
"""
import os
import os.path as osp
import zipfile
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

from mmengine.config import Config

from .errors import PreflightError

__all__ = [
    'PreflightError', 'MissingPath', 'find_missing_files',
    'check_config_files', 'check_checkpoint_file', 'latest_checkpoint',
    'FILE_KEYS', 'FOLDER_KEYS'
]

#: Config keys whose string value is a file that must exist.
FILE_KEYS = ('checkpoint', 'pretrained', 'pca_file', 'ann_file',
             'feature_file', 'unlabeled_file', 'easy_duplicates', 'load_from')
#: Config keys whose string value is a folder that must exist.
FOLDER_KEYS = ('data_root', )
#: Keys whose files are checkpoints (checked for truncation too).
CHECKPOINT_KEYS = ('checkpoint', 'pretrained', 'load_from', 'pca_file')


class MissingPath(NamedTuple):
    """One missing path: the config key to set, the path and its kind."""
    key: str
    path: str
    kind: str  # 'file' or 'folder'


def _is_remote(path: str) -> bool:
    return '://' in path


def _walk(node: Any, prefix: str) -> Iterator[Tuple[str, str, Any]]:
    """Yield ``(dotted key, last key, value)`` for every leaf of a config."""
    if isinstance(node, dict):
        for key, value in node.items():
            name = f'{prefix}.{key}' if prefix else str(key)
            if isinstance(value, (dict, list, tuple)):
                yield from _walk(value, name)
            else:
                yield name, str(key), value
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            name = f'{prefix}.{i}'
            if isinstance(value, (dict, list, tuple)):
                yield from _walk(value, name)


def _pattern_folder(pattern: str) -> str:
    """The fixed folder part of a ``video_pattern`` like ``root/{id}.mp4``."""
    head = pattern.split('{', 1)[0]
    return osp.dirname(head) if '{' in pattern else osp.dirname(pattern)


def _sections(cfg: Config, mode: str) -> List[str]:
    """Top-level config keys that a ``mode`` run uses."""
    if mode == 'train':
        names = ['model', 'custom_hooks', 'train_dataloader']
        if cfg.get('val_cfg') is not None and \
                cfg.get('val_dataloader') is not None:
            names += ['val_dataloader', 'val_evaluator']
        if not cfg.get('resume', False):
            names.append('load_from')
    elif mode == 'test':
        names = ['model', 'test_dataloader', 'test_evaluator', 'load_from']
    else:
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    return names


def _setting_keys(cfg: Config, path: str) -> List[str]:
    """Top-level variables of the config that hold ``path`` (to set)."""
    out = []
    for key, value in cfg.items():
        if isinstance(value, str) and value == path:
            out.append(key)
    return out


def find_missing_files(cfg: Config, mode: str = 'train') -> List[MissingPath]:
    """Every local file / folder the config names that does not exist.

    Only the parts a ``mode`` run uses are walked: for ``'train'`` the
    model, ``custom_hooks``, ``train_dataloader``, the validation dataloader
    and evaluator when validation is on, and ``load_from`` unless resuming;
    for ``'test'`` the model, the test dataloader and evaluator and
    ``load_from``. Keys are recognised by name wherever they appear
    (``init_cfg.checkpoint``, a backbone's ``pretrained`` path,
    ``pca_file``, ``ann_file``, ``feature_file``, ``data_root``,
    ``video_pattern``'s folder, ...). ``None``, booleans, empty
    strings and URLs are ignored; a relative ``ann_file`` next to a
    ``data_root`` is looked up under it (mmengine's convention).

    Args:
        cfg (Config): The merged config.
        mode (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.

    Returns:
        list[MissingPath]: In config order, one entry per distinct key.
    """
    missing: List[MissingPath] = []
    seen = set()
    for section in _sections(cfg, mode):
        node = cfg.get(section)
        if node is None:
            continue
        leaves = ([(section, section, node)]
                  if isinstance(node, str) else list(_walk(node, section)))
        roots = {
            k.rsplit('.', 1)[0]: v
            for k, last, v in leaves
            if last == 'data_root' and isinstance(v, str) and v
        }
        for key, last, value in leaves:
            if not isinstance(value, str) or not value or _is_remote(value):
                continue
            if last == 'video_pattern':
                path, kind = _pattern_folder(value) or '.', 'folder'
            elif last in FOLDER_KEYS:
                path, kind = value, 'folder'
            elif last in FILE_KEYS:
                path, kind = value, 'file'
                root = roots.get(key.rsplit('.', 1)[0])
                if last == 'ann_file' and root and not osp.isabs(path):
                    path = osp.join(root, path)
            else:
                continue
            exists = osp.isdir(path) if kind == 'folder' else \
                osp.isfile(path)
            if not exists and (key, path) not in seen:
                seen.add((key, path))
                missing.append(MissingPath(key, path, kind))
    return missing


def _describe(cfg: Config,
              item: MissingPath,
              labels: Optional[Dict[str, str]] = None) -> str:
    key = (labels or {}).get(item.key, item.key)
    names = [k for k in _setting_keys(cfg, item.path) if k != item.key]
    also = (f' (the config file sets it from `{"`, `".join(names)}`)'
            if names else '')
    return f'  {key}{also}: {item.kind} {item.path!r} does not exist'


def check_checkpoint_file(path: str, key: str) -> None:
    """Fail with the file's name when a checkpoint cannot be read.

    ``torch.save`` writes a zip archive whose directory is at the end of the
    file, so a truncated copy has a zip header but no readable directory;
    ``torch.load`` then fails without naming the file. Files in the legacy
    (non-zip) format are only checked for being non-empty.

    Args:
        path (str): The checkpoint file.
        key (str): Where it comes from (a config key or an option), for the
            message.

    Raises:
        PreflightError: The file is missing, empty or truncated.
    """
    if not osp.isfile(path):
        raise PreflightError(f'{key}: checkpoint file {path!r} does not exist')
    if os.path.getsize(path) == 0:
        raise PreflightError(f'{key}: checkpoint file {path!r} is empty')
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic[:2] != b'PK':
        return  # legacy pickle format: nothing cheap to check
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise PreflightError(
            f'{key}: checkpoint file {path!r} is truncated or corrupt '
            f'({exc}); copy or download it again') from None


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` without a path would load, if any.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: The path named by ``work_dir/last_checkpoint``.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record, encoding='utf-8') as f:
        path = f.read().strip()
    return path or None


def check_config_files(cfg: Config,
                       mode: str = 'train',
                       labels: Optional[Dict[str, str]] = None) -> None:
    """Stop, listing every missing file and folder, before a run starts.

    Also checks that the checkpoints that will be loaded (``load_from``, the
    checkpoint a resumed run starts from, every existing
    ``init_cfg.checkpoint``, ``pretrained`` and ``pca_file``) are not
    truncated.

    Args:
        cfg (Config): The merged config.
        mode (str): ``'train'`` or ``'test'``.
        labels (dict, optional): How to call a config key in the messages
            when a command-line option set it, e.g.
            ``{'load_from': 'CHECKPOINT'}``.

    Raises:
        PreflightError: With one line per missing path and the config key
            to set (``--cfg-options KEY=PATH`` or the config file).
    """
    labels = labels or {}
    missing = find_missing_files(cfg, mode)
    resume_from = None
    if mode == 'train' and cfg.get('resume', False):
        resume_from = cfg.get('load_from')
        if resume_from and not _is_remote(resume_from) and \
                not osp.isfile(resume_from):
            missing.append(MissingPath('load_from', resume_from, 'file'))
    if missing:
        lines = [_describe(cfg, m, labels) for m in missing]
        raise PreflightError(
            f'{len(missing)} file(s) or folder(s) named by the config are '
            'missing; set these config keys (in the config or with '
            '--cfg-options KEY=PATH) before the run:\n' + '\n'.join(lines),
            missing)
    checked = set()
    for section in _sections(cfg, mode):
        node = cfg.get(section)
        leaves = ([(section, section, node)] if isinstance(node, str) else
                  list(_walk(node, section)) if node is not None else [])
        for key, last, value in leaves:
            if last in CHECKPOINT_KEYS and isinstance(value, str) and \
                    value and not _is_remote(value) and \
                    value not in checked:
                checked.add(value)
                check_checkpoint_file(value, labels.get(key, key))
    if mode == 'train' and cfg.get('resume', False):
        path = resume_from or latest_checkpoint(cfg.work_dir)
        if path and not _is_remote(path):
            check_checkpoint_file(
                path,
                labels.get('load_from', 'load_from') if resume_from else
                f'--resume (latest checkpoint of {cfg.work_dir})')
