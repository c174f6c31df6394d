"""Convert a collection of videos into 1-fps frame folders (resumable).

Training samples a segment of ``2W`` seconds at 1 fps from each video
(docs/method.md sections 1 and 2). From an ordinary video file, with a
keyframe every few seconds, that means decoding most of the segment's
native frames (30 per kept frame at 30 fps); ``benchmarks/data_pipeline.py``
measures it at well over a second per clip, so feeding 128 clips per step
takes far more dataloader workers than a node has. A 1-fps frame folder is
decoded once here; training then reads ``2W`` JPEG files per clip.

Each video ``SRC/rel/name.ext`` becomes ``OUT/rel/name/00000.jpg``,
``00001.jpg``, ... (the ``k``-th image is the ``k``-th frame at ``--fps``,
native frame ``floor(k * r / fps + 0.5)`` as in
:func:`hapvr_mm.datasets.video_io.sample_frame_indices`), the layout that
``SSLVideoDataset`` and ``read_video_frames`` read as a 1-fps video. A
folder is written under a temporary name and renamed when complete, so an
interrupted run leaves no half folder under the final name; a rerun skips
every finished folder and redoes the rest (``--overwrite`` redoes all).
Videos that cannot be read (missing, empty, corrupt, zero frames, a frame
that fails to decode) are skipped, counted and listed with their reason in
``OUT/extract_frames_failed.tsv``; they are tried again on the next run.

Run it before training, not during: the dataset lists the folders when it
is built.

Example::

    python tools/data/extract_frames.py data/vcdb/distractors \\
        data/vcdb/distractors_1fps --workers 8
    # then: train_dataloader.dataset.data_root='data/vcdb/distractors_1fps'
"""
import argparse
import multiprocessing
import os
import os.path as osp
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

__all__ = [
    'list_videos', 'frame_folder_of', 'extract_video', 'extract_collection',
    'main', 'FAILED_LIST', 'TEMP_SUFFIX'
]

#: file under OUT listing the videos that could not be converted
FAILED_LIST = 'extract_frames_failed.tsv'
#: suffix of a folder being written (renamed away when complete)
TEMP_SUFFIX = '.extracting'


def list_videos(src: str,
                list_file: Optional[str] = None,
                extensions: Optional[Sequence[str]] = None) -> List[str]:
    """Video paths relative to ``src``, sorted.

    Args:
        src (str): Root folder of the collection.
        list_file (str, optional): One path per line (relative to ``src``
            or absolute inside it; ``#`` comments and blank lines ignored)
            instead of scanning ``src``.
        extensions (Sequence[str], optional): Extensions scanned, with or
            without the dot, any case. Defaults to
            ``SSLVideoDataset``'s ``VIDEO_EXTENSIONS``.

    Returns:
        list[str]: Relative paths.

    Raises:
        ValueError: ``src`` is not a folder, or a listed path lies outside
            it.
    """
    if not osp.isdir(src):
        raise ValueError(f'source {src!r} is not a folder')
    if list_file:
        rels = []
        with open(list_file, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                rel = osp.relpath(line, src) if osp.isabs(line) else line
                if rel.startswith('..'):
                    raise ValueError(f'{list_file}: {line!r} is not inside '
                                     f'the source folder {src!r}')
                rels.append(osp.normpath(rel))
        return sorted(set(rels))
    if extensions is None:
        from hapvr_mm.datasets.ssl_video_dataset import VIDEO_EXTENSIONS
        extensions = VIDEO_EXTENSIONS
    exts = tuple(
        (e if e.startswith('.') else '.' + e).lower() for e in extensions)
    out = []
    for root, dirs, files in os.walk(src, followlinks=True):
        dirs.sort()
        out.extend(
            osp.relpath(osp.join(root, f), src) for f in sorted(files)
            if osp.splitext(f)[1].lower() in exts)
    return out


def frame_folder_of(rel: str, out: str) -> str:
    """Frame folder of the video ``rel``: ``out/rel`` without extension."""
    return osp.join(out, osp.splitext(rel)[0])


def extract_video(path: str,
                  dest: str,
                  fps: float = 1.0,
                  quality: int = 90,
                  short_side: Optional[int] = None,
                  batch: int = 64) -> int:
    """Decode ``path`` at ``fps`` and write ``dest/00000.jpg, ...``.

    Frames are decoded in sorted batches of ``batch`` sampled positions
    (one seek per batch; decord then decodes forward), so a video is
    decoded about once whatever its keyframe interval, and memory stays at
    ``batch`` frames. The folder is written as ``dest + TEMP_SUFFIX`` and
    renamed to ``dest`` when complete.

    Args:
        path (str): Video file.
        dest (str): Frame folder to create (must not exist).
        fps (float): Sampling rate. Defaults to 1.0.
        quality (int): JPEG quality (OpenCV, 0-100). Defaults to 90.
        short_side (int, optional): Resize so that the shorter side has
            this length (``resize_short_side``); None keeps the size.
        batch (int): Sampled frames decoded per call. Defaults to 64.

    Returns:
        int: Number of frames written.

    Raises:
        VideoReadError: The video cannot be read (the temporary folder is
            removed).
    """
    import cv2

    from hapvr_mm.datasets.video_io import open_video, resize_short_side
    tmp = dest + TEMP_SUFFIX
    if osp.isdir(tmp):
        shutil.rmtree(tmp)
    try:
        video = open_video(path)
        length = video.length(fps)
        os.makedirs(tmp)
        for start in range(0, length, batch):
            frames = video.read(
                fps, start=start, num=min(batch, length - start))
            if short_side:
                frames = resize_short_side(frames, short_side)
            for k, frame in enumerate(frames, start):
                name = osp.join(tmp, f'{k:05d}.jpg')
                ok = cv2.imwrite(name, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                 [cv2.IMWRITE_JPEG_QUALITY,
                                  int(quality)])
                if not ok:
                    raise OSError(f'OpenCV could not write {name!r}')
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, dest)
    return length


def _job(args: Tuple) -> Tuple[str, str, int, str]:
    """Convert one video in a worker: ``(rel, status, frames, reason)``."""
    from hapvr_mm.datasets.video_io import VideoReadError
    rel, src, out, fps, quality, short_side, overwrite = args
    dest = frame_folder_of(rel, out)
    if osp.isdir(dest):
        if not overwrite:
            return rel, 'done', 0, ''
        shutil.rmtree(dest)
    os.makedirs(osp.dirname(dest) or '.', exist_ok=True)
    try:
        n = extract_video(osp.join(src, rel), dest, fps, quality, short_side)
    except VideoReadError as exc:
        return rel, 'failed', 0, exc.reason
    return rel, 'converted', n, ''


def extract_collection(src: str,
                       out: str,
                       workers: int = 4,
                       fps: float = 1.0,
                       quality: int = 90,
                       short_side: Optional[int] = None,
                       list_file: Optional[str] = None,
                       overwrite: bool = False,
                       log_every: int = 100) -> Dict[str, int]:
    """Convert every video of ``src`` into a frame folder under ``out``.

    Args:
        src (str): Root folder of the videos.
        out (str): Root of the frame folders (created).
        workers (int): Parallel processes (1: in this process). Defaults
            to 4.
        fps (float): Sampling rate. Defaults to 1.0.
        quality (int): JPEG quality. Defaults to 90.
        short_side (int, optional): See :func:`extract_video`.
        list_file (str, optional): See :func:`list_videos`.
        overwrite (bool): Redo finished folders. Defaults to False.
        log_every (int): Print progress every this many videos.

    Returns:
        dict: ``videos``, ``converted``, ``done`` (finished by an earlier
        run, skipped), ``failed`` and ``frames`` (written by this run).
    """
    if workers < 1:
        raise ValueError(f'workers must be >= 1, got {workers}')
    rels = list_videos(src, list_file)
    os.makedirs(out, exist_ok=True)
    jobs = [(rel, src, out, fps, quality, short_side, overwrite)
            for rel in rels]
    counts = dict(videos=len(rels), converted=0, done=0, failed=0, frames=0)
    failures: List[Tuple[str, str]] = []
    start = time.time()
    if workers == 1:
        results = map(_job, jobs)
        pool = None
    else:
        # fork where there is one: workers need no import of this file
        # (it may have been loaded from its path); nothing is decoded in the
        # parent before the fork
        methods = multiprocessing.get_all_start_methods()
        pool = multiprocessing.get_context('fork' if 'fork' in
                                           methods else None).Pool(workers)
        results = pool.imap_unordered(_job, jobs, chunksize=1)
    try:
        for i, (rel, status, n, reason) in enumerate(results, 1):
            counts[status] += 1
            counts['frames'] += n
            if status == 'failed':
                failures.append((rel, reason))
                print(f'skipped {rel}: {reason}', flush=True)
            if log_every and i % log_every == 0:
                print(
                    f'{i}/{len(rels)} videos, {time.time() - start:.0f} s',
                    flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    with open(osp.join(out, FAILED_LIST), 'w', encoding='utf-8') as f:
        f.write('# video\treason (this run; tried again on the next)\n')
        for rel, reason in sorted(failures):
            f.write(f'{rel}\t{reason}\n')
    return counts


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Convert videos to 1-fps frame folders (resumable, '
        'parallel; unreadable videos are skipped and listed).')
    parser.add_argument('src', help='folder of videos')
    parser.add_argument('out', help='root of the frame folders')
    parser.add_argument(
        '--workers', type=int, default=4, help='parallel processes')
    parser.add_argument('--fps', type=float, default=1.0, help='sampling rate')
    parser.add_argument(
        '--quality', type=int, default=90, help='JPEG quality (0-100)')
    parser.add_argument(
        '--short-side',
        type=int,
        default=None,
        help='resize so that the shorter side has this length (default: '
        'keep the size)')
    parser.add_argument(
        '--list', dest='list_file', help='file of video paths to convert')
    parser.add_argument(
        '--overwrite', action='store_true', help='redo finished folders')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, int]:
    """Run the conversion and print a summary; returns the counts."""
    args = parse_args(argv)
    start = time.time()
    counts = extract_collection(args.src, args.out, args.workers, args.fps,
                                args.quality, args.short_side, args.list_file,
                                args.overwrite)
    print(f'{counts["videos"]} videos: {counts["converted"]} converted '
          f'({counts["frames"]} frames), {counts["done"]} already done, '
          f'{counts["failed"]} failed (listed in '
          f'{osp.join(args.out, FAILED_LIST)}) in '
          f'{time.time() - start:.1f} s')
    return counts


if __name__ == '__main__':
    main()
