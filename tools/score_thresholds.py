"""Precision, recall and F1 of a score threshold on a labelled set.

Examples:
    # scores of tools/test.py --save-similarities
    python tools/score_thresholds.py work_dir/similarities.npz \
        --annotation data/demo/eval/annotation.json
    # or search an index with every query of the annotation first
    python tools/score_thresholds.py --index demo_eval.h5 \
        --annotation data/demo/eval/annotation.json --out thresholds.json

Every scored (query, database video) pair is a decision "near-duplicate if
score >= threshold"; the pairs the annotation lists as positive are the
truth (positives that were never scored count as misses). Prints a table
over thresholds (``--thresholds``, default -1.0 to 1.0 in steps of 0.1)
and the threshold with the best F1 among the observed scores; ``--out``
writes both as JSON. See docs/scores.md.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.logging import MMLogger

import hapvr_mm  # noqa: F401
from hapvr_mm.datasets.annotations import load_annotation
from hapvr_mm.search import (annotation_positives, best_f1, json_safe,
                             model_for_index, open_index, pair_labels,
                             read_scores, search, threshold_table)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Precision / recall / F1 of score thresholds on an '
        'annotated set',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='examples:\n'
        '  %(prog)s similarities.npz --annotation ann.json\n'
        '  %(prog)s --index idx.h5 --annotation ann.json\n')
    parser.add_argument(
        'scores',
        nargs='?',
        help='similarities (.npz, .json, .pkl) of tools/test.py or JSON of '
        'tools/search.py')
    parser.add_argument(
        '--index',
        help='score the annotation by searching this index (file, shard '
        'folder or manifest.json)')
    parser.add_argument('--annotation', required=True, help='annotation')
    parser.add_argument(
        '--annotation-type', default='JSON', help='JSON, FIVR, ...')
    parser.add_argument(
        '--max-level',
        type=int,
        default=None,
        help='FIVR: relevance levels that count (1 ND, 2 +DS, 3 +CS, 4 +IS)')
    parser.add_argument(
        '--thresholds',
        type=float,
        nargs='+',
        default=None,
        help='thresholds to report (default -1.0, -0.9, ..., 1.0)')
    parser.add_argument('--out', help='write the table as JSON')
    parser.add_argument('--checkpoint', help="with --index: checkpoint")
    parser.add_argument('--config', help='with --index: config')
    args = parser.parse_args(argv)
    if (args.scores is None) == (args.index is None):
        parser.error('give a scores file or --index (one of them)')
    return args


def index_scores(index_file: str, ann, config=None, checkpoint=None) -> dict:
    """``{query: {target: score}}`` of every annotated query in an index
    against the annotation's targets in it (exhaustive search)."""
    index = open_index(index_file)
    model, _ = model_for_index(index, config, checkpoint)
    queries = [q for q in ann.queries if q in index._row]
    rows = [index.row(t) for t in ann.targets if t in index._row]
    res = search(
        model, [index.features(index.row(q)) for q in queries],
        index,
        topk=None,
        rows=rows,
        query_globals=index.global_rows([index.row(q) for q in queries]),
        exclude=[index.row(q) for q in queries])
    return {
        q: {
            index.ids[r]: float(s)
            for r, s in zip(res_q.rows, res_q.scores)
        }
        for q, res_q in zip(queries, res)
    }


def _fmt(x: float) -> str:
    return '   nan' if isinstance(x, float) and math.isnan(x) else \
        f'{x:6.3f}'


def main(argv=None) -> dict:
    args = parse_args(argv)
    logger = MMLogger.get_instance(
        f'hapvr_thresholds_{os.getpid()}', logger_name='hapvr_thresholds')
    ann = load_annotation(
        dict(type=args.annotation_type, ann_file=args.annotation))
    if args.index:
        scores = index_scores(args.index, ann, args.config, args.checkpoint)
    else:
        scores = read_scores(args.scores)
    positives = annotation_positives(ann, args.max_level)
    queries = [q for q in ann.queries if q in scores]
    if not queries:
        raise SystemExit('no query of the annotation has scores')
    values, labels, npos = pair_labels(scores, positives, queries,
                                       set(ann.database))
    logger.info(f'{len(queries)} queries, {values.size} scored pairs, '
                f'{int(labels.sum())} of {npos} annotated positives scored')
    table = threshold_table(values, labels, npos, args.thresholds)
    best = best_f1(values, labels, npos)
    lines = [
        f'{"threshold":>9s} {"prec.":>6s} {"recall":>6s} {"F1":>6s} '
        f'{"TP":>6s} {"FP":>6s} {"FN":>6s}'
    ]
    for r in table + [None, best]:
        if r is None:
            lines.append('best F1 among the observed scores:')
            continue
        lines.append(f"{r['threshold']:9.3f} {_fmt(r['precision'])} "
                     f"{_fmt(r['recall'])} {_fmt(r['f1'])} {r['tp']:6d} "
                     f"{r['fp']:6d} {r['fn']:6d}")
    print('\n'.join(lines), flush=True)
    out = dict(
        queries=len(queries),
        pairs=int(values.size),
        positives=npos,
        table=table,
        best_f1=best)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(json_safe(out), f, indent=1)
        logger.info(f'written to {args.out}')
    return out


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ValueError))
