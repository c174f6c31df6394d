"""Float16 against float32 storage of indexed features: scores and bytes.

Also the change of scores when the float16 index is scored with bfloat16
region products (``tools/search.py --precision bfloat16``).

Indexes the same videos twice with ``tools/extract_features.py`` (once
with ``--dtype float32``, once with the default, float16), then scores
every query of the set against its database with each index
(:func:`hapvr_mm.search.storage.compare_indexes`) and prints the largest
and mean change of a HAP-VR score, whether the rankings stay the same,
the ranks of the relevant videos, and the bytes per video-minute of each
file (:meth:`hapvr_mm.search.VideoIndex.storage`).

Sets (either or both):

* ``--demo DIR``: the demo benchmark (``DIR/eval/videos`` and
  ``DIR/eval/annotation.json``, made by
  ``tools/data/make_demo_dataset.py``): 8 queries, 48 database videos;
* ``--copy-set DIR``: a clip with 7 transformed copies among 48 unrelated
  videos (``tools/data/make_copy_set.py``, written to ``DIR`` when it is
  not there).

Example::

    python benchmarks/index_storage.py --demo data/demo \
        --copy-set work_dirs/copy_set \
        --checkpoint work_dirs/hapvr_demo/iter_80.pth
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from typing import Dict

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from common import load_average

import hapvr_mm  # noqa: F401
from hapvr_mm.search import VideoIndex, model_for_index
from hapvr_mm.search.storage import compare_indexes, compare_precision
from hapvr_mm.utils import load_script

DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')


def _tool(name: str):
    """A script of ``tools/`` (or ``tools/data/``) as a module."""
    return load_script(osp.join(ROOT, 'tools', name))


def measure_set(name: str, folder: str, annotation: str, config: str,
                checkpoint: str, work_dir: str) -> Dict:
    """Index ``folder`` in both types and compare them.

    Args:
        name (str): name of the set (file names in ``work_dir``).
        folder (str): the videos.
        annotation (str): its JSON annotation (queries, database,
            relevance).
        config (str): model config.
        checkpoint (str): checkpoint or ``'none'``.
        work_dir (str): where the two indexes are written.

    Returns:
        dict: :func:`compare_indexes`'s figures plus ``storage`` per type
        and the indexing seconds.
    """
    extract = _tool('extract_features.py')
    with open(annotation) as f:
        ann = json.load(f)
    out, paths = dict(set=name), {}
    for dtype in ('float32', 'float16'):
        path = osp.join(work_dir, f'{name}_{dtype}.h5')
        for stale in (path, path + '.lock'):
            if osp.exists(stale):
                os.remove(stale)
        argv = [
            config, checkpoint, '--videos', folder, '--out', path, '--workers',
            '0'
        ]
        if dtype == 'float32':  # float16 is the default
            argv += ['--dtype', 'float32']
        start = time.perf_counter()
        extract.main(argv)
        out[f'index_seconds_{dtype}'] = round(time.perf_counter() - start, 1)
        paths[dtype] = path
    with VideoIndex(paths['float32']) as ref, \
            VideoIndex(paths['float16']) as half:
        if half.dtype != 'float16':
            raise RuntimeError(f'the default index type is {half.dtype}')
        model, _ = model_for_index(ref)
        out.update(
            compare_indexes(model, ref, half, ann['queries'], ann['database'],
                            ann.get('relevance')))
        # the float16 index (the default) scored with bfloat16 region
        # products (search --precision bfloat16) against float32 ones
        out['bfloat16'] = compare_precision(model, half, ann['queries'],
                                            ann['database'],
                                            ann.get('relevance'))
        out['storage'] = dict(float32=ref.storage(), float16=half.storage())
    return out


def print_report(res: Dict) -> None:
    """Print one set's figures."""
    s32, s16 = res['storage']['float32'], res['storage']['float16']
    print(f"\n== {res['set']}: {s32['videos']} videos, "
          f"{s32['minutes']:.1f} video-minutes, "
          f"{s32['regions']} x {s32['dims']} features per frame")
    print(f"score change float16 vs float32 over {res['pairs']} pairs: max "
          f"{res['max_abs_diff']:.2e}, mean {res['mean_abs_diff']:.2e}; "
          f"same top 10: {100 * res['same_top10']:.0f} % of queries, same "
          f"full ranking: {100 * res['same_order']:.0f} %")
    for q, (a, b) in sorted(res.get('ranks', {}).items()):
        print(f'  ranks of the relevant videos of {q}: float32 {a}, '
              f'float16 {b}')
    bf = res['bfloat16']
    print(f"score change with bfloat16 region products (float16 index): "
          f"max {bf['max_abs_diff']:.2e}, mean {bf['mean_abs_diff']:.2e}; "
          f"same top 10: {100 * bf['same_top10']:.0f} % of queries, same "
          f"full ranking: {100 * bf['same_order']:.0f} %")
    for q, (a, b) in sorted(bf.get('ranks', {}).items()):
        print(f'  ranks of the relevant videos of {q}: float32 {a}, '
              f'bfloat16 {b}')
    print(f"{'type':>8} {'features KB/min':>16} {'file KB/min':>12} "
          f"{'file MB':>8}")
    for dtype, s in (('float32', s32), ('float16', s16)):
        print(f"{dtype:>8} {s['bytes_per_minute'] / 1e3:>16.1f} "
              f"{s['file_bytes_per_minute'] / 1e3:>12.1f} "
              f"{s['file_bytes'] / 1e6:>8.2f}")


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(
        description='float16 against float32 index storage')
    parser.add_argument('--demo', help='demo data root (data/demo)')
    parser.add_argument(
        '--copy-set', help='copy-detection set folder (made if missing)')
    parser.add_argument('--config', default=DEMO_CONFIG)
    parser.add_argument('--checkpoint', default='none')
    parser.add_argument('--work-dir', default='work_dirs/index_storage')
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args(argv)
    if not (args.demo or args.copy_set):
        parser.error('give --demo and/or --copy-set')
    os.makedirs(args.work_dir, exist_ok=True)
    print(f'load average at start: {load_average()}')
    results = []
    if args.demo:
        results.append(
            measure_set('demo', osp.join(args.demo, 'eval', 'videos'),
                        osp.join(args.demo, 'eval', 'annotation.json'),
                        args.config, args.checkpoint, args.work_dir))
    if args.copy_set:
        ann = osp.join(args.copy_set, 'annotation.json')
        if not osp.isfile(ann):
            _tool(osp.join('data',
                           'make_copy_set.py')).make_copy_set(args.copy_set)
        results.append(
            measure_set('copy_set', args.copy_set, ann, args.config,
                        args.checkpoint, args.work_dir))
    for res in results:
        print_report(res)
    print(f'load average at end: {load_average()}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
