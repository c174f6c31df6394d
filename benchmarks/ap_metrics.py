"""Time the exact FIVR metrics at FIVR-200K scale.

Synthetic data: 100 queries x 225,960 database videos, a random annotation
with a few hundred labeled videos per query (ND/DS/CS/IS) and a list of a few
thousand easy duplicates. Times :meth:`FIVRAnnotation.evaluate` computing all
twelve metrics (DSVR/CSVR/ISVR mAP, DSVD/CSVD/ISVD uAP, and the ``_hard``
variants) from the scores dict.

Usage::

    python benchmarks/ap_metrics.py [--queries 100] [--database 225960]
"""
import argparse
import os.path as osp
import pickle
import tempfile
import time

import numpy as np

from hapvr_mm.datasets.annotations import FIVRAnnotation


def make_fivr(tmp_dir: str,
              n_queries: int,
              n_database: int,
              n_easy: int,
              seed: int = 0):
    """Write a synthetic FIVR pickle and easy list; return their paths."""
    rng = np.random.default_rng(seed)
    database = [f'db{i:07d}' for i in range(n_database)]
    queries = [f'q{i:04d}' for i in range(n_queries)]
    annotation = {}
    for q in queries:
        counts = {
            'ND': rng.integers(5, 40),
            'DS': rng.integers(20, 120),
            'CS': rng.integers(20, 150),
            'IS': rng.integers(20, 150)
        }
        annotation[q] = {
            label: [database[i] for i in rng.choice(n_database, int(n))]
            for label, n in counts.items()
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
    ann_file = osp.join(tmp_dir, 'fivr.pk')
    with open(ann_file, 'wb') as f:
        pickle.dump(data, f)
    easy_file = osp.join(tmp_dir, 'easy.txt')
    with open(easy_file, 'w') as f:
        f.write('\n'.join(database[i]
                          for i in rng.choice(n_database, n_easy, False)))
    return ann_file, easy_file, queries, database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--queries', type=int, default=100)
    parser.add_argument('--database', type=int, default=225960)
    parser.add_argument('--easy', type=int, default=3000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        ann_file, easy_file, queries, database = make_fivr(
            tmp_dir, args.queries, args.database, args.easy)
        t0 = time.perf_counter()
        ann = FIVRAnnotation(ann_file, '200k', easy_duplicates=easy_file)
        print(f'load annotation: {time.perf_counter() - t0:.2f} s')
    rng = np.random.default_rng(1)
    ids = np.array(database)
    # Scores correlated with relevance so the metrics are not trivial.
    scores = {}
    for q in queries:
        s = rng.random(len(ids)).astype(np.float32)
        codes, levels = ann.relevance[q]
        s[codes - len(ann.queries)] += 1.0 / levels
        scores[q] = (ids, s)
    copies = {q: (ids.copy(), s) for q, (_, s) in scores.items()}
    # Scores on a coarse grid: most relevant items tie with other videos.
    quantised = {
        q: (ids, np.round(s * 1e4) / 1e4)
        for q, (_, s) in scores.items()
    }
    print(f'{len(queries)} queries x {len(database)} database videos, '
          f'{sum(r[0].size for r in ann.relevance.values())} labeled '
          f'(query, video) pairs, {args.easy} easy duplicates')
    for label, sc in [('shared target_ids array', scores),
                      ('a copy of target_ids per query', copies),
                      ('scores rounded to 1e-4, many ties', quantised)]:
        times = []
        for _ in range(args.repeat):
            ann._indexer._last_ids = None  # no cache from a previous run
            t0 = time.perf_counter()
            metrics = ann.evaluate(sc)
            times.append(time.perf_counter() - t0)
        print(f'all 12 FIVR metrics ({label}): best '
              f'{min(times):.2f} s, mean {np.mean(times):.2f} s '
              f'over {args.repeat} runs')
        print('  ' + ' '.join(f'{k}={v:.4f}' for k, v in metrics.items()))


if __name__ == '__main__':
    main()
