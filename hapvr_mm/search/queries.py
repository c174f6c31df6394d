"""Turn what a user types into a model and query features.

A query is a video file (decoded and embedded like the index), a folder or
glob of video files, or the id (or file name) of a video in the index
(its stored features are used).
"""
import logging
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor, nn

from .index_file import VideoIndex
from .model_io import (build_search_model, config_from_index, decode_settings,
                       extract_batch, model_fingerprint, video_loader)
from .sources import collect_videos, is_glob

__all__ = ['Query', 'model_for_index', 'embed_files', 'resolve_queries']


@dataclass
class Query:
    """One query: its name, indexed features, global descriptor and, when
    it is a video of the index, its row there."""

    name: str
    features: Tensor
    global_desc: Tensor
    row: Optional[int] = None
    path: str = ''


def model_for_index(index: Optional[VideoIndex],
                    config: Optional[str] = None,
                    checkpoint: Optional[str] = None,
                    device: Optional[str] = None,
                    cfg_options: Optional[dict] = None,
                    check: bool = True) -> Tuple[nn.Module, Dict]:
    """Build the model an index was made with (or the one given).

    Args:
        index (VideoIndex, optional): the index (a file, or a
            :class:`~.shards.ShardedIndex`); the config it stores as
            JSON data (resolved, with the options given at indexing time)
            and its ``checkpoint`` are the defaults. An older index with
            Python config text is refused (it is never executed): pass
            ``config`` or rebuild it.
        config (str, optional): a config file instead.
        checkpoint (str, optional): a checkpoint instead (``'none'``: the
            untrained model).
        device (str, optional): torch device.
        cfg_options (dict, optional): config overrides.
        check (bool): refuse a model whose fingerprint differs from the
            index's. Defaults to True.

    Returns:
        tuple: the model and the decoding settings (the index's, else the
        config's).

    Raises:
        ValueError: no config, or a model other than the index's.
    """
    attrs = index.attrs if index is not None else {}
    if config is not None:
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg = Config.fromfile(config)
    elif index is not None:
        # stored as JSON data: reading an index runs no code (the config
        # file named in attrs['config'] is not executed either)
        cfg = config_from_index(attrs, index.path)
    else:
        raise ValueError('give --config (and --checkpoint): there is no '
                         'index to read them from')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if checkpoint is None:
        checkpoint = attrs.get('checkpoint', 'none')
        if checkpoint != 'none' and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'the index {index.path} was made with checkpoint '
                f'{checkpoint}, which does not exist any more; pass '
                '--checkpoint')
    model = build_search_model(cfg, checkpoint, device)
    if index is not None and check and attrs.get('fingerprint'):
        if model_fingerprint(model) != attrs['fingerprint']:
            raise ValueError(
                f'the model (config {config or attrs.get("config")}, '
                f'checkpoint {checkpoint}) is not the one that made the '
                f'index {index.path}: scores would be meaningless. Use the '
                'same config and checkpoint, or re-index.')
    if index is not None and 'fps' in attrs:
        settings = {
            k: (None if attrs.get(k) == 'none' else attrs.get(k))
            for k in ('fps', 'short_side', 'crop', 'max_frames')
        }
    else:
        settings = decode_settings(cfg)
    return model, settings


def embed_files(model: nn.Module,
                paths: Sequence[str],
                settings: Dict,
                batch_size: int = 4,
                workers: int = 0) -> List[Tuple]:
    """Decode and embed video files.

    Returns:
        list[tuple]: per path, ``(indexed features, global descriptor,
        None)`` or ``(None, None, skip reason)``.
    """
    out = []
    if not paths:
        return out
    for batch in video_loader(paths, settings, batch_size, workers):
        good = [(f, s) for f, s in zip(batch['inputs'], batch['data_samples'])
                if f is not None]
        feats = iter(
            extract_batch(
                model, [f for f, _ in good],
                data_samples=[s for _, s in good]))
        for frames, sample in zip(batch['inputs'], batch['data_samples']):
            if frames is None:
                out.append((None, None, sample.metainfo.get('skip_reason')))
            else:
                f, g = next(feats)
                out.append((f.cpu(), g.cpu(), None))
    return out


def resolve_queries(specs: Sequence[str],
                    index: Optional[VideoIndex],
                    model: nn.Module,
                    settings: Dict,
                    workers: int = 0) -> List[Query]:
    """Queries from ids of the index, video files, folders and globs.

    An existing file or folder is read from disk (a file that is also in
    the index keeps its row, so that it can be left out of its own
    results); else an id (or unique file name) of the index is its stored
    video; else a spec with ``*``, ``?`` or ``[`` is a glob pattern. A name
    such as ``Movie [1080p].mp4`` therefore means that file or video.

    Raises:
        KeyError: a name that is neither a file nor in the index.
        ValueError: no query could be read.
    """
    slots: List = []  # a Query, or the (name, path) of a file to embed
    for spec in specs:
        # an existing file/folder, then an id of the index, always means
        # itself; a spec is a glob pattern only when it is neither
        if osp.exists(spec):
            slots += collect_videos([spec])
            continue
        row = index.find(spec) if index is not None else None
        if row is None and is_glob(spec):
            slots += collect_videos([spec])
            continue
        if row is None:
            where = f' nor a video of {index.path}' if index else ''
            raise KeyError(f'query {spec!r} is not a file{where}')
        slots.append(
            Query(index.ids[row], index.features(row),
                  index.global_rows([row])[0], row, index.paths[row]))
    by_path = {}
    if index is not None:
        by_path = {p: i for i, p in enumerate(index.paths) if p}
    files = [s for s in slots if not isinstance(s, Query)]
    embedded = iter(
        embed_files(model, [p for _, p in files], settings, workers=workers))
    queries: List[Query] = []
    for slot in slots:
        if isinstance(slot, Query):
            queries.append(slot)
            continue
        (name, path), (f, g, reason) = slot, next(embedded)
        if f is None:
            print_log(
                f'query {path} skipped: {reason}',
                logger='current',
                level=logging.WARNING)
            continue
        queries.append(
            Query(name, f, g, by_path.get(osp.abspath(path)),
                  osp.abspath(path)))
    if not queries:
        raise ValueError(f'none of the queries {list(specs)} could be read')
    return queries
