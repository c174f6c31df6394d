"""Compare two videos as a picture: why HAP-VR gives them their score.

Examples:
    python tools/compare_videos.py A.mp4 B.mp4 --config CFG \
        --checkpoint CKPT --out pair.png
    python tools/compare_videos.py q000.mp4 db0039.mp4 --index index.h5 \
        --out pair.png                 # ids (or file names) of the index

Writes a PNG with the frame-to-frame similarity matrix (A down, B across,
time in seconds), the comparator's output map on the same time axes, the
video-level score in the title and the best-matching aligned segment
marked; ``--json`` also writes the numbers (score, matrix shapes, segment
in frames and seconds). Each of A and B is a video file or, with
``--index``, the id (or unique file name) of an indexed video. The model
is the index's unless ``--config`` / ``--checkpoint`` are given.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction
from mmengine.logging import MMLogger

import hapvr_mm  # noqa: F401
from hapvr_mm.search import (compare_pair, model_for_index, open_index,
                             plot_comparison, resolve_queries)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the frame similarities, comparator map and score '
        'of two videos into a PNG',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
        '  %(prog)s a.mp4 b.mp4 --config CFG --checkpoint CKPT --out p.png\n'
        '  %(prog)s q000.mp4 db0039.mp4 --index index.h5 --out p.png\n')
    parser.add_argument('a', help='video A: a file or an id of --index')
    parser.add_argument('b', help='video B: a file or an id of --index')
    parser.add_argument(
        '--index',
        help='index file (or shard folder / manifest.json) to take videos '
        'from')
    parser.add_argument('--out', default='comparison.png', help='PNG file')
    parser.add_argument('--json', help='also write the numbers here')
    parser.add_argument('--config', help="config (default: the index's)")
    parser.add_argument(
        '--checkpoint', help="checkpoint or 'none' (default: the index's)")
    parser.add_argument(
        '--device', default=None, help="'cuda' or 'cpu' (default: auto)")
    parser.add_argument('--dpi', type=int, default=110)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.index is None and args.config is None:
        parser.error('give --index or --config (and --checkpoint)')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    logger = MMLogger.get_instance(
        f'hapvr_compare_{os.getpid()}', logger_name='hapvr_compare')
    index = open_index(args.index) if args.index else None
    model, settings = model_for_index(index, args.config, args.checkpoint,
                                      args.device, args.cfg_options)
    videos = resolve_queries([args.a, args.b], index, model, settings)
    if len(videos) != 2:
        raise SystemExit('both videos must be readable (see the warning)')
    a, b = videos
    explanation = compare_pair(model, a.features, b.features)
    fps = float(settings.get('fps') or 1.0)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    plot_comparison(
        explanation, args.out, fps=fps, names=(a.name, b.name), dpi=args.dpi)
    seg = explanation.segment
    summary = dict(
        a=a.name,
        b=b.name,
        score=explanation.score,
        fps=fps,
        frames=list(explanation.frame_similarity.shape),
        video_frames=explanation.extra.get('frames'),
        comparator_cells=None if explanation.comparator_map is None else list(
            explanation.comparator_map.shape),
        segment=None if seg is None else seg.to_dict(fps),
        png=osp.abspath(args.out))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=1)
    msg = f'{a.name} vs {b.name}: score {explanation.score:.4f}'
    if seg is not None:
        msg += (f'; best segment A {seg.a_start / fps:g}-'
                f'{(seg.a_end + 1) / fps:g} s ~ B {seg.b_start / fps:g}-'
                f'{(seg.b_end + 1) / fps:g} s')
    logger.info(msg + f' -> {args.out}')
    return summary


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, KeyError, ValueError))
