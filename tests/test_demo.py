"""A shortened quick-start demo: training must clearly beat no training."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools'))

from run_demo import read_evaluations


def test_short_demo_training_improves_retrieval(tmp_path):
    data, work = tmp_path / 'demo', tmp_path / 'work'
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'), '--out',
        str(data), '--num-train', '16', '--num-queries', '4',
        '--num-distractors', '8', '--corrupt', '1'
    ],
                   check=True,
                   capture_output=True,
                   timeout=600)
    res = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'run_demo.py'), '--data',
        str(data), '--work-dir',
        str(work), '--max-iters', '12', '--cfg-options',
        'train_dataloader.batch_size=4'
    ],
                         capture_output=True,
                         text=True,
                         timeout=1200,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr[-4000:]
    assert 'untrained' in res.stdout and 'demo/mAP' in res.stdout
    evals = read_evaluations(str(work))
    assert len(evals) == 2
    (s0, before), (s1, after) = evals
    assert (s0, s1) == (0, 12)
    assert after['demo/mAP'] >= before['demo/mAP'] + 0.05, (before, after)
    # the corrupt training file was skipped, counted and reported
    log = res.stdout + res.stderr
    assert 'corrupt_000' in log
    assert '1 unreadable video(s) were skipped' in log
    assert osp.isfile(work / 'iter_12.pth')


def test_demo_command_without_overrides_parses():
    """The quick start passes no override: no bare ``--cfg-options``."""
    from run_demo import train_command
    cmd = train_command(sys.executable, '/tmp/w', 0, [])
    assert '--cfg-options' not in cmd
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import train
    args = train.parse_args(cmd[2:])
    assert args.cfg_options is None and args.seed == 0
    cmd = train_command(sys.executable, '/tmp/w', 0, ['a=1'])
    assert cmd[-2:] == ['--cfg-options', 'a=1']
    assert train.parse_args(cmd[2:]).cfg_options == {'a': 1}
