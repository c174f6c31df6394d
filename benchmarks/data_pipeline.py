"""Throughput of the training data pipeline on realistic videos (CPU).

The paper's batch is 64 source videos per GPU, two views of ``W = 28``
frames each, sampled at 1 fps from a segment of ``2W`` seconds
(docs/method.md sections 1 and 2). This script measures how many such clips
one dataloader worker produces per second, and how many workers a step of
128 clips per second needs, along three paths over the same videos and the
same frame indices:

* ``raw``: the training pipeline of ``configs/_base_/datasets/ssl_vcdb.py``
  (``DecodeSSLSegment`` + ``HAPVRViews`` + ``PackSSLInputs``) reading the
  original video file (decord);
* ``frames``: the same pipeline reading a 1-fps frame folder
  (``tools/data/extract_frames.py``);
* ``1-fps mp4``: the same pipeline reading the frame folder re-encoded as
  a 1-fps H.264 file (keyframe every ``--mp4-keyint`` seconds), the other
  way to store a collection decoded once;
* ``mmaction2``: mmaction2's own decord pipeline (``DecordInit`` +
  ``DecordDecode``) on the native frame indices that ``DecodeSSLSegment``
  reads (the indices ``SampleFrames`` would have to produce), and its
  ``RawFrameDecode`` on the frame folder; decoding only, compared with the
  decoding step of ours (``decode``: ``DecodeSSLSegment`` alone, no
  resize).

Test videos are written once into ``--workdir`` and reused: 640x360,
30 fps, H.264 (libx264) with a keyframe every ``--keyint`` frames (ordinary
web video: several seconds), moving textured content with a scene cut every
``--shot`` seconds. OpenCV's writer cannot set the keyframe interval, so the
encoder is PyAV (``pip install av``, which bundles FFmpeg with libx264);
the script says so and stops if it is missing.

Every measurement runs in this one process with one thread for torch,
OpenCV and decord (one dataloader worker); segments are measured in rounds,
the paths in a rotating order within each round. Medians of the wall time
and of the CPU time (``time.process_time``, all threads of the process)
per video are reported with the load average; throughput per worker and
the number of workers are computed from the CPU time, i.e. for workers
that each have a core (on a shared machine the wall time also counts
waiting for one).

Example::

    python benchmarks/data_pipeline.py --durations 180 300 --clips 4
"""
import argparse
import math
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Sequence

import numpy as np

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
from common import load_average, median

#: the paper's batch: 64 source videos x 2 views per GPU, 1 step per second
CLIPS_PER_STEP = 128

ENCODER_MISSING = (
    'benchmarks/data_pipeline.py writes its test videos with PyAV (H.264 '
    'with a chosen keyframe interval, which OpenCV\'s writer cannot set). '
    'Install it with:  pip install av  (or pass a --workdir where an '
    'earlier run left its videos and 1-fps mp4 files).')


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour texture ``[height, width, 3]`` (uint8)."""
    import cv2
    small = rng.integers(
        0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    tex = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 24, (height, width, 3), dtype=np.uint8)
    return cv2.add(tex, noise)


def write_test_video(path: str,
                     seconds: float,
                     seed: int,
                     width: int = 640,
                     height: int = 360,
                     fps: int = 30,
                     keyint: int = 150,
                     shot: float = 20.0,
                     preset: str = 'veryfast',
                     crf: int = 23) -> None:
    """Write a synthetic H.264 mp4 that decodes like ordinary web video.

    Each shot pans slowly over its own textured background while a few
    coloured boxes move across it, so every frame differs from the last
    (real inter prediction, real residuals) and a scene cut starts every
    ``shot`` seconds.

    Args:
        path (str): Output ``.mp4`` (written to ``path + '.part'`` first).
        seconds (float): Duration.
        seed (int): Content seed.
        width (int): Frame width. Defaults to 640.
        height (int): Frame height. Defaults to 360.
        fps (int): Frame rate. Defaults to 30.
        keyint (int): Frames between keyframes (x264 ``keyint``; scene cut
            detection off, so the interval is fixed). Defaults to 150 (5 s).
        shot (float): Seconds per shot. Defaults to 20.
        preset (str): x264 preset. Defaults to ``'veryfast'``.
        crf (int): x264 constant rate factor. Defaults to 23.

    Raises:
        SystemExit: PyAV is not installed (with :data:`ENCODER_MISSING`).
    """
    try:
        import av
    except ImportError:
        raise SystemExit(ENCODER_MISSING)
    import cv2
    rng = np.random.default_rng(seed)
    part = path + '.part'
    container = av.open(part, mode='w', format='mp4')
    stream = container.add_stream('libx264', rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
    stream.gop_size = keyint
    stream.options = {
        'preset': preset,
        'crf': str(crf),
        'x264-params': f'keyint={keyint}:min-keyint={keyint}:scenecut=0'
    }
    total = int(round(seconds * fps))
    per_shot = max(int(round(shot * fps)), 1)
    tex = boxes = None
    for i in range(total):
        if i % per_shot == 0:
            tex = _texture(rng, height * 2, width * 2)
            boxes = [(rng.integers(0, 256, 3).tolist(), rng.uniform(0, 1, 2),
                      rng.uniform(-0.004, 0.004,
                                  2), int(rng.integers(30, 120)))
                     for _ in range(4)]
            pan = rng.uniform(-1.5, 1.5, 2)
        k = i % per_shot
        y = int(height / 2 + pan[0] * k) % height
        x = int(width / 2 + pan[1] * k) % width
        frame = np.ascontiguousarray(tex[y:y + height, x:x + width])
        for colour, start, speed, size in boxes:
            cy, cx = (start + speed * k) % 1.0
            cy, cx = int(cy * height), int(cx * width)
            cv2.rectangle(frame, (cx, cy), (cx + size, cy + size // 2), colour,
                          -1)
        cv2.putText(frame, f'{i // fps:05d}', (20, 40),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        for packet in stream.encode(
                av.VideoFrame.from_ndarray(frame, format='rgb24')):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    os.replace(part, path)


def reencode_1fps(folder: str,
                  path: str,
                  keyint: int = 10,
                  crf: int = 20,
                  preset: str = 'veryfast') -> None:
    """Re-encode a 1-fps frame folder as a 1-fps H.264 mp4 (PyAV).

    The alternative to frame folders: the same frames, a keyframe every
    ``keyint`` seconds, so reading ``2W`` consecutive seconds decodes at
    most ``2W + keyint - 1`` frames.

    Args:
        folder (str): Frame folder (``00000.jpg``, ...).
        path (str): Output ``.mp4`` (written to ``path + '.part'`` first).
        keyint (int): Frames (= seconds) between keyframes. Defaults to 10.
        crf (int): x264 constant rate factor. Defaults to 20.
        preset (str): x264 preset. Defaults to ``'veryfast'``.
    """
    try:
        import av
    except ImportError:
        raise SystemExit(ENCODER_MISSING)
    import cv2

    from hapvr_mm.datasets.video_io import list_frame_files
    files = list_frame_files(folder)
    first = cv2.imread(files[0])
    part = path + '.part'
    container = av.open(part, mode='w', format='mp4')
    stream = container.add_stream('libx264', rate=1)
    stream.height, stream.width = first.shape[:2]
    stream.pix_fmt = 'yuv420p'
    stream.gop_size = keyint
    stream.options = {
        'preset': preset,
        'crf': str(crf),
        'x264-params': f'keyint={keyint}:min-keyint={keyint}:scenecut=0'
    }
    for name in files:
        frame = cv2.cvtColor(cv2.imread(name), cv2.COLOR_BGR2RGB)
        for packet in stream.encode(
                av.VideoFrame.from_ndarray(frame, format='rgb24')):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    os.replace(part, path)


def make_videos(folder: str, durations: Sequence[float], keyint: int,
                seed: int) -> List[str]:
    """Write the test videos that are missing; return their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, seconds in enumerate(durations):
        path = osp.join(folder, f'video{i}_{int(seconds)}s_k{keyint}.mp4')
        if not osp.exists(path):
            start = time.perf_counter()
            write_test_video(path, seconds, seed + i, keyint=keyint)
            print(
                f'wrote {path} ({osp.getsize(path) / 1e6:.1f} MB) in '
                f'{time.perf_counter() - start:.0f} s',
                flush=True)
        paths.append(path)
    return paths


def build_paths(window: int, crop: int) -> Dict[str, object]:
    """The measured callables, each ``fn(clip) -> results``.

    ``clip`` is a dict with ``video`` (file), ``folder`` (its frame folder),
    ``reencoded`` (its 1-fps mp4), ``seed`` (NumPy seed of the segment
    start: every path reads the same positions) and ``native`` (the native
    frame indices of those positions) / ``positions``.
    """
    from mmaction.datasets.transforms import (DecordDecode, DecordInit,
                                              RawFrameDecode)
    from mmaction.registry import TRANSFORMS
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope

    import hapvr_mm  # noqa: F401  (registers the transforms)
    from hapvr_mm.datasets.transforms import DecodeSSLSegment

    init_default_scope('mmaction')  # nested Compose builds by name
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', '_base_', 'datasets', 'ssl_vcdb.py'))
    steps = []
    for t in cfg.train_pipeline:
        t = dict(t)
        if 'window' in t:
            t['window'] = window
        if 'crop_size' in t:
            t['crop_size'] = crop
        steps.append(TRANSFORMS.build(t))
    full = Compose(steps)
    decode = DecodeSSLSegment(window=window)
    init, mm_decode = DecordInit(), DecordDecode()
    raw_decode = RawFrameDecode()

    def ours(pipeline, key):

        def run(clip):
            np.random.seed(clip['seed'])
            return pipeline(
                dict(filename=clip[key], window=window, min_frames=1))

        return run

    def mmaction_decord(clip):
        results = init(dict(filename=clip['video']))
        results['frame_inds'] = clip['native'].copy()
        return mm_decode(results)

    def mmaction_rawframes(clip):
        return raw_decode(
            dict(
                frame_dir=clip['folder'],
                filename_tmpl='{:05d}.jpg',
                modality='RGB',
                frame_inds=clip['positions'].copy()))

    return {
        'raw: full pipeline': ours(full, 'video'),
        'frames: full pipeline': ours(full, 'folder'),
        '1-fps mp4: full pipeline': ours(full, 'reencoded'),
        'raw: decode (ours)': ours(decode, 'video'),
        'raw: decode (mmaction2 decord)': mmaction_decord,
        'frames: decode (ours)': ours(decode, 'folder'),
        'frames: decode (mmaction2)': mmaction_rawframes,
        '1-fps mp4: decode (ours)': ours(decode, 'reencoded'),
    }


def make_clips(videos: Sequence[str], frames_root: str, mp4_root: str,
               per_video: int, window: int, seed: int) -> List[Dict]:
    """Segments to read: the same seeds and positions for every path."""
    from hapvr_mm.datasets.transforms.loading import segment_positions
    from hapvr_mm.datasets.video_io import open_video
    clips = []
    for v, path in enumerate(videos):
        video = open_video(path)
        native = video.sampled_indices(1.0)
        for c in range(per_video):
            clip_seed = seed * 1000 + v * 100 + c
            np.random.seed(clip_seed)
            pos = segment_positions(len(native), 2 * window)
            name = osp.splitext(osp.basename(path))[0]
            clips.append(
                dict(
                    video=path,
                    folder=osp.join(frames_root, name),
                    reencoded=osp.join(mp4_root, name + '.mp4'),
                    seed=clip_seed,
                    positions=pos,
                    native=native[pos]))
    return clips


def check_same_frames(paths: Dict, clip: Dict) -> str:
    """Ours and mmaction2's decord decoding give identical frames."""
    ours = np.asarray(paths['raw: decode (ours)'](clip)['imgs'])
    ref = np.stack(paths['raw: decode (mmaction2 decord)'](clip)['imgs'])
    frames = np.asarray(paths['frames: decode (ours)'](clip)['imgs'])
    mp4 = np.asarray(paths['1-fps mp4: decode (ours)'](clip)['imgs'])
    same = ours.shape == ref.shape and bool((ours == ref).all())
    jpeg = float(np.abs(frames.astype(np.int16) - ours).mean())
    h264 = float(np.abs(mp4.astype(np.int16) - ours).mean())
    return (f'ours vs mmaction2 decord on {osp.basename(clip["video"])}: '
            f'{"identical" if same else "DIFFERENT"} {ours.shape}; mean '
            f'|diff| to the video\'s frames: frame folder {jpeg:.2f} '
            f'(JPEG), 1-fps mp4 {h264:.2f} (second lossy encode)')


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--workdir',
        default=osp.join('/tmp', 'hapvr_data_pipeline'),
        help='videos and frame folders (kept between runs)')
    parser.add_argument(
        '--durations',
        type=float,
        nargs='+',
        default=[180, 300, 600],
        help='seconds of each test video')
    parser.add_argument(
        '--keyint',
        type=int,
        default=150,
        help='frames between keyframes (150 = 5 s at 30 fps)')
    parser.add_argument(
        '--clips', type=int, default=2, help='segments per video')
    parser.add_argument(
        '--rounds', type=int, default=2, help='rounds over all segments')
    parser.add_argument('--window', type=int, default=28, help='W')
    parser.add_argument('--crop', type=int, default=224, help='crop size')
    parser.add_argument(
        '--convert-workers',
        type=int,
        default=1,
        help='processes of the frame-folder conversion')
    parser.add_argument(
        '--mp4-keyint',
        type=int,
        default=10,
        help='seconds between keyframes of the 1-fps re-encode')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    import cv2
    import torch
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    sys.path.insert(0, osp.join(ROOT, 'tools', 'data'))
    from extract_frames import extract_collection

    print(f'data pipeline throughput, one worker (1 thread), W={args.window}'
          f', crop {args.crop}, load average at start: {load_average()}')
    videos = make_videos(
        osp.join(args.workdir, 'videos'), args.durations, args.keyint,
        args.seed)
    frames_root = osp.join(args.workdir, 'frames')
    start = time.perf_counter()
    counts = extract_collection(
        osp.join(args.workdir, 'videos'),
        frames_root,
        workers=args.convert_workers,
        log_every=0)
    took = time.perf_counter() - start
    if counts['converted']:
        seconds = sum(args.durations)
        print(f'frame folders: {counts["converted"]} videos, '
              f'{counts["frames"]} frames in {took:.1f} s with '
              f'{args.convert_workers} process(es): {seconds / took:.0f} s '
              f'of video per second')
    size = sum(
        osp.getsize(osp.join(r, f)) for r, _, fs in os.walk(frames_root)
        for f in fs if f.endswith('.jpg'))
    vsize = sum(osp.getsize(v) for v in videos)
    print(f'storage: videos {vsize / 1e6:.0f} MB, 1-fps JPEG folders '
          f'{size / 1e6:.0f} MB ({size / vsize:.2f}x)')

    mp4_root = osp.join(args.workdir, f'mp4_1fps_k{args.mp4_keyint}')
    os.makedirs(mp4_root, exist_ok=True)
    start, encoded = time.perf_counter(), 0
    for video in videos:
        name = osp.splitext(osp.basename(video))[0]
        out = osp.join(mp4_root, name + '.mp4')
        if not osp.exists(out):
            reencode_1fps(
                osp.join(frames_root, name), out, keyint=args.mp4_keyint)
            encoded += 1
    if encoded:
        print(f'1-fps mp4 (keyframe every {args.mp4_keyint} s) of '
              f'{encoded} frame folders in {time.perf_counter() - start:.1f}'
              ' s')
    msize = sum(
        osp.getsize(osp.join(mp4_root, f)) for f in os.listdir(mp4_root)
        if f.endswith('.mp4'))
    print(f'storage: 1-fps mp4 {msize / 1e6:.0f} MB ({msize / vsize:.2f}x '
          'the videos)')

    paths = build_paths(args.window, args.crop)
    clips = make_clips(videos, frames_root, mp4_root, args.clips, args.window,
                       args.seed)
    print(check_same_frames(paths, clips[0]))
    names = list(paths)
    wall: Dict[str, List[float]] = {n: [] for n in names}
    cpu: Dict[str, List[float]] = {n: [] for n in names}
    for rnd in range(args.rounds):
        for c, clip in enumerate(clips):
            # rotate the order so that no path always runs first
            k = (rnd * len(clips) + c) % len(names)
            for name in names[k:] + names[:k]:
                start, start_cpu = time.perf_counter(), time.process_time()
                paths[name](clip)
                cpu[name].append(time.process_time() - start_cpu)
                wall[name].append(time.perf_counter() - start)
    lengths = ', '.join(f'{d:g} s' for d in args.durations)
    print(f'{len(clips)} segments of 2W={2 * args.window} frames at 1 fps '
          f'from {len(videos)} videos ({lengths}, 640x360, 30 fps, H.264, '
          f'keyframe every {args.keyint} frames), {args.rounds} rounds, '
          'medians; one video gives two clips (views); workers = '
          f'{CLIPS_PER_STEP} clips/s over clips/s per worker (from CPU '
          'time: a worker with a core to itself)')
    print(f'{"path":<32} {"wall s":>7} {"CPU s":>7} {"clips/s":>8} '
          f'{"workers":>8}')
    for name in names:
        sec, sec_cpu = median(wall[name]), median(cpu[name])
        rate = 2 / sec_cpu
        print(f'{name:<32} {sec:>7.3f} {sec_cpu:>7.3f} {rate:>8.2f} '
              f'{math.ceil(CLIPS_PER_STEP / rate):>8d}')
    print(f'load average at end: {load_average()}')


if __name__ == '__main__':
    main()
