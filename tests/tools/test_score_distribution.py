"""tools/analysis/score_distribution.py end to end on demo similarities."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis', 'score_distribution.py')
CONFIG = osp.join(ROOT, 'configs', 'demo', 'hapvr_demo.py')
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))

import score_distribution

from hapvr_mm.engine.runner import load_score_matrix, write_score_matrix
from hapvr_mm.evaluation.annotations import ScoreMatrix
from hapvr_mm.evaluation.functional import separation_summary


def run(cmd, **env):
    res = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, OMP_NUM_THREADS='1', **env))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def ann_options(ann_file):
    return [f'test_dataloader.dataset.annotation.ann_file={ann_file}']


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A tiny demo benchmark and the untrained model's similarities."""
    root = tmp_path_factory.mktemp('score_dist')
    data = root / 'demo'
    run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(data), '--num-train', '1', '--num-queries', '2',
        '--copies-per-query', '2', '--num-distractors', '3', '--corrupt', '0',
        '--quiet'
    ])
    ann_file = str(data / 'eval' / 'annotation.json')
    run([
        sys.executable, 'tools/test.py', CONFIG, 'none', '--work-dir',
        str(root / 'untrained'), '--save-similarities', '--cfg-options',
        'test_dataloader.num_workers=0', 'test_dataloader.batch_size=2',
        f'test_dataloader.dataset.annotation.ann_file={ann_file}',
        'test_dataloader.dataset.video_pattern=' +
        str(data / 'eval' / 'videos' / '{id}.mp4'), *ann_options(ann_file)
    ])
    sims = root / 'untrained' / 'similarities.npz'
    assert sims.is_file()
    return root, ann_file, str(sims)


def boosted_copy(sims, ann_file, out):
    """The same scores with the annotated copies raised by 0.05 (a
    stand-in for a model that separates them better)."""
    matrix = load_score_matrix(sims)
    with open(ann_file, encoding='utf-8') as f:
        relevance = json.load(f)['relevance']
    scores = matrix.scores.copy()
    column = {t: j for j, t in enumerate(matrix.target_ids.tolist())}
    for i, query in enumerate(matrix.query_ids.tolist()):
        for target in relevance.get(query, []):
            scores[i, column[target]] += 0.05
    os.makedirs(osp.dirname(out), exist_ok=True)
    write_score_matrix(
        ScoreMatrix(matrix.query_ids, matrix.target_ids, scores), out)
    return out


def test_one_file_png_and_table(demo):
    root, ann_file, sims = demo
    png = str(root / 'one.png')
    out = run([
        sys.executable, TOOL, CONFIG, sims, '--out', png, '--bins', '12',
        '--title', 'untrained demo', '--cfg-options', *ann_options(ann_file)
    ])
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    lines = out.splitlines()
    assert lines[0].startswith('demo: relevant vs irrelevant pairs, 12 bins')
    assert 'margin' in lines[1] and 'overlap' in lines[1]
    # default label: the work dir; 2 queries x (2 copies + 3 distractors
    # + the other query's 2 copies) = 4 relevant, 10 irrelevant pairs
    row = lines[2].split()
    assert row[0] == 'untrained' and row[1:3] == ['4', '10']
    assert f'wrote {png}' in out


def test_two_files_compared_with_json(demo):
    root, ann_file, sims = demo
    trained = boosted_copy(sims, ann_file, str(root / 'boost' / 'sims.npz'))
    png, report = str(root / 'two.png'), str(root / 'two.json')
    out = run([
        sys.executable, TOOL, CONFIG, sims, '--compare', trained, '--labels',
        'untrained', 'trained', '--out', png, '--json', report,
        '--cfg-options', *ann_options(ann_file)
    ])
    assert osp.getsize(png) > 1000
    rows = [line.split() for line in out.splitlines()[2:4]]
    assert [r[0] for r in rows] == ['untrained', 'trained']
    with open(report, encoding='utf-8') as f:
        data = json.load(f)
    assert data['annotation'] == 'demo'
    assert sorted(data['bins']) == ['trained', 'untrained']
    # each model its own bins over its own scores
    low, high, bins = data['bins']['untrained']
    assert bins == 40 and low < high
    assert data['bins']['trained'][:2] != [low, high]
    before, after = data['models']['untrained'], data['models']['trained']
    assert data['files'] == {'untrained': sims, 'trained': trained}
    assert after['margin'] == pytest.approx(before['margin'] + 0.05, abs=1e-5)
    assert after['auc'] >= before['auc']
    assert after['num_relevant'] == before['num_relevant'] == 4
    # the printed margins are the JSON ones
    assert float(rows[0][7]) == pytest.approx(before['margin'], abs=1e-4)
    # a fixed range applies to both models
    out = run([
        sys.executable, TOOL, CONFIG, sims, '--compare', trained, '--out', png,
        '--json', report, '--range', '-1', '1', '--bins', '20',
        '--cfg-options', *ann_options(ann_file)
    ])
    assert '20 bins over [-1, 1]' in out
    with open(report, encoding='utf-8') as f:
        fixed = json.load(f)
    # default labels: the folders of the files
    assert fixed['bins'] == {
        'untrained': [-1.0, 1.0, 20],
        'boost': [-1.0, 1.0, 20]
    }
    # the table is the library's summary on the same shared bins
    edges = np.linspace(low, high, bins + 1)
    matrix = load_score_matrix(sims)
    with open(ann_file, encoding='utf-8') as f:
        ann = json.load(f)
    rel, irr = [], []
    for i, q in enumerate(matrix.query_ids.tolist()):
        for j, t in enumerate(matrix.target_ids.tolist()):
            if t != q and t in ann['database']:
                (rel if t in ann['relevance'].get(q, []) else irr).append(
                    float(matrix.scores[i, j]))
    want = separation_summary(rel, irr, edges)
    for key, value in want.items():
        assert before[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_clear_errors(demo, tmp_path):
    root, ann_file, sims = demo
    options = ['--cfg-options', *ann_options(ann_file)]
    # ids of another benchmark
    other = str(tmp_path / 'other.npz')
    write_score_matrix(
        ScoreMatrix(['v1', 'v2'], ['t1', 't2'], np.zeros((2, 2))), other)
    with pytest.raises(ValueError, match=r"other\.npz.*'v1'"):
        score_distribution.main(
            [CONFIG, other, '--out',
             str(tmp_path / 'x.png'), *options])
    # an annotation without any relevant pair
    with open(ann_file, encoding='utf-8') as f:
        ann = json.load(f)
    ann['relevance'] = {}
    empty = tmp_path / 'no_relevance.json'
    empty.write_text(json.dumps(ann))
    with pytest.raises(ValueError, match='no relevant pair'):
        score_distribution.main([
            CONFIG, sims, '--out',
            str(tmp_path / 'x.png'), '--cfg-options', *ann_options(str(empty))
        ])
    # a task of another benchmark
    with pytest.raises(ValueError, match='--task'):
        score_distribution.main([CONFIG, sims, '--task', 'DSVR', *options])
    with pytest.raises(SystemExit):
        score_distribution.main(
            [CONFIG, sims, '--compare', sims, '--labels', 'one'])
    assert not osp.exists(tmp_path / 'x.png')
