"""Time every benchmark's metrics against a direct transcription.

For each of FIVR-5K, FIVR-200K (normal and hard), EVVE, SVD and
CC_WEB_VIDEO, at their real sizes with synthetic ids, annotations and
float32 scores (relevant pairs scored higher, so the metrics are not
trivial), this script times, in alternating rounds of one process:

* ``ours``: the annotation's ``evaluate`` on the compact score matrix
  (:class:`~hapvr_mm.evaluation.annotations.ScoreMatrix`, what
  ``tools/eval_similarities.py`` reads from ``--save-similarities``);
* ``transcription``: the protocol written out query by query, straight from
  its text (docs/annotation_format.md): filter the query's targets, flag the
  relevant ones, sort with a stable sort, walk the ranking; pooled (uAP)
  rankings concatenate every query's pairs and sort them.

Both read the same score matrix and must give the same metrics (the largest
difference is printed). Sizes (queries x database): FIVR-5K 50 x 5,000,
FIVR-200K 100 x 225,960 (3,000 easy duplicates), EVVE 620 x 2,373 (13
events), SVD 1,206 queries x (34,020 labeled candidates + 526,787 unlabeled
distractors, the SVD paper's counts), CC_WEB_VIDEO 24 x 12,790.

Usage::

    python benchmarks/ap_metrics.py [--repeat 2] [--only EVVE SVD]
        [--svd-distractors 526787]
"""
import argparse
import os.path as osp
import pickle
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks.common import load_average
from hapvr_mm.evaluation.annotations import (CCWebAnnotation, EVVEAnnotation,
                                             FIVRAnnotation, ScoreMatrix,
                                             SVDAnnotation)

Metrics = Dict[str, float]

# --------------------------------------------------------------------- #
# transcriptions of the protocols (one query at a time)


def stable_rank(scores: np.ndarray) -> np.ndarray:
    """Descending order, equal scores in the order given."""
    return np.argsort(-scores, kind='stable')


def step_ap(flags_in_rank_order: np.ndarray, g: int) -> float:
    """sum_k precision@k * r_k / G."""
    hits = np.cumsum(flags_in_rank_order)
    k = np.arange(1, flags_in_rank_order.size + 1)
    return float(np.sum((hits / k)[flags_in_rank_order]) / g)


def column_index(matrix: ScoreMatrix) -> Dict[str, int]:
    """Column of each target id in the score matrix."""
    return {t: j for j, t in enumerate(matrix.target_ids.tolist())}


def columns(col: Dict[str, int], ids) -> np.ndarray:
    """Columns of the given target ids (ids without a column dropped)."""
    return np.array([col[t] for t in ids if t in col], dtype=np.int64)


def row_of(matrix: ScoreMatrix, query: str) -> np.ndarray:
    """The query's scores over every target (NaN: not scored)."""
    return matrix.scores[matrix.row[query]]


def fivr_transcription(data: dict, version: str, easy: set,
                       scores: ScoreMatrix) -> Metrics:
    labels = {
        'DSVR': ('ND', 'DS'),
        'CSVR': ('ND', 'DS', 'CS'),
        'ISVR': ('ND', 'DS', 'CS', 'IS')
    }
    n = scores.target_ids.size
    col = column_index(scores)
    database = set(data[version]['database'])
    out = {}
    for suffix, db in (('', database), ('_hard', database - easy)):
        in_db = np.zeros(n, bool)
        in_db[columns(col, db)] = True
        for task, task_labels in labels.items():
            aps, pool_s, pool_r, g_total = [], [], [], 0
            for q in data[version]['queries']:
                if q not in scores:
                    continue
                row = row_of(scores, q)
                keep = in_db & ~np.isnan(row)  # scored database videos
                keep[columns(col, [q])] = False  # minus the query
                ann = data['annotation'].get(q, {})
                relevant = np.zeros(n, bool)
                for label in task_labels:
                    relevant[columns(col, ann.get(label, []))] = True
                s, rel = row[keep], relevant[keep]
                g = int(rel.sum())  # relevant and scored
                if g:
                    aps.append(step_ap(rel[stable_rank(s)], g))
                pool_s.append(s)
                pool_r.append(rel)
                g_total += g
            out[task + suffix] = float(np.mean(aps))
            s, r = np.concatenate(pool_s), np.concatenate(pool_r)
            out[task.replace('R', 'D') +
                suffix] = step_ap(r[stable_rank(s)], g_total)
    return out


def evve_transcription(data: dict, scores: ScoreMatrix) -> Metrics:
    event_of = {
        q: e
        for e, (qs, _, _) in data['annotation'].items()
        for q in qs
    }
    n = scores.target_ids.size
    col = column_index(scores)
    in_db = np.zeros(n, bool)
    in_db[columns(col, data['database'])] = True
    aps, per_event, pool_s, pool_r, g_total = [], {}, [], [], 0
    for q in data['queries']:
        if q not in scores:
            continue
        event = event_of[q]
        positives = set(data['annotation'][event][1]) - {q}
        if not positives:
            continue
        row = row_of(scores, q)
        keep = in_db & ~np.isnan(row)
        keep[columns(col, [q])] = False
        is_pos = np.zeros(n, bool)
        is_pos[columns(col, positives)] = True
        s, pos = row[keep], is_pos[keep]
        ap, ntp = 0.0, 0
        for rank in np.flatnonzero(pos[stable_rank(s)]).tolist():
            p0 = 1.0 if rank == 0 else ntp / rank
            p1 = (ntp + 1) / (rank + 1)
            ap += (p0 + p1) / 2 / len(positives)
            ntp += 1
        aps.append(ap)
        per_event.setdefault(event, []).append(ap)
        pool_s.append(s)
        pool_r.append(pos)
        g_total += len(positives)
    out = {'mAP': float(np.mean(aps))}
    s, r = np.concatenate(pool_s), np.concatenate(pool_r)
    out['uAP'] = step_ap(r[stable_rank(s)], g_total)
    for event in data['annotation']:
        out[f'mAP_{event}'] = float(np.mean(per_event[event]))
    return out


def sklearn_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """sum_n (R_n - R_{n-1}) P_n over the distinct thresholds."""
    order = np.argsort(scores)[::-1]  # tied scores share one threshold
    y = labels[order]
    s = scores[order]
    del order
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    del s
    tp = np.cumsum(y, dtype=np.int64)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def svd_transcription(labels: Dict[str, Dict[str, int]], unlabeled: list,
                      scores: ScoreMatrix) -> Metrics:
    col = column_index(scores)
    distractors = np.array([col[t] for t in unlabeled if t in col])
    aps, pool_s, pool_y = [], [], []
    for q, cands in labels.items():
        if q not in scores:
            continue
        row = row_of(scores, q)
        # its labeled candidates, then the distractors
        cand_ids = [t for t in cands if t in col and t != q]
        cols = np.r_[[col[t] for t in cand_ids], distractors].astype(int)
        y = np.r_[[cands[t] for t in cand_ids],
                  np.zeros(distractors.size)].astype(np.int8)
        s = row[cols]
        scored = ~np.isnan(s)
        s, y = s[scored], y[scored]
        if y.any():
            aps.append(sklearn_ap(s, y))
        pool_s.append(s)
        pool_y.append(y)
    pooled_s = np.concatenate(pool_s)
    del pool_s  # (the pooled lists of SVD take gigabytes)
    pooled_y = np.concatenate(pool_y)
    del pool_y
    return {'mAP': float(np.mean(aps)), 'uAP': sklearn_ap(pooled_s, pooled_y)}


def cc_web_transcription(data: dict, scores: ScoreMatrix) -> Metrics:
    out = {}
    variants = {
        'mAP': (False, False),
        'mAP*': (True, False),
        'mAP_clean': (False, True),
        'mAP*_clean': (True, True)
    }
    for name, (all_videos, clean) in variants.items():
        aps = []
        for s, q in enumerate(data['queries']):
            if q not in scores:
                continue
            gt, excluded = data['ground_truth'][s], data['excluded'][s]
            positives = {n for n, lab in gt.items() if lab in 'ESLMV'}
            if clean:
                positives -= excluded
            ids, values = scores[q]  # the scored targets
            ranked = [
                data['index'][t] for t in ids[stable_rank(values)].tolist()
                if t in data['index']
            ]
            ap, found, rank = 0.0, 0, 0
            for n in ranked:
                if not (all_videos or n in gt):
                    continue
                if clean and n in excluded:
                    continue
                rank += 1
                if n in positives:
                    found += 1
                    ap += found / rank
            if positives:
                aps.append(ap / len(positives))
        out[name] = float(np.mean(aps))
    return out


# --------------------------------------------------------------------- #
# synthetic benchmarks at real sizes


def make_fivr(tmp: str, rng: np.random.Generator):
    database = [f'fv{i:07d}' for i in range(225960)]
    queries = [f'fq{i:04d}' for i in range(100)]
    annotation = {}
    for i, q in enumerate(queries):
        # FIVR-5K queries label videos of the 5K database
        pool = 5000 if i < 50 else len(database)
        annotation[q] = {
            label: [database[j] for j in rng.choice(pool, int(n), False)]
            for label, n in zip((
                'ND', 'DS', 'CS',
                'IS'), rng.integers((5, 20, 20, 20), (40, 120, 150, 150)))
        }
    data = {
        'annotation': annotation,
        '200k': {
            'queries': queries,
            'database': database
        },
        '5k': {
            'queries': queries[:50],
            'database': database[:5000]
        }
    }
    ann_file = osp.join(tmp, 'fivr.pk')
    with open(ann_file, 'wb') as f:
        pickle.dump(data, f)
    easy = [database[j] for j in rng.choice(len(database), 3000, False)]
    easy += [database[j] for j in rng.choice(5000, 150, False)]
    easy_file = osp.join(tmp, 'easy.txt')
    with open(easy_file, 'w') as f:
        f.write('\n'.join(easy))
    return data, ann_file, easy_file, set(easy)


def fivr_scores(data, version, rng) -> ScoreMatrix:
    queries = data[version]['queries']
    database = data[version]['database']
    col = {v: j for j, v in enumerate(database)}
    scores = rng.random((len(queries), len(database)), dtype=np.float32)
    for i, q in enumerate(queries):
        for boost, label in zip((1.0, 0.6, 0.4, 0.2),
                                ('ND', 'DS', 'CS', 'IS')):
            cols = [col[v] for v in data['annotation'][q][label] if v in col]
            scores[i, cols] += np.float32(boost)
    return ScoreMatrix(queries, database, scores)


def make_evve(tmp: str, rng: np.random.Generator):
    database = [f'ed{i:05d}' for i in range(2373)]
    queries = [f'eq{i:04d}' for i in range(620)]
    events = {}
    for e, qs in enumerate(np.array_split(np.array(queries), 13)):
        positives = set(
            rng.choice(database, int(rng.integers(30, 200)), False).tolist())
        nulls = set(rng.choice(database, 60, False).tolist()) - positives
        events[f'event{e:02d}'] = (set(qs.tolist()), positives, nulls)
    data = {'annotation': events, 'queries': queries, 'database': database}
    ann_file = osp.join(tmp, 'evve.pk')
    with open(ann_file, 'wb') as f:
        pickle.dump(data, f)
    col = {v: j for j, v in enumerate(database)}
    scores = rng.random((len(queries), len(database)), dtype=np.float32)
    for i, q in enumerate(queries):
        event = next(e for e, v in events.items() if q in v[0])
        scores[i, [col[v] for v in events[event][1]]] += np.float32(0.3)
    return data, ann_file, ScoreMatrix(queries, database, scores)


def make_svd(tmp: str, rng: np.random.Generator, n_distractors: int):
    n_queries, n_labeled = 1206, 34020
    queries = [f'sq{i:04d}' for i in range(n_queries)]
    candidates = [f'sc{i:05d}' for i in range(n_labeled)]
    unlabeled = [f'su{i:06d}' for i in range(n_distractors)]
    blocks = np.array_split(np.arange(n_labeled), n_queries)
    labels: Dict[str, Dict[str, int]] = {}
    lines = []
    for q, block in zip(queries, blocks):
        lab = (rng.random(block.size) < 0.3).astype(int)
        lab[0] = 1
        labels[q] = {candidates[j]: int(v) for j, v in zip(block, lab)}
        lines += [f'{q} {candidates[j]} {v}' for j, v in zip(block, lab)]
    gt_file = osp.join(tmp, 'svd_gt.txt')
    with open(gt_file, 'w') as f:
        f.write('\n'.join(lines))
    unlabeled_file = osp.join(tmp, 'svd_unlabeled.txt')
    with open(unlabeled_file, 'w') as f:
        f.write('\n'.join(unlabeled))
    # one row per query over every target: its own candidates and the
    # distractors are scored, the other queries' candidates are NaN
    targets = candidates + unlabeled
    scores = rng.random((n_queries, len(targets)), dtype=np.float32)
    scores[:, :n_labeled] = np.nan
    for i, (q, block) in enumerate(zip(queries, blocks)):
        lab = np.array([labels[q][candidates[j]] for j in block], np.float32)
        scores[i, block] = rng.random(block.size, dtype=np.float32) + lab / 2
    return (labels, unlabeled, gt_file, unlabeled_file,
            ScoreMatrix(queries, targets, scores))


def make_cc_web(tmp: str, rng: np.random.Generator):
    videos = [f'cv{i:05d}' for i in range(12790)]
    index = {v: i for i, v in enumerate(videos)}
    query_numbers = rng.choice(len(videos), 24, False)
    queries = [videos[n] for n in query_numbers]
    ground_truth, excluded = [], []
    for n in query_numbers:
        labeled = rng.choice(len(videos), 700, False)
        gt = {
            int(v): str(lab)
            for v, lab in zip(labeled, rng.choice(list('ESVMLX-'), 700))
        }
        gt[int(n)] = 'E'
        ground_truth.append(gt)
        excluded.append(set(rng.choice(labeled, 40, False).tolist()))
    data = {
        'index': index,
        'queries': queries,
        'ground_truth': ground_truth,
        'excluded': excluded
    }
    ann_file = osp.join(tmp, 'cc_web.pk')
    with open(ann_file, 'wb') as f:
        pickle.dump(data, f)
    scores = rng.random((24, len(videos)), dtype=np.float32)
    for i, gt in enumerate(ground_truth):
        pos = [v for v, lab in gt.items() if lab in 'ESLMV']
        scores[i, pos] += np.float32(0.3)
    return data, ann_file, ScoreMatrix(queries, videos, scores)


# --------------------------------------------------------------------- #


def compare(name: str, ours: Callable[[], Metrics],
            reference: Callable[[], Metrics], repeat: int) -> Tuple:
    """Alternate the two; return the times and the largest difference."""
    t_ours: List[float] = []
    t_ref: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        m_ours = ours()
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        m_ref = reference()
        t_ref.append(time.perf_counter() - start)
    if set(m_ours) != set(m_ref):
        raise AssertionError(f'{name}: metric names differ: '
                             f'{sorted(m_ours)} vs {sorted(m_ref)}')
    diff = max(abs(m_ours[k] - m_ref[k]) for k in m_ours)
    best_o, best_r = min(t_ours), min(t_ref)
    print(
        f'{name:<14} {best_o:9.3f} {statistics.median(t_ours):9.3f} '
        f'{best_r:9.3f} {statistics.median(t_ref):9.3f} '
        f'{best_r / best_o:8.1f}x {diff:10.1e}',
        flush=True)
    print(
        '    ' + ' '.join(f'{k}={v:.4f}' for k, v in m_ours.items()),
        flush=True)
    return best_o, best_r, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument(
        '--only',
        nargs='+',
        choices=['FIVR-5K', 'FIVR-200K', 'EVVE', 'SVD', 'CC_WEB_VIDEO'])
    parser.add_argument('--svd-distractors', type=int, default=526787)
    args = parser.parse_args()
    only = set(args.only
               or ['FIVR-5K', 'FIVR-200K', 'EVVE', 'SVD', 'CC_WEB_VIDEO'])
    rng = np.random.default_rng(0)
    print(
        f'load average at start: {load_average()}; best and median of '
        f'{args.repeat} alternating rounds, seconds',
        flush=True)
    print(
        f'{"benchmark":<14} {"ours":>9} {"(median)":>9} {"transcr.":>9} '
        f'{"(median)":>9} {"speed-up":>9} {"max |diff|":>10}',
        flush=True)
    worst = []
    with tempfile.TemporaryDirectory() as tmp:
        if only & {'FIVR-5K', 'FIVR-200K'}:
            data, ann_file, easy_file, easy = make_fivr(tmp, rng)
            for version, name in (('5k', 'FIVR-5K'), ('200k', 'FIVR-200K')):
                if name not in only:
                    continue
                ann = FIVRAnnotation(ann_file, version, easy_file)
                scores = fivr_scores(data, version, rng)
                worst.append(
                    compare(
                        name, lambda: ann.evaluate(scores),
                        lambda: fivr_transcription(data, version, easy, scores
                                                   ), args.repeat))
                del scores
        if 'EVVE' in only:
            data, ann_file, scores = make_evve(tmp, rng)
            ann = EVVEAnnotation(ann_file)
            worst.append(
                compare('EVVE', lambda: ann.evaluate(scores),
                        lambda: evve_transcription(data, scores), args.repeat))
        if 'CC_WEB_VIDEO' in only:
            data, ann_file, scores = make_cc_web(tmp, rng)
            ann = CCWebAnnotation(ann_file)
            worst.append(
                compare('CC_WEB_VIDEO', lambda: ann.evaluate(scores),
                        lambda: cc_web_transcription(data, scores),
                        args.repeat))
        if 'SVD' in only:
            labels, unlabeled, gt_file, unlabeled_file, scores = make_svd(
                tmp, rng, args.svd_distractors)
            ann = SVDAnnotation(gt_file, unlabeled_file)
            worst.append(
                compare('SVD', lambda: ann.evaluate(scores),
                        lambda: svd_transcription(labels, unlabeled, scores),
                        args.repeat))
    print(f'load average at end: {load_average()}')
    slower = [w for w in worst if w[0] >= w[1]]
    print('ours faster on every benchmark'
          if not slower else f'ours NOT faster on {len(slower)} benchmark(s)')


if __name__ == '__main__':
    main()
