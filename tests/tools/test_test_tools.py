"""End-to-end tests of tools/test.py, tools/dist_test.sh,
tools/eval_similarities.py and tools/extract_features.py (subprocesses)."""
import json
import os
import os.path as osp
import pickle
import runpy
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
write_mp4 = runpy.run_path(
    osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'))['write_mp4']
D = 8
MALLOC_LINE = 'glibc malloc thresholds raised'


def load_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_same_npz(a, b):
    a, b = load_npz(a), load_npz(b)
    assert set(a) == set(b) == {'query_ids', 'target_ids', 'scores'}
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


IMPORTS = ("custom_imports = dict(imports=['hapvr_mm', "
           "'hapvr_mm.datasets.retrieval_dataset', "
           "'hapvr_mm.datasets.transforms.retrieval', "
           "'hapvr_mm.engine.runner.retrieval_loop', "
           "'hapvr_mm.evaluation.metrics.retrieval_ap'], "
           'allow_failed_imports=False)\n')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(cmd, **env):
    full = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable, **env)
    proc = subprocess.run(
        cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def table(stdout):
    lines = stdout.splitlines()
    start = lines.index('Retrieval metrics')
    return '\n'.join(lines[start:start + 20]).split('\n\n')[0]


def table_rows(stdout):
    """The ``metric -> value`` rows of the printed metrics table."""
    rows = {}
    for line in table(stdout).splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if line.startswith('|') and len(cells) == 2 and cells[0] != 'metric':
            rows[cells[0]] = cells[1]
    return rows


@pytest.fixture
def fivr_setup(tmp_path):
    """FIVR-format annotation, 11 database ids (1 missing, 1 corrupt)."""
    rng = np.random.default_rng(0)
    queries = ['qa', 'qb', 'qc']
    database = [f'v{i}' for i in range(9)] + ['missing', 'corrupt']
    with h5py.File(tmp_path / 'feats.h5', 'w') as f:
        for i, vid in enumerate(queries + database[:9]):
            arr = rng.standard_normal((int(rng.integers(2, 7)), 2, D))
            f.create_dataset(
                vid, data=arr.astype(np.float16 if i % 2 else np.float32))
        f.create_dataset('corrupt', data=np.array(b'xx'))
    annotation = {
        'qa': {
            'ND': ['v0', 'missing'],
            'CS': ['v1'],
            'IS': ['v2']
        },
        'qb': {
            'DS': ['v3'],
            'IS': ['v4', 'corrupt']
        },
        'qc': {
            'ND': ['v5'],
            'CS': ['v6', 'v7']
        }
    }
    with open(tmp_path / 'fivr.pk', 'wb') as f:
        pickle.dump(
            {
                'annotation': annotation,
                '5k': {
                    'queries': queries,
                    'database': database
                },
                '200k': {
                    'queries': [],
                    'database': []
                }
            }, f)
    ann = dict(type='FIVR', ann_file=str(tmp_path / 'fivr.pk'))
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        "default_scope = 'mmaction'\n" + IMPORTS +
        f"model = dict(type='HAPVR', head=dict(type='SimilarityHead', "
        f"dims={D}), pseudo_labeler=None)\n"
        f'ann = {ann!r}\n'
        "test_dataloader = dict(batch_size=2, num_workers=0, dataset=dict("
        f"type='RetrievalDataset', annotation=ann, "
        f"feature_file={str(tmp_path / 'feats.h5')!r}))\n"
        "test_evaluator = dict(type='RetrievalAPMetric', annotation=ann)\n"
        # the 2 known-bad ids are allowed (max_skipped, default limit 0)
        "test_cfg = dict(type='VideoRetrievalTestLoop', query_batch_size=2,"
        " target_batch_size=2, log_interval=1, max_skipped=2)\n"
        "env_cfg = dict(dist_cfg=dict(backend='gloo'))\n"
        'randomness = dict(seed=0)\n')
    from mmaction.registry import MODELS

    import hapvr_mm  # noqa: F401
    torch.manual_seed(1)
    model = MODELS.build(
        dict(
            type='HAPVR',
            head=dict(type='SimilarityHead', dims=D),
            pseudo_labeler=None))
    torch.save({
        'state_dict': model.state_dict(),
        'meta': {}
    }, tmp_path / 'model.pth')
    return tmp_path, cfg


FIVR_METRICS = [
    f'FIVR-5K/{t}' for t in ('DSVR', 'CSVR', 'ISVR', 'DSVD', 'CSVD', 'ISVD')
]


def test_test_py_dist_test_and_eval_similarities(fivr_setup):
    """tools/test.py (1 process) prints every metric; tools/dist_test.sh
    with 2 and 3 CPU processes gives identical metrics and identical saved
    similarities (11 database ids in blocks of 2: not divisible by 2 or 3);
    tools/eval_similarities.py prints the same table from the file."""
    root, cfg = fivr_setup
    ckpt = str(root / 'model.pth')
    # one OpenMP thread, as torchrun gives each process (bit-exact scores)
    dump = root / 'preds.pkl'
    out = run([
        sys.executable, 'tools/test.py',
        str(cfg), ckpt, '--work-dir',
        str(root / 'd1'), '--save-similarities', '--dump',
        str(dump), '--tune-malloc'
    ],
              OMP_NUM_THREADS='1')
    tables = [table(out)]
    for name in FIVR_METRICS + ['skipped_videos']:
        assert name in tables[0], tables[0]
    skipped = [ln for ln in tables[0].splitlines() if 'skipped_videos' in ln]
    assert skipped[0].split('|')[2].strip() == '2', tables[0]
    if sys.platform.startswith('linux') and os.confstr(
            'CS_GNU_LIBC_VERSION').startswith('glibc'):
        assert MALLOC_LINE in out  # --tune-malloc reached the loop
    sims = root / 'd1' / 'similarities.npz'
    data = load_npz(sims)
    assert list(data['query_ids']) == ['qa', 'qb', 'qc']
    assert list(data['target_ids']) == [f'v{i}' for i in range(9)]
    assert data['scores'].dtype == np.float32
    assert data['scores'].shape == (3, 9)
    # --dump: the per-query predictions handed to the evaluator
    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert [p['query_id'] for p in preds] == ['qa', 'qb', 'qc']
    for i, p in enumerate(preds):
        assert list(p['target_ids']) == list(data['target_ids'])
        np.testing.assert_array_equal(p['scores'], data['scores'][i])
    for n in (2, 3):
        out = run([
            'bash', 'tools/dist_test.sh',
            str(cfg), ckpt,
            str(n), '--work-dir',
            str(root / f'd{n}'), '--save-similarities'
        ],
                  PORT=str(free_port()))
        tables.append(table(out))
        assert MALLOC_LINE not in out  # allocator tuning is opt-in
        assert_same_npz(root / f'd{n}' / 'similarities.npz', sims)
    assert tables[0] == tables[1] == tables[2]
    # the compact file and its dict-of-dicts JSON give the same table
    from hapvr_mm.engine.runner import load_similarities, write_similarities
    as_json = write_similarities(
        load_similarities(str(sims)), str(root / 'sims.json'))
    for path in (sims, as_json):
        out = run([
            sys.executable, 'tools/eval_similarities.py',
            str(cfg),
            str(path)
        ])
        # the same metrics; the run's bookkeeping of skipped videos
        # (skipped_queries, ...) is only known to the evaluation run
        rows, run_rows = table_rows(out), table_rows(tables[0])
        assert rows and all(run_rows[k] == v for k, v in rows.items())
        assert {k for k in rows if 'AP' in k} == \
            {k for k in run_rows if 'AP' in k}


def test_raw_video_test_and_extract_features(tmp_path):
    rng = np.random.default_rng(0)
    for vid in ['qa', 'v0', 'v1', 'v2']:
        write_mp4(
            str(tmp_path / f'{vid}.mp4'),
            rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8),
            fps=1)
    (tmp_path / 'bad.mp4').write_bytes(b'\x00garbage' * 50)
    ann_file = tmp_path / 'ann.json'
    ann_file.write_text(
        json.dumps(
            dict(
                queries=['qa'],
                database=['v0', 'v1', 'v2', 'bad', 'gone'],
                relevance={'qa': ['v1']})))
    ann = dict(type='JSON', ann_file=str(ann_file))
    dims = 64 + 128 + 256 + 512
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        "default_scope = 'mmaction'\n" + IMPORTS +
        "model = dict(type='HAPVR', backbone=dict(type='ResNet', depth=18, "
        "pretrained=None, out_indices=(0, 1, 2, 3)), "
        "neck=dict(type='RegionPoolingNeck', grid=1), head=dict("
        f"type='SimilarityHead', dims={dims}), pseudo_labeler=None)\n"
        f'ann = {ann!r}\n'
        "test_dataloader = dict(batch_size=1, num_workers=0, dataset=dict("
        "type='RetrievalDataset', annotation=ann, "
        f"video_pattern={str(tmp_path / '{id}.mp4')!r}, pipeline=["
        "dict(type='DecodeRetrievalVideo', short_side=36, crop=32), "
        "dict(type='PackRetrievalInputs')]))\n"
        "test_evaluator = dict(type='RetrievalAPMetric', annotation=ann)\n"
        "test_cfg = dict(type='VideoRetrievalTestLoop', "
        'target_batch_size=2, max_skipped=2)\n'
        'randomness = dict(seed=0)\n')
    out = run([
        sys.executable, 'tools/test.py',
        str(cfg), 'none', '--work-dir',
        str(tmp_path / 'w')
    ])
    tab = table(out)
    assert 'JSON/mAP' in tab and 'JSON/uAP' in tab
    skipped = [ln for ln in tab.splitlines() if 'skipped_videos' in ln]
    assert skipped and skipped[0].split('|')[2].strip() == '2', tab

    h5 = tmp_path / 'out.h5'
    args = [
        sys.executable, 'tools/extract_features.py',
        str(cfg), '--out',
        str(h5), '--short-side', '36', '--crop', '32', '--workers', '0',
        '--fp16'
    ]
    out = run(args)
    assert '4 written, 2 skipped' in out, out
    with h5py.File(h5, 'r') as f:
        assert sorted(f) == ['qa', 'v0', 'v1', 'v2']
        assert f['qa'].dtype == np.float16
        assert f['qa'].shape[0] == 3 and f['qa'].shape[2] == dims
    out = run(args)  # resumable: nothing new, only the bad ones retried
    assert '4 already in' in out and '0 written, 2 skipped' in out, out


def test_dist_test_on_demo_data_1_2_3_processes(tmp_path):
    """The demo config on (small) demo videos: tools/test.py and
    tools/dist_test.sh with 2 and 3 processes give identical metrics and
    byte-identical similarities (7 database videos: not divisible by 2 or
    3)."""
    data = tmp_path / 'demo'
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(data), '--num-train', '1', '--num-queries', '2',
        '--copies-per-query', '2', '--num-distractors', '3', '--corrupt', '0',
        '--quiet'
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    ann = json.loads((data / 'eval' / 'annotation.json').read_text())
    assert len(ann['database']) == 7
    from mmaction.registry import MODELS
    from mmengine.config import Config
    config = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')
    torch.manual_seed(3)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    ckpt = str(tmp_path / 'demo.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    ann_file = str(data / 'eval' / 'annotation.json')
    options = [
        '--cfg-options', 'test_dataloader.num_workers=0',
        'test_dataloader.batch_size=2',
        f'test_dataloader.dataset.annotation.ann_file={ann_file}',
        'test_dataloader.dataset.video_pattern=' +
        str(data / 'eval' / 'videos' / '{id}.mp4'),
        'test_cfg.target_batch_size=2', 'test_cfg.query_batch_size=1'
    ]
    out = run([
        sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
        str(tmp_path / 'p1'), '--save-similarities', *options
    ],
              OMP_NUM_THREADS='1')
    tables = [table(out)]
    assert 'demo/mAP' in tables[0] and 'demo/uAP' in tables[0]
    sims = tmp_path / 'p1' / 'similarities.npz'
    assert load_npz(sims)['query_ids'].size == 2
    for n in (2, 3):
        out = run([
            'bash', 'tools/dist_test.sh', config, ckpt,
            str(n), '--work-dir',
            str(tmp_path / f'p{n}'), '--save-similarities', *options
        ],
                  PORT=str(free_port()))
        tables.append(table(out))
        assert_same_npz(tmp_path / f'p{n}' / 'similarities.npz', sims)
    assert tables[0] == tables[1] == tables[2], tables


def test_test_py_stops_on_too_many_skipped_videos(fivr_setup):
    """Above the skip limit tools/test.py prints one 'error:' line naming
    the count and the ids and exits 2; below it the table counts them."""
    root, cfg = fivr_setup
    ckpt = str(root / 'model.pth')
    cmd = [
        sys.executable, 'tools/test.py',
        str(cfg), ckpt, '--work-dir',
        str(root / 'strict'), '--cfg-options', 'test_cfg.max_skipped=1'
    ]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: 2 of the 14 benchmark videos'), last
    assert "'missing'" in last and "'corrupt'" in last
    tab = table(run(cmd[:-2] + ['--cfg-options', 'test_cfg.max_skipped=2']))
    rows = {
        ln.split('|')[1].strip(): ln.split('|')[2].strip()
        for ln in tab.splitlines() if ln.startswith('| ')
    }
    assert (rows['skipped_videos'], rows['skipped_queries'],
            rows['skipped_database'], rows['lost_relevant']) == ('2', '0', '2',
                                                                 '2')
