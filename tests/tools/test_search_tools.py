"""End-to-end tests of the search commands (subprocesses, demo videos):
the README's "Search your own videos" commands, a killed indexing run that
resumes to the same index, two processes with ``--launcher pytorch``, and
``tools/score_thresholds.py``."""
import csv
import json
import os
import os.path as osp
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')
TOOLS = [
    'extract_features.py', 'search.py', 'compare_videos.py',
    'score_thresholds.py'
]


def run(cmd, check=True, timeout=300, **env):
    full = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **env)
    full.pop('HAPVR_WRITE_FAULT', None)
    full.update(env)
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A small demo benchmark (2 queries with 2 copies each, 3 distractors;
    the quick start's q000, q001, db0000... up to db0006 are among its
    files) and a demo-config checkpoint with random weights."""
    root = tmp_path_factory.mktemp('search')
    run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(root / 'data' / 'demo'), '--num-train', '1', '--num-queries', '2',
        '--copies-per-query', '2', '--num-distractors', '3', '--corrupt', '0',
        '--quiet'
    ])
    from mmaction.registry import MODELS
    from mmengine.config import Config
    torch.manual_seed(5)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    model.init_weights()
    ckpt = root / 'demo.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return root, str(ckpt)


def small_folder(demo, name, ids, bad=True):
    """A folder with some demo videos (and a corrupt one)."""
    root, _ = demo
    folder = root / name
    folder.mkdir()
    for vid in ids:
        shutil.copy(root / 'data' / 'demo' / 'eval' / 'videos' / f'{vid}.mp4',
                    folder / f'{vid}.mp4')
    if bad:
        (folder / 'broken.mp4').write_bytes(b'\x00not a video' * 40)
    return folder


def read_index(path):
    from hapvr_mm.search import VideoIndex
    with VideoIndex(str(path)) as idx:
        feats = [idx.features(i).numpy() for i in range(len(idx))]
        return idx.ids, idx.paths, idx.global_desc.numpy(), feats, \
            idx.skipped


def assert_same_index(a, b):
    ids_a, paths_a, glob_a, feats_a, _ = read_index(a)
    ids_b, paths_b, glob_b, feats_b, _ = read_index(b)
    assert ids_a == ids_b and paths_a == paths_b
    assert np.array_equal(glob_a, glob_b)
    assert all(np.array_equal(x, y) for x, y in zip(feats_a, feats_b))


@pytest.mark.parametrize('tool', TOOLS)
def test_help(tool):
    out = run([sys.executable, osp.join(ROOT, 'tools', tool), '--help'])
    assert 'usage:' in out.stdout and 'examples:' in out.stdout


def readme_commands():
    """The commands of the README's "Search your own videos" section."""
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    section = text.split('## Search your own videos', 1)[1].split('\n## ')[0]
    block = re.search(r'```bash\n(.*?)```', section, re.S).group(1)
    return [ln for ln in block.splitlines() if ln.startswith('python ')]


def test_readme_search_commands_on_demo_data(demo):
    """The three README commands, run on the demo videos (paths moved to a
    temporary folder, a random-weight checkpoint for the trained one)."""
    root, ckpt = demo
    cmds = readme_commands()
    assert [shlex.split(c)[1] for c in cmds] == [
        'tools/extract_features.py', 'tools/search.py',
        'tools/compare_videos.py'
    ]
    outputs = []
    for cmd in cmds:
        cmd = cmd.replace('work_dirs/hapvr_demo/iter_80.pth', ckpt)
        cmd = cmd.replace('data/demo', str(root / 'data' / 'demo'))
        cmd = cmd.replace('work_dirs/', str(root / 'work') + '/')
        args = shlex.split(cmd)
        outputs.append(run([sys.executable] + args[1:]).stdout)
    index_out, search_out, compare_out = outputs
    assert '9 to extract' in index_out and '9 written, 0 skipped' in \
        index_out
    assert re.search(r'\[9/9\] [\d.]+ videos/s, ETA', index_out)
    ids, paths, glob, feats, _ = read_index(root / 'work' / 'demo_index.h5')
    assert len(ids) == 9 and 'q001.mp4' in ids and glob.shape[0] == 9
    assert np.allclose(np.linalg.norm(glob, axis=1), 1, atol=1e-5)
    # the ranked table: 5 rows, the query itself left out
    lines = search_out.splitlines()
    query = root / 'data' / 'demo' / 'eval' / 'videos' / 'q001.mp4'
    start = lines.index(f'query: {query}')
    assert lines[start + 1].split() == ['rank', 'video', 'score', 'global']
    table = [ln.split() for ln in lines[start + 2:start + 7]]
    assert [r[0] for r in table] == ['1', '2', '3', '4', '5']
    assert 'q001.mp4' not in [r[1] for r in table]
    scores = [float(r[2]) for r in table]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= s <= 1 for s in scores)
    data = json.loads((root / 'work' / 'search_q001.json').read_text())
    res = data['queries'][0]['results']
    assert [r['id'] for r in res] == [r[1] for r in table]
    with open(root / 'work' / 'search_q001.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['id'] for r in rows] == [r[1] for r in table]
    assert abs(float(rows[0]['score']) - res[0]['score']) < 1e-5
    page = (root / 'work' / 'search_q001.html').read_text()
    assert page.count('<tr class="result"') == len(table)
    assert 'http://' not in page and 'https://' not in page
    png = root / 'work' / 'q001_vs_db0005.png'
    assert png.read_bytes()[:4] == b'\x89PNG'
    assert 'q001.mp4 vs db0005.mp4: score' in compare_out


def test_search_queries_shortlist_and_compare_files(demo, tmp_path):
    root, ckpt = demo
    folder = small_folder(demo, 'coll_search',
                          ['q000', 'q001', 'db0001', 'db0002', 'db0005'])
    index = tmp_path / 'idx.h5'
    out = run([
        sys.executable, 'tools/extract_features.py', CONFIG, ckpt, '--videos',
        str(folder), '--out',
        str(index), '--workers', '0', '--batch-size', '3'
    ]).stdout
    assert '5 written, 1 skipped' in out
    assert "skipped 'broken.mp4'" in out and '1 videos skipped' in out
    ids, _, _, _, skipped = read_index(index)
    assert ids == [
        'db0001.mp4', 'db0002.mp4', 'db0005.mp4', 'q000.mp4', 'q001.mp4'
    ]
    assert list(skipped) == ['broken.mp4']
    # an id of the index, with and without itself; a shortlist of 2
    res = tmp_path / 'r'
    run([
        sys.executable, 'tools/search.py',
        str(index), 'q000.mp4', '--topk', '5', '--include-self', '--out',
        str(res)
    ])
    full = json.loads((tmp_path / 'r.json').read_text())['queries'][0]
    assert sorted(r['id'] for r in full['results']) == ids
    run([
        sys.executable, 'tools/search.py',
        str(index), 'q000', '--topk', '4', '--shortlist', '2', '--out',
        str(res)
    ])
    short = json.loads((tmp_path / 'r.json').read_text())
    assert short['meta']['mode'] == 'shortlist 4 of 5'
    got = short['queries'][0]['results']
    assert 'q000.mp4' not in [r['id'] for r in got] and len(got) == 4
    # the shortlist's candidates came from an exact faiss index saved
    # next to the index; the dense product gives the same results
    from hapvr_mm.search import faiss_available
    if faiss_available():
        assert (tmp_path / 'idx.h5.faiss').is_file()
        assert json.loads(
            (tmp_path / 'idx.h5.faiss.json').read_text())['kind'] == 'flat'
    run([
        sys.executable, 'tools/search.py',
        str(index), 'q000', '--topk', '4', '--shortlist', '2',
        '--global-index', 'none', '--out',
        str(res)
    ])
    dense = json.loads((tmp_path / 'r.json').read_text())['queries'][0]
    assert [r['id'] for r in dense['results']] == [r['id'] for r in got]
    for a, b in zip(dense['results'], got):
        assert a['score'] == pytest.approx(b['score'], abs=1e-6)
        assert a['global_score'] == pytest.approx(b['global_score'], abs=1e-6)
    # a folder of queries (the broken one is skipped with a warning), with
    # bfloat16 region products (scores near the float32 ones) and the
    # preload flag (a no-op for an exact index)
    out = run([
        sys.executable, 'tools/search.py',
        str(index),
        str(folder), '--topk', '2', '--precision', 'bfloat16',
        '--preload-descriptors', '--out',
        str(res)
    ]).stdout
    data = json.loads((tmp_path / 'r.json').read_text())
    assert [q['query'] for q in data['queries']] == [
        'db0001.mp4', 'db0002.mp4', 'db0005.mp4', 'q000.mp4', 'q001.mp4'
    ]
    assert 'broken.mp4 skipped' in out
    # a file query scores like its indexed copy
    run([
        sys.executable, 'tools/search.py',
        str(index),
        str(folder / 'db0005.mp4'), '--include-self', '--topk', '5', '--out',
        str(res)
    ])
    by_file = json.loads((tmp_path / 'r.json').read_text())
    run([
        sys.executable, 'tools/search.py',
        str(index), 'db0005.mp4', '--include-self', '--topk', '5', '--out',
        str(res)
    ])
    by_id = json.loads((tmp_path / 'r.json').read_text())
    a = {r['id']: r['score'] for r in by_file['queries'][0]['results']}
    b = {r['id']: r['score'] for r in by_id['queries'][0]['results']}
    assert a.keys() == b.keys()
    assert all(abs(a[k] - b[k]) < 1e-4 for k in a)
    # two files, no index: config + checkpoint
    js = tmp_path / 'pair.json'
    run([
        sys.executable, 'tools/compare_videos.py',
        str(folder / 'db0005.mp4'),
        str(folder / 'q000.mp4'), '--config', CONFIG, '--checkpoint', ckpt,
        '--out',
        str(tmp_path / 'p.png'), '--json',
        str(js)
    ])
    pair = json.loads(js.read_text())
    frames = dict(zip(ids, read_index(index)[3]))
    assert pair['frames'] == [
        frames['db0005.mp4'].shape[0], frames['q000.mp4'].shape[0]
    ]
    assert abs(pair['score'] - b['q000.mp4']) < 1e-4
    # a model other than the index's is refused
    bad = run([
        sys.executable, 'tools/search.py',
        str(index), 'q000.mp4', '--checkpoint', 'none', '--out',
        str(res)
    ],
              check=False)
    assert bad.returncode != 0 and 'not the one that made' in bad.stderr
    assert 'Traceback' not in bad.stderr
    # user errors: one 'error:' line, exit status 2, no traceback
    for args in (['missing_query.mp4'], ['q000.mp4', '--shortlist', 'abc'],
                 ['q000.mp4', '--shortlist', '0']):
        bad = run([
            sys.executable, 'tools/search.py',
            str(index), *args, '--out',
            str(res)
        ],
                  check=False)
        assert bad.returncode == 2, bad.stderr
        assert 'Traceback' not in bad.stderr, bad.stderr
        assert 'error:' in bad.stderr.strip().splitlines()[-1], bad.stderr
    assert 'missing_query.mp4' in run(
        [sys.executable, 'tools/search.py',
         str(index), 'missing_query.mp4'],
        check=False).stderr
    bad = run([
        sys.executable, 'tools/search.py',
        str(tmp_path / 'no.h5'), 'q000.mp4'
    ],
              check=False)
    assert bad.returncode == 2 and bad.stderr.startswith('error: index file')


def test_killed_index_run_resumes_to_the_same_index(demo, tmp_path):
    """SIGKILL half-way through writing the 4th video (its features are in
    the file, its commit is not); the next run rolls it back, resumes and
    ends with the index of an uninterrupted run."""
    _, ckpt = demo
    folder = small_folder(
        demo, 'coll_kill',
        ['q001', 'db0000', 'db0002', 'db0003', 'db0004', 'db0006'])
    cmd = [
        sys.executable, 'tools/extract_features.py', CONFIG, ckpt, '--videos',
        str(folder), '--workers', '0', '--batch-size', '1', '--fp16'
    ]
    ref, idx = tmp_path / 'ref.h5', tmp_path / 'idx.h5'
    run(cmd + ['--out', str(ref)])
    killed = run(
        cmd + ['--out', str(idx)], check=False, HAPVR_WRITE_FAULT='rows@3')
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:]
    ids, *_ = read_index(idx)  # readable, 3 videos committed
    assert len(ids) == 3
    import h5py
    with h5py.File(idx, 'r') as h5:  # the interrupted 4th was half-written
        assert len(h5['features']) == 4 and h5['global'].shape[0] == 4
    out = run(cmd + ['--out', str(idx)]).stdout
    assert '3 already in' in out and '3 written, 1 skipped' in out
    assert_same_index(ref, idx)
    out = run(cmd + ['--out', str(idx)]).stdout  # nothing left but the bad
    assert '0 written, 1 skipped, 6 already present' in out
    # other decoding settings on the same file are refused
    bad = run(cmd + ['--out', str(idx), '--crop', '96'], check=False)
    assert bad.returncode != 0 and 'crop=112' in bad.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_write_the_single_process_index(demo, tmp_path):
    """``--launcher pytorch`` with 2 CPU processes (gloo) and an ``.h5``
    ``--out``: rank 0 writes every video into that one file, in the order
    and with the values of one process (a folder as ``--out`` gives one
    shard per process: tests/search/test_shards.py)."""
    _, ckpt = demo
    folder = small_folder(demo, 'coll_dist',
                          ['q000', 'db0001', 'db0003', 'db0005', 'db0006'])
    common = [
        CONFIG, ckpt, '--videos',
        str(folder), '--workers', '0', '--batch-size', '1'
    ]
    one, two = tmp_path / 'one.h5', tmp_path / 'two.h5'
    run([
        sys.executable, 'tools/extract_features.py', *common, '--out',
        str(one)
    ])
    out = run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(_free_port()), 'tools/extract_features.py', *common, '--out',
        str(two), '--launcher', 'pytorch'
    ]).stdout
    assert '5 written, 1 skipped' in out
    assert f'rank 0 writes every video into {two}' in out
    assert not (tmp_path / 'shard-00000.h5').exists()
    assert_same_index(one, two)


def test_score_thresholds_on_an_annotated_index(demo, tmp_path):
    """Index the demo benchmark's ids (``--index``), then report precision,
    recall and F1 over thresholds from the index and from a search JSON."""
    root, ckpt = demo
    data = root / 'data' / 'demo' / 'eval'
    ann = str(data / 'annotation.json')
    index = tmp_path / 'bench.h5'
    run([
        sys.executable, 'tools/extract_features.py', CONFIG, ckpt, '--index',
        '--annotation', ann, '--video-pattern',
        str(data / 'videos' / '{id}.mp4'), '--out',
        str(index), '--workers', '0', '--batch-size', '8'
    ])
    ids, *_ = read_index(index)
    annotation = json.loads(open(ann).read())
    assert ids == annotation['queries'] + annotation['database']
    out_json = tmp_path / 'thr.json'
    out = run([
        sys.executable, 'tools/score_thresholds.py', '--index',
        str(index), '--annotation', ann, '--out',
        str(out_json), '--thresholds', '-1', '0.5', '1.01'
    ]).stdout
    assert '2 queries, 14 scored pairs, 4 of 4' in out
    res = json.loads(out_json.read_text())
    low, _, high = res['table']
    assert (low['tp'], low['fp'], low['fn']) == (4, 10, 0)
    assert (high['tp'], high['fp'], high['precision']) == (0, 0, None)
    assert 0 < res['best_f1']['f1'] <= 1


def test_names_with_glob_characters_and_an_older_index(demo, tmp_path):
    """``Movie [1080p].mp4`` is indexed, searched and compared as itself
    (as a glob it would match ``Movie 1.mp4``). The index stores its config
    as JSON data; once its config is made Python text (an older index) it
    is refused without running that text, and ``--config`` still works."""
    root, ckpt = demo
    videos = root / 'data' / 'demo' / 'eval' / 'videos'
    folder = tmp_path / 'my videos'
    folder.mkdir()
    shutil.copy(videos / 'q000.mp4', folder / 'Movie [1080p].mp4')
    shutil.copy(videos / 'db0001.mp4', folder / 'Movie 1.mp4')
    shutil.copy(videos / 'db0005.mp4', folder / 'a*b?.mp4')
    movie = str(folder / 'Movie [1080p].mp4')
    index = tmp_path / 'idx [v1].h5'
    out = run([
        sys.executable, 'tools/extract_features.py', CONFIG, ckpt, '--videos',
        movie,
        str(folder / 'a*b?.mp4'), '--out',
        str(index), '--workers', '0', '--batch-size', '2'
    ]).stdout
    assert '2 written, 0 skipped' in out
    ids, paths, _, feats, _ = read_index(index)
    assert paths == [movie, str(folder / 'a*b?.mp4')]
    import h5py
    with h5py.File(index, 'r') as h5:
        assert 'config_text' not in h5.attrs
        stored = json.loads(h5.attrs['config_json'])
    assert stored['model']['type'] == 'HAPVR'
    # the id (file name) and the file itself as queries
    res = tmp_path / 'r'
    run([
        sys.executable, 'tools/search.py',
        str(index), 'Movie [1080p].mp4', movie, '--include-self', '--topk',
        '2', '--out',
        str(res)
    ])
    data = json.loads((tmp_path / 'r.json').read_text())
    by_id, by_file = data['queries']
    assert by_id['query'] == ids[0]
    a = {r['id']: r['score'] for r in by_id['results']}
    b = {r['id']: r['score'] for r in by_file['results']}
    assert sorted(a) == sorted(b) == sorted(ids)
    assert all(abs(a[k] - b[k]) < 1e-4 for k in a)
    # compare: a file against an id of the index
    js = tmp_path / 'pair.json'
    run([
        sys.executable, 'tools/compare_videos.py', movie, 'a*b?.mp4',
        '--index',
        str(index), '--out',
        str(tmp_path / 'p.png'), '--json',
        str(js)
    ])
    pair = json.loads(js.read_text())
    assert pair['frames'] == [feats[0].shape[0], feats[1].shape[0]]
    # an older index: Python config text instead of JSON data
    marker = tmp_path / 'PWNED'
    with h5py.File(index, 'a') as h5:
        del h5.attrs['config_json']
        h5.attrs['config_text'] = (f'open({str(marker)!r}, "w").close()\n' +
                                   open(CONFIG).read())
    bad = run([
        sys.executable, 'tools/search.py',
        str(index), movie, '--out',
        str(res)
    ],
              check=False)
    assert bad.returncode != 0 and not marker.exists()
    assert str(index) in bad.stderr
    assert 'tools/extract_features.py' in bad.stderr
    assert '--config' in bad.stderr
    run([
        sys.executable, 'tools/search.py',
        str(index), 'Movie [1080p].mp4', '--config', CONFIG, '--checkpoint',
        ckpt, '--include-self', '--topk', '2', '--out',
        str(res)
    ])
    again = json.loads((tmp_path / 'r.json').read_text())['queries'][0]
    c = {r['id']: r['score'] for r in again['results']}
    assert sorted(c) == sorted(a)
    assert all(abs(a[k] - c[k]) < 1e-4 for k in a)
    assert not marker.exists()


RETRIEVER_CONFIGS = {
    'hapvr':
    CONFIG,
    'cosine':
    osp.join(ROOT, 'configs', 'mixing', 'retriever_resnet18_cosine_demo.py'),
    'chamfer':
    osp.join(ROOT, 'configs', 'demo', 'frame-retriever_chamfer_demo.py'),
}


@pytest.mark.parametrize('kind', list(RETRIEVER_CONFIGS))
def test_index_search_compare_any_retriever(demo, tmp_path, kind):
    """Index, search and compare with HAP-VR and with FrameRetriever
    (cosine of pooled tokens, Chamfer over regions): the index holds what
    the evaluation path (``test_step``) gives, and search and compare
    report ``video_similarity``'s scores."""
    from mmengine.config import Config

    from hapvr_mm.search import (build_search_model, decode_settings,
                                 video_loader)
    config = RETRIEVER_CONFIGS[kind]
    ckpt = demo[1] if kind == 'hapvr' else 'none'
    folder = small_folder(
        demo, f'coll_{kind}', ['q000', 'db0001', 'db0005'], bad=False)
    index = tmp_path / 'idx.h5'
    run([
        sys.executable, 'tools/extract_features.py', config, ckpt, '--videos',
        str(folder), '--out',
        str(index), '--workers', '0', '--batch-size', '1', '--device', 'cpu'
    ])
    ids, _, glob, feats, _ = read_index(index)
    assert ids == ['db0001.mp4', 'db0005.mp4', 'q000.mp4']
    # the evaluation path, in this process
    cfg = Config.fromfile(config)
    model = build_search_model(cfg, ckpt, 'cpu')
    assert glob.shape == (3, model.feature_dims)
    paths = [str(folder / i) for i in ids]
    expected = []
    with torch.no_grad():
        for batch in video_loader(paths, decode_settings(cfg)):
            expected += [s.features for s in model.test_step(batch)]
    for got, want, g in zip(feats, expected, glob):
        # features stored in float16 (the default), descriptors in float32
        assert np.array_equal(got, want.half().float().numpy())
        assert np.allclose(g, model.global_descriptor(want).numpy(), atol=1e-6)
    stored = [e.half().float() for e in expected]
    scores = model.video_similarity(stored[2:], stored, indexed=True)[0]
    res = tmp_path / 'r'
    run([
        sys.executable, 'tools/search.py',
        str(index), 'q000.mp4', '--topk', '3', '--include-self', '--device',
        'cpu', '--out',
        str(res)
    ])
    got = json.loads((tmp_path / 'r.json').read_text())['queries'][0]
    for r in got['results']:
        assert abs(r['score'] - float(scores[ids.index(r['id'])])) < 1e-5
    js = tmp_path / 'pair.json'
    run([
        sys.executable, 'tools/compare_videos.py', 'q000.mp4', 'db0005.mp4',
        '--index',
        str(index), '--device', 'cpu', '--out',
        str(tmp_path / 'p.png'), '--json',
        str(js)
    ])
    pair = json.loads(js.read_text())
    assert abs(pair['score'] - float(scores[1])) < 1e-5
    assert pair['video_frames'] == [len(expected[2]), len(expected[1])]
    assert (pair['comparator_cells'] is None) == (kind != 'hapvr')
    assert (tmp_path / 'p.png').stat().st_size > 1000
