"""Index a video collection for search, or extract frozen region features.

Examples:
    # a search index of a folder (recursively), a list file or a glob
    python tools/extract_features.py CONFIG CHECKPOINT --videos my_videos/ \
        --out my_index.h5
    python tools/extract_features.py CONFIG none --videos 'clips/*.mp4' \
        --out idx.h5                      # untrained model (a warning)
    # several processes, one shard each: a folder as --out
    bash: torchrun --nproc_per_node 2 tools/extract_features.py CONFIG CKPT \
        --videos my_videos/ --out my_index/ --launcher pytorch

    # plain region features of a benchmark's ids (for feature_file configs)
    python tools/extract_features.py CONFIG --ids ids.txt \
        --video-pattern 'data/videos/{id}.mp4' --out feats.h5
    python tools/extract_features.py CONFIG --annotation fivr.pk \
        --annotation-type FIVR --video-pattern 'v/{id}.mp4' --out f.h5 \
        --dtype float16

Two output layouts:

* a **search index** (``--videos``, or ``--index`` with ids): the model's
  indexed features (after region attention) and a global descriptor per
  video, with the ids, paths, decoding settings, config and checkpoint
  (see ``hapvr_mm/search/index_file.py`` and docs/search.md). Read by
  ``tools/search.py`` and ``tools/compare_videos.py``.
* **plain features** (``--ids`` / ``--annotation`` / the config's ids,
  without ``--index``): one ``[T, R, D]`` dataset of raw region features per
  video id, the ``feature_file`` of a ``RetrievalDataset``.

The model comes from ``CONFIG``'s ``model`` (``init_weights()`` with a fixed
seed) and the checkpoint on top (positional, or ``--checkpoint``; ``none``
keeps the untrained weights). Frames are decoded as the config's
``DecodeRetrievalVideo`` step (else 1 fps, short side 256, centre crop 224:
docs/method.md section 2); ``--fps``, ``--short-side``, ``--crop`` override.
``--batch-size`` videos are decoded by ``--workers`` processes and run
through the backbone together.

Resumable: videos already in the output are skipped, and both layouts
roll back a video whose writing was interrupted, so a killed run, started
again, ends with the same file as an uninterrupted one. One writer at a
time: the output is locked (``<out>.lock``, naming the writer's host and
pid) for the whole run, and a second run on the same file stops at once
with an error naming the first (whatever ``HDF5_USE_FILE_LOCKING``
says). Unreadable or missing videos are logged with their reason, counted,
and left out (and retried by the next run).

Several processes (``--launcher pytorch`` / ``slurm``):

* ``--out`` a folder (existing, or ending in ``/``; search indexes only):
  a **shard set** (``hapvr_mm/search/shards.py``). Rank ``r`` writes
  ``DIR/shard-{r:05d}.h5`` alone, with its own lock and commit protocol and
  no collective per video, so a killed rank loses at most the video it was
  writing. Ids committed in any shard of the folder (also shards of ranks
  a new run does not have) are skipped; the rest is split round-robin.
  Once every rank has closed its shard, rank 0 writes
  ``DIR/manifest.json`` (shard names, video counts, model fingerprint,
  decoding settings), atomically; it holds ``DIR/manifest.json.lock``
  for the whole run (one run per folder at a time). A single process
  with a folder writes ``shard-00000.h5``. ``tools/search.py DIR`` (or
  ``DIR/manifest.json``) reads the set as one index.
* ``--out`` an ``.h5`` file (and always for plain features): every process
  decodes and embeds its share and rank 0 gathers the results and writes
  the one file, in the order of a single process.

``HAPVR_WRITE_FAULT`` (tests) kills the writer at a given video; with
``HAPVR_WRITE_FAULT_RANK=r`` only rank ``r``'s.
"""
import argparse
import datetime
import os
import os.path as osp
import sys
import time
from typing import Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

import hapvr_mm  # noqa: F401
from hapvr_mm.datasets.annotations import load_annotation, read_id_list
from hapvr_mm.search import (VIDEO_EXTENSIONS, IndexWriter, build_search_model,
                             collect_videos, config_to_json, decode_settings,
                             extract_batch, model_fingerprint, video_loader)
from hapvr_mm.search.index_file import (FeatureFileWriter, WriterLock,
                                        WriterLockedError)
from hapvr_mm.search.shards import (AGREED_KEYS, MANIFEST_NAME, committed_ids,
                                    list_shards, open_index, remove_manifest,
                                    shard_name, shard_set_dtype,
                                    write_manifest)
from hapvr_mm.utils import init_dist_cpu, shutdown_dist


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Index videos for search (tools/search.py) or extract '
        'HAP-VR region features into an HDF5 file',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
        '  %(prog)s CONFIG CKPT --videos my_videos/ --out index.h5\n'
        '  %(prog)s CONFIG none --videos list.txt --out index.h5\n'
        '  %(prog)s CONFIG --ids ids.txt --video-pattern "v/{id}.mp4" '
        '--out feats.h5')
    parser.add_argument('config', help='config with the model')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help="model checkpoint, or 'none' for the untrained model (same as "
        '--checkpoint)')
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        '--videos',
        nargs='+',
        metavar='SPEC',
        help='folders (searched recursively by --ext), globs, .txt list '
        'files or video files; writes a search index')
    src.add_argument('--ids', help='text file (one id per line) or pickle')
    src.add_argument('--annotation', help='annotation file')
    parser.add_argument(
        '--annotation-type',
        default='JSON',
        help='type of --annotation (JSON, FIVR, EVVE, SVD, CC_WEB_VIDEO)')
    parser.add_argument(
        '--video-pattern',
        help="path pattern with {id} for ids; defaults to the config's "
        'test_dataloader.dataset.video_pattern')
    parser.add_argument(
        '--index',
        action='store_true',
        help='write a search index also for --ids/--annotation/config ids '
        '(--videos always does)')
    parser.add_argument(
        '--ext',
        nargs='+',
        default=list(VIDEO_EXTENSIONS),
        help='file endings searched in --videos folders')
    parser.add_argument(
        '--out',
        required=True,
        help='output .h5 file, or a folder (existing, or ending in /) for a '
        'shard set: one shard-RRRRR.h5 per process')
    parser.add_argument(
        '--checkpoint',
        dest='checkpoint_opt',
        help="model checkpoint ('none': untrained)")
    parser.add_argument(
        '--dtype',
        choices=['float16', 'float32'],
        default=None,
        help='type of the stored features (default: float16 for a search '
        'index, whose scores stay within 1e-3 of float32, and the stored '
        'type when resuming one; float32 for plain features)')
    parser.add_argument(
        '--fp16',
        dest='dtype',
        action='store_const',
        const='float16',
        help='same as --dtype float16')
    parser.add_argument(
        '--fps', type=float, default=None, help="default: the config's, 1")
    parser.add_argument(
        '--short-side',
        type=int,
        default=None,
        help="default: the config's, 256")
    parser.add_argument(
        '--crop', type=int, default=None, help="default: the config's, 224")
    parser.add_argument(
        '--max-frames', type=int, default=None, help='cap frames per video')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=4,
        help='videos decoded and embedded together (default 4)')
    parser.add_argument(
        '--workers', type=int, default=2, help='decoding worker processes')
    parser.add_argument(
        '--log-interval',
        type=float,
        default=10.0,
        help='seconds between progress lines (default 10)')
    parser.add_argument(
        '--device',
        default=None,
        help="'cuda' or 'cpu' (default: cuda if available)")
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='job launcher (several processes: torchrun ... --launcher '
        'pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.checkpoint and args.checkpoint_opt and \
            args.checkpoint != args.checkpoint_opt:
        parser.error('give the checkpoint once (positional or --checkpoint)')
    args.checkpoint = args.checkpoint or args.checkpoint_opt
    if args.checkpoint is not None and args.checkpoint.lower() == 'none':
        args.checkpoint = None
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def video_ids(args: argparse.Namespace, cfg: Config) -> list:
    """Ids to extract, from ``--ids``, ``--annotation`` or the config."""
    if args.ids:
        return read_id_list(args.ids, 'video ids')
    if args.annotation:
        ann = load_annotation(
            dict(type=args.annotation_type, ann_file=args.annotation))
        return list(ann.all_ids)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if 'annotation' not in dataset:
        raise SystemExit('give --videos, --ids or --annotation (the config '
                         'has no test_dataloader.dataset.annotation)')
    return list(load_annotation(dataset['annotation']).all_ids)


def list_videos(args: argparse.Namespace, cfg: Config) -> list:
    """``(id, path)`` of every video to process."""
    if args.videos:
        return collect_videos(args.videos, args.ext)
    pattern = args.video_pattern or (
        (cfg.get('test_dataloader') or {}).get('dataset')
        or {}).get('video_pattern')
    if not pattern:
        raise SystemExit('give --video-pattern (a path with {id})')
    if '{id}' not in pattern:
        raise SystemExit(f"--video-pattern must contain '{{id}}', got "
                         f'{pattern!r}')
    ids = list(dict.fromkeys(map(str, video_ids(args, cfg))))
    return [(vid, pattern.format(id=vid)) for vid in ids]


def init_launcher(launcher: str) -> tuple:
    """Start the process group of ``--launcher``; ``(rank, world)``."""
    if launcher == 'none':
        return 0, 1
    if torch.cuda.is_available():
        from mmengine.dist import init_dist
        init_dist(launcher)
    else:
        init_dist_cpu(launcher)
    return torch_dist.get_rank(), torch_dist.get_world_size()


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def take_output_lock(path: str, world: int) -> WriterLock:
    """Lock the output on rank 0 before any work; stop every rank if held.

    Args:
        path (str): the output file.
        world (int): number of processes (the outcome is broadcast).

    Returns:
        WriterLock | None: the held lock on rank 0, None on other ranks.

    Raises:
        SystemExit: another process writes ``path`` (its host and pid in
            the message), or the lock file cannot be made.
    """
    lock, error = None, None
    if world == 1 or torch_dist.get_rank() == 0:
        out_dir = osp.dirname(osp.abspath(path))
        try:
            os.makedirs(out_dir, exist_ok=True)
            lock = WriterLock(path).acquire()
        except WriterLockedError as err:
            error = f'error: {err}'
        except OSError as err:
            error = f'error: cannot lock {path}: {err}'
    if world > 1:
        box = [error]
        torch_dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error:
        shutdown_dist()
        raise SystemExit(error)
    return lock


def index_attrs(args, config_json: Optional[str], model,
                settings: dict) -> dict:
    """Attributes stored in a search index (or each shard) of this run."""
    return dict(
        config=osp.abspath(args.config),
        config_json=config_json,
        checkpoint=osp.abspath(args.checkpoint) if args.checkpoint else 'none',
        fingerprint=model_fingerprint(model),
        **settings)


def open_writer(args, config_json: Optional[str], model, dims: int,
                settings: dict, as_index: bool, lock: WriterLock):
    """The output's writer (rank 0), holding ``lock``.

    Returns:
        IndexWriter | FeatureFileWriter: the writer.

    Raises:
        SystemExit: the file cannot be resumed (other settings, another
            layout, not HDF5); the message says why.
    """
    try:
        if as_index:
            return IndexWriter(
                args.out,
                dims,
                attrs=index_attrs(args, config_json, model, settings),
                fp16=None if args.dtype is None else args.dtype == 'float16',
                lock=lock)
        return FeatureFileWriter(args.out, args.dtype == 'float16', lock=lock)
    except (ValueError, WriterLockedError) as err:
        raise SystemExit(f'error: {err}') from None


def log_storage(path: str, logger) -> dict:
    """Log (and return) the storage per video-minute of an index file.

    Args:
        path (str): the index file or shard set.
        logger: where to log.

    Returns:
        dict: :meth:`~hapvr_mm.search.VideoIndex.storage` of the index.
    """
    with open_index(path) as index:
        info = index.storage()
    if info['videos']:
        logger.info(
            f"{info['videos']} videos, {info['minutes']:.1f} video-minutes: "
            f"{info['dtype']} features of {info['regions']} x "
            f"{info['dims']} per frame, "
            f"{info['bytes_per_minute'] / 1e6:.3f} MB per video-minute "
            f"({info['file_bytes_per_minute'] / 1e6:.3f} MB with the rest "
            'of the file)')
    return info


def is_folder_out(out: str) -> bool:
    """Whether ``--out`` names a folder (existing, or ending in '/')."""
    return osp.isdir(out) or out.endswith(('/', os.sep))


def _agree(error: Optional[str], world: int, rank: int) -> Optional[str]:
    """The first error of any rank (every rank gets it), or None."""
    if world == 1:
        return error
    errors = [None] * world
    torch_dist.all_gather_object(errors, error)
    for r, err in enumerate(errors):
        if err:
            return err if r == rank else f'(rank {r}) {err}'
    return None


def _stop(error: str, *locks) -> None:
    for lock in locks:
        if lock is not None:
            lock.release()
    shutdown_dist()
    raise SystemExit(
        error if error.startswith('error:') else f'error: {error}')


def write_shard_set(args, rank: int, world: int, logger, videos: list, model,
                    dims: int, settings: dict, attrs: dict) -> dict:
    """Index ``videos`` into the shard set ``args.out`` (a folder).

    Rank ``r`` writes ``shard-{r:05d}.h5`` alone (own writer lock, own
    commit protocol), with no collective per video: a rank that dies loses
    only the video it was writing. Ids committed in any shard of the folder
    (also of ranks no longer present) are skipped; the rest is split
    round-robin. Once every rank has closed its shard, rank 0 writes
    ``manifest.json``.

    Args:
        args (Namespace): the parsed arguments.
        rank (int): this process's rank.
        world (int): number of processes.
        logger (MMLogger): progress and results.
        videos (list): ``(id, path)`` of every video of the collection.
        model (nn.Module): the search model.
        dims (int): feature dimension.
        settings (dict): decoding settings.
        attrs (dict): the index attributes of this run.

    Returns:
        dict: ``written``, ``skipped``, ``present`` (over all ranks on
        rank 0, this rank's own elsewhere).

    Raises:
        SystemExit: a shard is locked by another run, the folder's shards
            disagree with this run (the shard named), or another rank
            failed before the end (the set then has no manifest; run again
            to complete it).
    """
    folder = args.out.rstrip('/' + os.sep) or args.out
    shard = osp.join(folder, shard_name(rank))
    lock, error = WriterLock(shard), None
    # rank 0 also holds the set's lock (manifest.json.lock) for the whole
    # run: one run at a time per folder, even once its shards are closed
    set_lock = WriterLock(osp.join(folder, MANIFEST_NAME)) \
        if rank == 0 else None
    try:
        os.makedirs(folder, exist_ok=True)
        if set_lock is not None:
            set_lock.acquire()
        lock.acquire()
    except WriterLockedError as err:
        error = str(err)
    except OSError as err:
        error = f'cannot lock {shard}: {err}'
    error = _agree(error, world, rank)
    if error:
        _stop(error, lock, set_lock)
    box, dtype = [None, None, None], None
    if rank == 0:  # what the set holds already (every shard present)
        try:
            # a shard of no rank of this run may still be written by a
            # process of an earlier run whose rank 0 has gone
            ours = {shard_name(r) for r in range(world)}
            for path in list_shards(folder):
                if osp.basename(path) not in ours:
                    WriterLock(path).acquire().release()
            expect = {
                k: 'none' if attrs.get(k) is None else attrs[k]
                for k in AGREED_KEYS if k in attrs
            }
            # the type asked for, else the set's, else float16
            dtype = args.dtype or shard_set_dtype(folder) or 'float16'
            expect.update(dims=dims, dtype=dtype)
            box[0] = set(committed_ids(folder, expect))
            remove_manifest(folder)  # the set is about to change
        except (OSError, ValueError, WriterLockedError) as err:
            box[1] = str(err)
        box[2] = dtype
    if world > 1:
        torch_dist.broadcast_object_list(box, src=0)
    present, error, dtype = box
    if error:
        _stop(error, lock, set_lock)
    todo = [(vid, path) for vid, path in videos if vid not in present]
    mine = todo[rank::world]
    writer, error = None, None
    try:
        writer = IndexWriter(
            shard, dims, attrs, fp16=dtype == 'float16', lock=lock)
    except (ValueError, WriterLockedError) as err:
        error = str(err)
    error = _agree(error, world, rank)
    if error:
        if writer is not None:
            writer.close()
        _stop(error, lock, set_lock)
    npresent = len(videos) - len(todo)
    logger.info(f'{len(videos)} ids, {npresent} already in {folder}, '
                f'{len(todo)} to extract by {world} process(es) into '
                f'{shard_name(rank)}...')
    stats = dict(written=0, skipped=0, present=npresent)
    skipped = {}
    loader = video_loader([p for _, p in mine], settings, args.batch_size,
                          args.workers)
    start = last_log = time.perf_counter()
    done = 0
    with torch.no_grad():
        for step, batch in enumerate(loader):
            base = step * args.batch_size
            good = [(k, f) for k, f in enumerate(batch['inputs'])
                    if f is not None]
            feats = extract_batch(model, [f for _, f in good], True,
                                  [batch['data_samples'][k] for k, _ in good])
            by_k = {k: out for (k, _), out in zip(good, feats)}
            for k, sample in enumerate(batch['data_samples']):
                vid, path = mine[base + k]
                if k in by_k:
                    f, g = by_k[k]
                    writer.add(vid, f.cpu(), g.cpu(), osp.abspath(path))
                    stats['written'] += 1
                else:
                    reason = sample.metainfo.get('skip_reason')
                    stats['skipped'] += 1
                    skipped[vid] = str(reason)
                    logger.warning(f'skipped {vid!r} ({path}): {reason}')
            writer.flush()
            done += len(batch['data_samples'])
            now = time.perf_counter()
            if now - last_log >= args.log_interval or done == len(mine):
                last_log = now
                rate = done / max(now - start, 1e-9)
                logger.info(f'[{done}/{len(mine)}] (rank {rank}) '
                            f'{rate:.2f} videos/s, ETA '
                            f'{_eta((len(mine) - done) / max(rate, 1e-9))}, '
                            f"{stats['skipped']} skipped")
    writer.set_skipped(skipped)
    writer.close()  # committed and unlocked before any collective
    if world > 1:
        parts = [None] * world
        try:
            torch_dist.all_gather_object(parts, (stats, skipped))
        except RuntimeError as err:
            if set_lock is not None:
                set_lock.release()
            torch_dist.destroy_process_group()  # no barrier: a rank is gone
            raise SystemExit(
                f'error: rank {rank} finished {shard} ({len(mine)} videos), '
                f'but another rank failed ({err}); {folder} has no manifest '
                'yet: run the same command again to complete the set')
        stats = dict(
            written=sum(p[0]['written'] for p in parts),
            skipped=sum(p[0]['skipped'] for p in parts),
            present=npresent)
        skipped = {k: v for p in parts for k, v in p[1].items()}
    if rank == 0:
        manifest = write_manifest(folder)
        set_lock.release()
        logger.info(
            f"done: {stats['written']} written, {stats['skipped']} skipped, "
            f"{stats['present']} already present -> {folder} "
            f"({len(manifest['shards'])} shards, {manifest['videos']} "
            'videos, manifest.json)')
        if skipped:
            logger.warning(f'{len(skipped)} videos skipped: ' +
                           ', '.join(repr(v) for v in list(skipped)[:20]) +
                           (' ...' if len(skipped) > 20 else ''))
    return stats


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    as_index = bool(args.videos) or args.index
    sharded = as_index and is_folder_out(args.out)
    if not as_index and is_folder_out(args.out):
        raise SystemExit(f'error: --out {args.out} is a folder; plain '
                         'features go to one .h5 file (a shard set is for '
                         'search indexes: --videos or --index)')
    rank, world = init_launcher(args.launcher)
    lock = None if sharded else take_output_lock(args.out, world)
    logger = MMLogger.get_instance(
        f'hapvr_index_{os.getpid()}', logger_name='hapvr_index')
    config_json = None
    if as_index:  # stored as data: reading the index runs no code
        try:
            config_json = config_to_json(cfg)
        except TypeError as err:
            raise SystemExit(f'{args.config}: the config cannot be stored in '
                             f'the index as JSON data: {err}')
    videos = list_videos(args, cfg)
    settings = decode_settings(
        cfg,
        fps=args.fps,
        short_side=args.short_side,
        crop=args.crop,
        max_frames=args.max_frames)
    if args.checkpoint is None:
        logger.warning('no checkpoint: indexing with the untrained model')
    model = build_search_model(cfg, args.checkpoint, args.device)
    if getattr(model, 'backbone', None) is None:
        raise SystemExit(f'{args.config}: the model has no backbone')
    dims = int(model.feature_dims)
    if sharded:
        stats = write_shard_set(
            args, rank, world, logger, videos, model, dims, settings,
            index_attrs(args, config_json, model, settings))
        if rank == 0:
            stats['storage'] = log_storage(args.out, logger)
        shutdown_dist()
        return stats
    if world > 1 and as_index:
        logger.info(f'rank 0 writes every video into {args.out}; give a '
                    'folder as --out for one shard per process')

    writer = None
    todo = None
    if rank == 0:  # the only process that touches the output file
        writer = open_writer(args, config_json, model, dims, settings,
                             as_index, lock)
        todo = [(vid, path) for vid, path in videos if vid not in writer]
    if world > 1:
        box = [todo]
        torch_dist.broadcast_object_list(box, src=0)
        todo = box[0]
    present = len(videos) - len(todo)
    logger.info(f'{len(videos)} ids, {present} already in {args.out}, '
                f'{len(todo)} to extract')
    stats = dict(written=0, skipped=0, present=present)
    skipped = {}
    mine = list(range(rank, len(todo), world))
    loader = video_loader([todo[i][1] for i in mine], settings,
                          args.batch_size, args.workers)
    batches = iter(loader)
    per_rank = -(-len(todo) // world)
    steps = -(-per_rank // args.batch_size)
    start = last_log = time.perf_counter()
    done = 0
    with torch.no_grad():
        for step in range(steps):
            batch = next(batches, None)
            items = []
            if batch is not None:
                base = step * args.batch_size
                good = [(k, f) for k, f in enumerate(batch['inputs'])
                        if f is not None]
                feats = extract_batch(
                    model, [f for _, f in good], as_index,
                    [batch['data_samples'][k] for k, _ in good])
                by_k = {k: out for (k, _), out in zip(good, feats)}
                for k, sample in enumerate(batch['data_samples']):
                    pos = mine[base + k]
                    if k in by_k:
                        f, g = by_k[k]
                        items.append((pos, f.cpu(),
                                      None if g is None else g.cpu(), None))
                    else:
                        items.append((pos, None, None,
                                      sample.metainfo.get('skip_reason')))
            if world > 1:
                gathered = [None] * world if rank == 0 else None
                torch_dist.gather_object(items, gathered, dst=0)
                if rank == 0:
                    items = [it for part in gathered for it in part]
            if rank != 0:
                continue
            for pos, f, g, reason in sorted(items, key=lambda it: it[0]):
                vid, path = todo[pos]
                if f is None:
                    stats['skipped'] += 1
                    skipped[vid] = str(reason)
                    logger.warning(f'skipped {vid!r} ({path}): {reason}')
                else:
                    writer.add(vid, f, g, osp.abspath(path))
                    stats['written'] += 1
            writer.flush()
            done += len(items)
            now = time.perf_counter()
            if now - last_log >= args.log_interval or done == len(todo):
                last_log = now
                rate = done / max(now - start, 1e-9)
                logger.info(f'[{done}/{len(todo)}] {rate:.2f} videos/s, ETA '
                            f'{_eta((len(todo) - done) / max(rate, 1e-9))}, '
                            f"{stats['skipped']} skipped")
    # the decoding workers were forked with the output open: stop them
    # before the file is closed and read again
    del batches, loader
    if rank == 0:
        writer.set_skipped(skipped)
        writer.close()
        logger.info(
            f"done: {stats['written']} written, {stats['skipped']} skipped, "
            f"{stats['present']} already present -> {args.out}")
        if as_index:
            stats['storage'] = log_storage(args.out, logger)
        if skipped:
            logger.warning(f'{len(skipped)} videos skipped: ' +
                           ', '.join(repr(v) for v in list(skipped)[:20]) +
                           (' ...' if len(skipped) > 20 else ''))
    shutdown_dist()
    return stats


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ))
