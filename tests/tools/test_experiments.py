"""tools/experiments.py and hapvr_mm.apis.experiments: runs, resume, table."""
import csv
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from hapvr_mm.apis.experiments import (EXPERIMENT_SETS, ExperimentError,
                                       ExperimentRow, ExperimentSet,
                                       check_run_settings, format_markdown,
                                       plan_runs, rows_from_configs,
                                       run_commands, run_state, select_metrics,
                                       summarise, write_csv)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'experiments.py')


def _set():
    return ExperimentSet(
        (ExperimentRow('base',
                       'configs/a.py'), ExperimentRow('new', 'configs/b.py'),
         ExperimentRow(
             'none', 'configs/c.py', train=False, weights_from='new')), 'base')


# --------------------------------------------------------------------------
# the sets
# --------------------------------------------------------------------------
def test_named_sets_name_existing_configs():
    for name, exp in EXPERIMENT_SETS.items():
        for row in exp.rows:
            assert osp.isfile(osp.join(ROOT, row.config)), (name, row)


def _losses(path):
    """Which losses a config trains with, and their switches."""
    losses = Config.fromfile(osp.join(ROOT, path)).model.get('losses')
    out = {}
    for key, cfg in (losses or {}).items():
        if cfg is None:
            continue
        cfg = dict(cfg)
        cfg.pop('loss_weight', None)
        out[key] = cfg
    return out


@pytest.mark.parametrize('paper', ['ablation', 'losses'])
def test_every_paper_set_has_a_demo_twin_with_the_same_losses(paper):
    big, demo = EXPERIMENT_SETS[paper], EXPERIMENT_SETS[paper + '-demo']
    assert [r.name for r in big.rows] == [r.name for r in demo.rows]
    assert big.baseline == demo.baseline
    for a, b in zip(big.rows, demo.rows):
        assert a.train == b.train
        if a.train:
            assert _losses(a.config) == _losses(b.config), a.name
    # the rows differ in what they switch on
    trained = [_losses(r.config) for r in demo.rows if r.train]
    assert all(x != y for i, x in enumerate(trained) for y in trained[i + 1:])


def test_fast_ap_row_replaces_the_video_ap_loss():
    losses = _losses('configs/demo/hapvr_demo_fast-ap.py')
    assert losses['loss_video_ap']['type'] == 'FastAPLoss'
    assert 'loss_frame_ap' not in losses


def test_set_validation():
    row = ExperimentRow('a', 'a.py')
    with pytest.raises(ExperimentError, match='baseline'):
        ExperimentSet((row, ), 'b')
    with pytest.raises(ExperimentError, match='duplicate'):
        ExperimentSet((row, row), 'a')
    with pytest.raises(ExperimentError, match='weights_from'):
        ExperimentSet(
            (row, ExperimentRow('c', 'c.py', train=False, weights_from='x')),
            'a')
    with pytest.raises(ExperimentError, match='evaluation-only'):
        ExperimentSet((row, ExperimentRow('c', 'c.py', weights_from='a')), 'a')
    exp = rows_from_configs(['x/A.py', 'y/B.py'], 'y/B.py')
    assert [r.name for r in exp.rows] == ['A', 'B'] and exp.baseline == 'B'


# --------------------------------------------------------------------------
# runs and commands
# --------------------------------------------------------------------------
def test_plan_shares_work_dirs_and_orders_dependencies(tmp_path):
    runs = plan_runs(_set(), [3, 5], str(tmp_path))
    assert [(r.row.name, r.seed) for r in runs] == [('base', 3), ('base', 5),
                                                    ('new', 3), ('new', 5),
                                                    ('none', 3), ('none', 5)]
    assert runs[0].work_dir == str(tmp_path / 'a' / 'seed3')
    assert runs[4].depends_on is runs[2]
    assert runs[4].work_dir == str(tmp_path / 'c@b' / 'seed3')
    # the same config in another set: the same run
    other = ExperimentSet((ExperimentRow('other name', 'configs/b.py'), ),
                          'other name')
    assert plan_runs(other, [5], str(tmp_path))[0].work_dir == \
        runs[3].work_dir
    with pytest.raises(ExperimentError, match='distinct'):
        plan_runs(_set(), [1, 1], str(tmp_path))


def test_commands_of_each_launcher(tmp_path):
    run = plan_runs(_set(), [7], str(tmp_path))[1]
    w = run.work_dir
    local = run_commands(
        run,
        'local',
        python='PY',
        train_options=['a=1'],
        test_options=['b=2'],
        resume=True,
        checkpoint='C')
    assert local['train'] == [
        'PY', 'tools/train.py', 'configs/b.py', '--work-dir', w, '--seed', '7',
        '--no-validate', '--resume', '--cfg-options', 'a=1'
    ]
    assert local['test'] == [
        'PY', 'tools/test.py', 'configs/b.py', 'C', '--work-dir',
        osp.join(w, 'test'), '--save-similarities', '--out-metrics',
        osp.join(w, 'metrics.json'), '--cfg-options', 'b=2'
    ]
    dist = run_commands(run, 'pytorch', gpus=8)
    assert dist['train'][:4] == [
        'bash', 'tools/dist_train.sh', 'configs/b.py', '8'
    ]
    assert dist['test'][:5] == [
        'bash', 'tools/dist_test.sh', 'configs/b.py', 'none', '8'
    ]
    slurm = run_commands(run, 'slurm', partition='gpu')
    assert slurm['train'][:5] == [
        'bash', 'tools/slurm_train.sh', 'gpu', 'hapvr-b-s7', 'configs/b.py'
    ]
    assert slurm['test'][:6] == [
        'bash', 'tools/slurm_test.sh', 'gpu', 'hapvr-b-s7-test',
        'configs/b.py', 'none'
    ]
    with pytest.raises(ExperimentError, match='partition'):
        run_commands(run, 'slurm')
    evaluation_only = plan_runs(_set(), [7], str(tmp_path))[2]
    assert set(run_commands(evaluation_only)) == {'test'}


def test_state_and_settings(tmp_path):
    run = plan_runs(_set(), [0], str(tmp_path))[0]
    assert run_state(run) == 'new'
    check_run_settings(run, dict(config='a', seed=0))
    check_run_settings(run, dict(config='a', seed=0))  # same: accepted
    with pytest.raises(ExperimentError, match='seed differ'):
        check_run_settings(run, dict(config='a', seed=1))
    ckpt = osp.join(run.work_dir, 'iter_4.pth')
    open(ckpt, 'w').close()
    with open(osp.join(run.work_dir, 'last_checkpoint'), 'w') as f:
        f.write(ckpt)
    assert run_state(run) == 'partial'
    open(osp.join(run.work_dir, 'train_done.json'), 'w').close()
    assert run_state(run) == 'trained'
    open(osp.join(run.work_dir, 'metrics.json'), 'w').close()
    assert run_state(run) == 'done'


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------
def test_summary_mean_std_and_difference(tmp_path):
    results = {
        'base': {
            0: {
                'd/mAP': 0.5,
                'd/uAP': 0.2,
                'n': 3
            },
            1: {
                'd/mAP': 0.7,
                'd/uAP': 0.4
            }
        },
        'new': {
            0: {
                'd/mAP': 0.8,
                'd/uAP': 0.5
            },
            1: {
                'd/mAP': 0.9,
                'd/uAP': 0.6
            },
            2: {
                'd/mAP': 1.0,
                'd/uAP': 0.7
            }
        },
    }
    metrics = select_metrics(results)
    assert metrics == ['d/mAP', 'd/uAP']
    assert select_metrics(results, ['uAP']) == ['d/uAP']
    with pytest.raises(ExperimentError, match='none of the metrics'):
        select_metrics(results, ['R@1'])
    table = summarise(_set(), results, metrics)
    base, new, none = table
    assert base['seeds'] == [0, 1] and new['seeds'] == [0, 1, 2]
    mean, std, diff = new['d/mAP']
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert diff == pytest.approx(0.9 - 0.6)
    assert base['d/mAP'][2] == 0
    assert base['d/uAP'][1] == pytest.approx(math.sqrt(0.02))
    assert all(math.isnan(v) for v in none['d/mAP'])
    text = format_markdown(table, metrics, 'base', 'title')
    lines = text.splitlines()
    assert lines[0] == 'title'
    assert lines[2] == '| row | seeds | d/mAP | Δ d/mAP | d/uAP | Δ d/uAP |'
    assert lines[4] == '| base (baseline) | 2 | 0.600 ± 0.141 | +0.000 | ' \
        '0.300 ± 0.141 | +0.000 |'
    assert lines[5] == '| new | 3 | 0.900 ± 0.100 | +0.300 | 0.600 ± 0.100 ' \
        '| +0.300 |'
    assert lines[6] == '| none | 0 | – | – | – | – |'
    path = str(tmp_path / 't.csv')
    write_csv(path, table, metrics)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert rows[1]['row'] == 'new' and rows[1]['seeds'] == '0 1 2'
    assert float(rows[1]['d/mAP mean']) == pytest.approx(0.9)
    assert float(rows[1]['d/mAP diff']) == pytest.approx(0.3)
    assert rows[2]['d/mAP mean'] == ''


# --------------------------------------------------------------------------
# end to end: 2 tiny configs x 2 seeds x 2 iterations
# --------------------------------------------------------------------------
def _tool(*args, timeout=1200):
    return subprocess.run([sys.executable, TOOL, *args],
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          cwd=ROOT)


def test_runner_end_to_end_resumes_and_tabulates(tmp_path):
    data, work = tmp_path / 'demo', tmp_path / 'exp'
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(data), '--num-train', '8', '--num-queries', '2',
        '--num-distractors', '2', '--corrupt', '0'
    ],
                   check=True,
                   capture_output=True,
                   timeout=600)
    configs = [
        'configs/demo/hapvr_demo_pairwise.py',
        'configs/demo/hapvr_demo_video-ap.py'
    ]
    common = [
        *configs, '--seeds', '0', '1', '--iters', '2', '--max-parallel', '2',
        '--data',
        str(data), '--work-dir',
        str(work), '--out',
        str(tmp_path / 'table'), '--cfg-options',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', '--test-cfg-options',
        'test_dataloader.num_workers=0'
    ]
    res = _tool(*common)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for name in ('hapvr_demo_pairwise', 'hapvr_demo_video-ap'):
        for seed in (0, 1):
            w = work / name / f'seed{seed}'
            metrics = json.loads((w / 'metrics.json').read_text())
            assert 0 <= metrics['demo/mAP'] <= 1
            assert (w / 'iter_2.pth').is_file()
            assert (w / 'test' / 'similarities.npz').is_file()
            settings = json.loads((w / 'run.json').read_text())
            assert settings['seed'] == seed
    md = (tmp_path / 'table.md').read_text()
    assert '| hapvr_demo_pairwise (baseline) | 2 |' in md
    assert '| hapvr_demo_video-ap | 2 |' in md and 'demo/uAP' in md
    assert md in res.stdout
    with open(tmp_path / 'table.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['row']
            for r in rows] == ['hapvr_demo_pairwise', 'hapvr_demo_video-ap']
    # the two seeds are two different runs
    a = json.loads(
        (work / 'hapvr_demo_video-ap' / 'seed0' / 'metrics.json').read_text())
    b = json.loads(
        (work / 'hapvr_demo_video-ap' / 'seed1' / 'metrics.json').read_text())
    mean = (a['demo/mAP'] + b['demo/mAP']) / 2
    assert float(rows[1]['demo/mAP mean']) == pytest.approx(mean, abs=1e-6)

    # an interrupted run: training finished its checkpoint but the stage
    # was not recorded, and the evaluation never ran
    w = work / 'hapvr_demo_pairwise' / 'seed1'
    os.remove(w / 'metrics.json')
    os.remove(w / 'train_done.json')
    stamp = (w / 'iter_2.pth').stat().st_mtime_ns
    res = _tool(*common)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count('done, skipped') == 3
    assert 'hapvr_demo_pairwise / seed 1: train ...' in res.stdout
    assert '--resume' in (w / 'train.out').read_text().splitlines()[0]
    assert (w / 'metrics.json').is_file()
    assert (w / 'iter_2.pth').stat().st_mtime_ns == stamp  # nothing redone

    # other settings in the same work dir are refused, not mixed in
    res = _tool(*common[:-4], 'train_dataloader.batch_size=2',
                '--test-cfg-options', 'test_dataloader.num_workers=0')
    assert res.returncode == 1
    assert 'with other settings (train_options differ)' in res.stdout
