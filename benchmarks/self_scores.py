"""What a video scores against itself and against a re-encoded copy.

For every video given, the HAP-VR score (eval range [-1, 1]) of the video
against itself and against copies re-encoded by OpenCV (decoded and written
again, frame for frame, at the same size and frame rate: MPEG-4 Part 2
``mp4v`` and Motion-JPEG ``MJPG``) is printed, with the mean of the
diagonal of the frame similarity matrix. docs/scores.md reports the figures
of the trained demo model.

Example::

    python benchmarks/self_scores.py configs/demo/hapvr_demo.py \
        work_dirs/hapvr_demo/iter_80.pth data/demo/eval/videos/q00*.mp4
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(HERE))

import cv2
import numpy as np
from mmengine.config import Config

CODECS = (('mp4v', '.mp4'), ('MJPG', '.avi'))


def reencode(src: str, dst: str, fourcc: str) -> int:
    """Decode ``src`` and write every frame to ``dst`` with ``fourcc``.

    Returns:
        int: frames written.

    Raises:
        RuntimeError: ``src`` cannot be read or ``dst`` written.
    """
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise RuntimeError(f'cannot read {src}')
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer, n = None, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*fourcc), fps,
                                     (w, h))
            if not writer.isOpened():
                raise RuntimeError(f'cannot write {dst} with {fourcc}')
        writer.write(frame)
        n += 1
    cap.release()
    if writer is not None:
        writer.release()
    if n == 0:
        raise RuntimeError(f'{src} has no frame')
    return n


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="checkpoint or 'none'")
    parser.add_argument('videos', nargs='+')
    args = parser.parse_args(argv)
    import hapvr_mm  # noqa: F401
    from hapvr_mm.search import (build_search_model, compare_pair,
                                 decode_settings, embed_files)
    cfg = Config.fromfile(args.config)
    model = build_search_model(cfg, args.checkpoint, 'cpu')
    settings = decode_settings(cfg)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, video in enumerate(args.videos):
            paths.append(video)
            for fourcc, ext in CODECS:
                dst = osp.join(tmp, f'{i}_{fourcc}{ext}')
                reencode(video, dst, fourcc)
                paths.append(dst)
        feats = embed_files(model, paths, settings)
    step = 1 + len(CODECS)
    for i, video in enumerate(args.videos):
        orig = feats[i * step][0]
        if orig is None:
            raise SystemExit(f'{video}: {feats[i * step][2]}')
        row = dict(video=osp.basename(video), frames=int(orig.shape[0]))
        self_pair = compare_pair(model, orig, orig)
        row['self'] = self_pair.score
        row['self_diag'] = float(np.diag(self_pair.frame_similarity).mean())
        for j, (fourcc, _) in enumerate(CODECS, 1):
            copy = feats[i * step + j][0]
            pair = compare_pair(model, orig, copy)
            n = min(pair.frame_similarity.shape)
            row[fourcc] = pair.score
            row[fourcc + '_diag'] = float(
                np.diag(pair.frame_similarity[:n, :n]).mean())
        rows.append(row)
    cols = ['self', 'self_diag'
            ] + [c for f, _ in CODECS for c in (f, f + '_diag')]
    print(f'{"video":>12s} {"T":>4s} ' + ' '.join(f'{c:>10s}' for c in cols))
    for r in rows:
        print(f'{r["video"]:>12s} {r["frames"]:4d} ' + ' '.join(f'{r[c]:10.4f}'
                                                                for c in cols))
    means = {c: statistics.mean(r[c] for r in rows) for c in cols}
    print(f'{"mean":>12s} {"":>4s} ' + ' '.join(f'{means[c]:10.4f}'
                                                for c in cols))
    return dict(rows=rows, means=means)


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    main()
