"""Search an index for the near-duplicates of query videos.

Examples:
    python tools/search.py index.h5 my_clip.mp4
    python tools/search.py index.h5 some/id.mp4 --topk 20     # an index id
    python tools/search.py index.h5 queries/ --shortlist 5% --out results
    python tools/search.py index.h5 q.mp4 --config CFG --checkpoint CKPT
    python tools/search.py index.h5 my_clip.mp4 --html results.html
    python tools/search.py shards/ my_clip.mp4      # a shard set (folder,
    python tools/search.py shards/manifest.json my_clip.mp4  # or manifest)

A query is a video file (decoded and embedded as the index was), a folder
or glob of videos (one query each), or the id (or unique file name) of a
video of the index. The model is the index's (its stored config and
checkpoint) unless ``--config`` / ``--checkpoint`` say otherwise; a model
that differs from the index's is refused.

Prints one ranked table per query (rank, video, HAP-VR score in [-1, 1],
global-descriptor similarity) and writes ``OUT.json`` and ``OUT.csv``.
``--shortlist K`` (a count, a fraction such as ``0.05`` or a percentage
such as ``5%``) ranks the whole index by global descriptors and scores only
the top ``K`` with HAP-VR (docs/search.md says when that is safe). A query
that is itself in the index is left out of its results unless
``--include-self``. ``--html OUT.html`` also writes one self-contained page
(keyframes, scores, best aligned segments and, for the top
``--html-compare`` results, the picture of ``tools/compare_videos.py``).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

import hapvr_mm  # noqa: F401
from hapvr_mm.search import (GlobalIndex, format_results, model_for_index,
                             resolve_queries, resolve_shortlist, search,
                             write_html_report, write_results_csv,
                             write_results_json)
from hapvr_mm.search.engine import PRECISIONS
from hapvr_mm.search.shards import global_index_path, open_index
from hapvr_mm.search.vector_index import parse_bytes


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Search an index (tools/extract_features.py --videos) '
        'for near-duplicates of query videos',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
        '  %(prog)s index.h5 clip.mp4 --topk 10\n'
        '  %(prog)s index.h5 queries/ --shortlist 5%% --out results\n'
        '  %(prog)s index.h5 clip.mp4 --html results.html\n')
    parser.add_argument(
        'index',
        help='index file (.h5), or a shard set: its folder or manifest.json')
    parser.add_argument(
        'queries',
        nargs='+',
        help='video files, folders, globs or ids of the index')
    parser.add_argument(
        '--topk', type=int, default=10, help='results per query (10)')
    parser.add_argument(
        '--shortlist',
        default=None,
        help='re-rank only the top K of the global-descriptor ranking: a '
        'count (500), a fraction (0.05) or a percentage (5%%); default: '
        'exhaustive search')
    parser.add_argument(
        '--global-index',
        choices=['auto', 'flat', 'ivf', 'ivfpq', 'none'],
        default='auto',
        help='how a shortlist finds its candidates: a faiss index saved as '
        'INDEX.faiss (auto: exact below --exact-below videos, IVF while the '
        'descriptors fit --index-memory, IVF-PQ re-scored from float16 '
        'descriptors on disk above), or none (one dense matrix product)')
    parser.add_argument(
        '--index-memory',
        type=parse_bytes,
        default='2GiB',
        help='memory the global index may hold for --global-index auto '
        '(2GiB)')
    parser.add_argument(
        '--exact-below',
        type=int,
        default=100_000,
        help='videos under which --global-index auto stays exact (100000)')
    parser.add_argument(
        '--nprobe',
        type=int,
        default=None,
        help='IVF lists visited per query (default: a list in 8)')
    parser.add_argument(
        '--out',
        default='search_results',
        help='write OUT.json and OUT.csv (default: search_results)')
    parser.add_argument(
        '--html',
        metavar='OUT.html',
        help='also write a self-contained results page (keyframes, scores, '
        'best aligned segments, comparison pictures)')
    parser.add_argument(
        '--html-compare',
        type=int,
        default=3,
        metavar='N',
        help='results per query with a comparison picture in --html (3)')
    parser.add_argument(
        '--include-self',
        action='store_true',
        help='keep a query that is in the index in its own results')
    parser.add_argument('--config', help="config (default: the index's)")
    parser.add_argument(
        '--checkpoint', help="checkpoint or 'none' (default: the index's)")
    parser.add_argument(
        '--device', default=None, help="'cuda' or 'cpu' (default: auto)")
    parser.add_argument(
        '--workers', type=int, default=0, help='decoding processes (0)')
    parser.add_argument(
        '--block', type=int, default=16, help='targets per similarity call')
    parser.add_argument(
        '--preload-descriptors',
        action='store_true',
        help='ivfpq: map the whole float16 copy of the global descriptors '
        'before searching (faster re-scoring for many queries; reads the '
        'file once)')
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='float32',
        help='HAP-VR region products: float32 (exact, default) or bfloat16 '
        '(2-3x faster on CPUs with avx512_bf16/AMX, scores within a few '
        '1e-3; see docs/search.md)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error('--topk must be >= 1')
    if args.html_compare < 0:
        parser.error('--html-compare must be >= 0')
    if args.shortlist is not None:
        try:
            resolve_shortlist(args.shortlist, 100)
        except ValueError as err:
            parser.error(str(err))
    return args


def main(argv=None) -> list:
    args = parse_args(argv)
    logger = MMLogger.get_instance(
        f'hapvr_search_{os.getpid()}', logger_name='hapvr_search')
    index = open_index(args.index)
    if not len(index):
        raise SystemExit(f'{args.index} holds no video')
    model, settings = model_for_index(index, args.config, args.checkpoint,
                                      args.device, args.cfg_options)
    queries = resolve_queries(args.queries, index, model, settings,
                              args.workers)
    k = resolve_shortlist(args.shortlist, len(index))
    mode = 'exhaustive' if args.shortlist is None else \
        f'shortlist {max(k, args.topk)} of {len(index)}'
    logger.info(f'{len(queries)} queries against {len(index)} videos '
                f'({mode})')
    global_index = None
    if args.shortlist is not None and args.global_index != 'none':
        global_index = GlobalIndex.load_or_build(
            global_index_path(index),  # a shard set: DIR/global.faiss
            index.global_view(),
            kind=args.global_index,
            exact_below=args.exact_below,
            nprobe=args.nprobe,
            memory_budget=args.index_memory,
            ids=index.ids,
            tag=str(index.attrs.get('fingerprint', '')))
        if args.preload_descriptors and global_index.preload():
            logger.info('float16 global descriptors mapped into memory')
        logger.info(f'shortlist candidates from a {global_index.kind} '
                    f'global index')
    results = search(
        model, [q.features for q in queries],
        index,
        topk=args.topk,
        shortlist=args.shortlist,
        query_globals=torch.stack([q.global_desc for q in queries]),
        exclude=None if args.include_self else [q.row for q in queries],
        block=args.block,
        global_index=global_index,
        precision=args.precision)
    table = []
    for q, res in zip(queries, results):
        rows = []
        for rank, (row, score, glob) in enumerate(
                zip(res.rows, res.scores, res.global_scores), 1):
            rows.append(
                dict(
                    rank=rank,
                    id=index.ids[row],
                    path=index.paths[row],
                    score=float(score),
                    global_score=float(glob)))
        table.append(dict(query=q.name, query_path=q.path, results=rows))
    print(format_results(table), flush=True)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(
        index=osp.abspath(args.index),
        videos=len(index),
        topk=args.topk,
        shortlist=args.shortlist,
        mode=mode,
        score_range=[-1.0, 1.0])
    write_results_json(args.out + '.json', table, meta)
    write_results_csv(args.out + '.csv', table)
    logger.info(f'results written to {args.out}.json and {args.out}.csv')
    if args.html:
        page = write_html_report(
            args.html,
            model,
            index,
            queries,
            results,
            compare_top=args.html_compare,
            meta=dict(index=meta['index'], videos=len(index), mode=mode))
        logger.info(f'results page written to {page["file"]}')
    index.close()
    return table


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, KeyError, ValueError))
