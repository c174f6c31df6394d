"""Turn a retrieval annotation into a classification list for mmaction2.

Each query and its relevant videos form one class (label = the query's
position in the annotation's query list); videos relevant to no query are
left out. The output is mmaction2's ``VideoDataset`` list format, one
``path label`` line per video, so a stock recognizer can be trained on
near-duplicate groups (e.g. with ``loss_cls=dict(type='QuadLinearAPLoss')``,
see ``configs/mixing/``).

Example:
    python tools/data/retrieval_to_class_list.py \\
        data/demo/eval/annotation.json data/demo/eval/videos \\
        --out data/demo/eval/classes.txt
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple


def class_list(annotation: dict) -> List[Tuple[str, int]]:
    """``(video_id, label)`` pairs: each query with its relevant videos.

    Args:
        annotation (dict): our JSON annotation (``queries``, ``relevance``).

    Returns:
        list[tuple[str, int]]: in query order; a video relevant to several
        queries keeps the first label.

    Raises:
        ValueError: the annotation has no queries.
    """
    queries = annotation.get('queries') or []
    if not queries:
        raise ValueError('the annotation lists no queries')
    relevance: Dict[str, List[str]] = annotation.get('relevance') or {}
    seen: Dict[str, int] = {}
    for label, query in enumerate(queries):
        for vid in [query, *relevance.get(query, [])]:
            seen.setdefault(str(vid), label)
    return list(seen.items())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Write a `path label` list (mmaction2 VideoDataset) in '
        'which each query and its relevant videos form one class.')
    parser.add_argument('annotation', help='JSON annotation file')
    parser.add_argument('video_dir', help='folder of the videos')
    parser.add_argument(
        '--ext', default='.mp4', help='video file extension (.mp4)')
    parser.add_argument('--out', required=True, help='list file to write')
    args = parser.parse_args(argv)
    with open(args.annotation) as f:
        pairs = class_list(json.load(f))
    missing = [
        vid for vid, _ in pairs
        if not osp.isfile(osp.join(args.video_dir, vid + args.ext))
    ]
    if missing:
        print(
            f'error: {len(missing)} video(s) of {args.annotation} are not '
            f'in {args.video_dir}: {missing[:5]}',
            file=sys.stderr)
        return 1
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        for vid, label in pairs:
            f.write(f'{osp.join(args.video_dir, vid + args.ext)} {label}\n')
    print(f'wrote {len(pairs)} videos in '
          f'{len(set(l for _, l in pairs))} classes to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
