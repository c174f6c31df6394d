"""tools/slurm_train.sh and slurm_test.sh on a real single-node Slurm cluster.

A module fixture starts munged, slurmctld and slurmd from Debian's
``slurm-wlm`` with ``tools/slurm/local_cluster.sh start`` (own state
directory, free ports, partition ``hapvrtest``), and stops them afterwards.
Then ``srun -n2`` must give ranks 0 and 1, ``slurm_train.sh`` must train
the toy config and the HAP-VR demo config with 2 tasks (0 GPUs per node,
gloo) and leave checkpoints and logs, and ``slurm_test.sh`` must evaluate
the demo checkpoint with 2 tasks.

The tests are skipped (with the reason) only when Slurm is not installed
(``bash tools/slurm/local_cluster.sh install`` as root installs it), when
not run as root, or when the cluster cannot start here; with
``HAPVR_REQUIRE_SLURM=1`` (CI) those cases fail instead.
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from launch_utils import (REPO, TOOLS, TOY_CONFIG, free_port, last_checkpoint,
                          read_losses, run, toy_env)

from hapvr_mm.compat import load_checkpoint_file

CLUSTER = osp.join(TOOLS, 'slurm', 'local_cluster.sh')
PARTITION = 'hapvrtest'
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'hapvr_demo.py')
MAKE_DEMO = osp.join(TOOLS, 'data', 'make_demo_dataset.py')


def _unavailable(reason: str):
    if os.environ.get('HAPVR_REQUIRE_SLURM') == '1':
        pytest.fail(f'HAPVR_REQUIRE_SLURM=1 but {reason}')
    pytest.skip(reason)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    """Environment variables of a running local cluster."""
    missing = [
        b for b in ('munged', 'slurmctld', 'slurmd', 'srun', 'sinfo')
        if shutil.which(b) is None
    ]
    if missing:
        _unavailable(f'Slurm is not installed (missing {missing}); run '
                     '`bash tools/slurm/local_cluster.sh install` as root')
    if os.geteuid() != 0:
        _unavailable('a local Slurm cluster needs root (slurmd starts job '
                     'steps as the submitting user) and there is no sudo')
    root = tmp_path_factory.mktemp('slurm')
    env = dict(
        os.environ,
        SLURM_LOCAL_DIR=str(root / 'cluster'),
        SLURM_LOCAL_PARTITION=PARTITION,
        SLURM_LOCAL_CTLD_PORT=str(free_port()),
        SLURM_LOCAL_SLURMD_PORT=str(free_port()),
        SLURM_LOCAL_TIMEOUT='60')
    start = subprocess.run(['bash', CLUSTER, 'start'],
                           env=env,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT,
                           text=True,
                           timeout=120)
    if start.returncode != 0:
        subprocess.run(['bash', CLUSTER, 'stop'], env=env, timeout=60)
        _unavailable('the local Slurm cluster did not start:\n' +
                     start.stdout[-3000:])
    env['SLURM_CONF'] = str(root / 'cluster' / 'slurm.conf')
    yield dict(env=env, root=root, start_out=start.stdout)
    subprocess.run(['bash', CLUSTER, 'clean'], env=env, timeout=60)


def _slurm_env(cluster, loss_log=None, **extra):
    env = toy_env(loss_log, PORT=str(free_port()), **extra)
    for key in ('SLURM_CONF', 'SLURM_LOCAL_DIR'):
        env[key] = cluster['env'][key]
    # srun inside an allocation would join it: start from a clean slate
    for key in list(env):
        if key.startswith('SLURM_') and key not in ('SLURM_CONF',
                                                    'SLURM_LOCAL_DIR'):
            env.pop(key)
    env.update(GPUS='2', GPUS_PER_NODE='0', CPUS_PER_TASK='1')
    return env


def test_cluster_is_up(cluster):
    assert 'local Slurm cluster up' in cluster['start_out']
    env = _slurm_env(cluster)
    res = run(['sinfo', '-h', '-o', '%P %t'], env)
    assert res.stdout.split()[:2] == [PARTITION + '*', 'idle'], res.stdout
    res = run([
        'srun', '-p', PARTITION, '-N1', '-n2', 'sh', '-c',
        'echo rank=$SLURM_PROCID/$SLURM_NTASKS'
    ],
              env,
              timeout=60)
    assert res.returncode == 0, res.stdout
    assert sorted(res.stdout.split()) == ['rank=0/2', 'rank=1/2']


def test_slurm_train_toy_two_tasks(cluster):
    work = str(cluster['root'] / 'toy')
    log = str(cluster['root'] / 'toy_loss')
    res = run([
        'bash',
        osp.join(TOOLS, 'slurm_train.sh'), PARTITION, 'toy', TOY_CONFIG, work
    ],
              _slurm_env(cluster, log),
              timeout=180)
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'launcher: slurm' in res.stdout
    assert last_checkpoint(work) == osp.join(work, 'iter_8.pth')
    ckpt = load_checkpoint_file(osp.join(work, 'iter_8.pth'))
    assert ckpt['meta']['iter'] == 8
    assert len(ckpt['meta']['random_states']) == 2
    r0, r1 = read_losses(log, 0), read_losses(log, 1)
    assert [r[0] for r in r0] == [r[0] for r in r1] == list(range(8))
    assert [r[2] for r in r0] != [r[2] for r in r1]  # own shard each
    logs = glob.glob(osp.join(work, '*', '*.log'))
    assert logs and 'Iter(train) [8/8]' in open(logs[0]).read()


@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    if not (osp.isfile(DEMO_CONFIG) and osp.isfile(MAKE_DEMO)):
        pytest.skip('the demo config or its data tool is not in this tree')
    out = str(tmp_path_factory.mktemp('demo_data'))
    res = run([
        sys.executable, MAKE_DEMO, '--out', out, '--num-train', '4',
        '--num-queries', '2', '--copies-per-query', '1', '--num-distractors',
        '1', '--width', '64', '--height', '48', '--fps', '3', '--min-seconds',
        '9', '--max-seconds', '10', '--quiet'
    ], toy_env())
    assert res.returncode == 0, res.stdout[-3000:]
    return out


def _demo_options(data: str):
    ann = f'{data}/eval/annotation.json'
    videos = data + '/eval/videos/{id}.mp4'
    return [
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.data_root={data}/train',
        'val_dataloader.num_workers=0', 'val_dataloader.batch_size=2',
        f'val_dataloader.dataset.annotation.ann_file={ann}',
        f'val_dataloader.dataset.video_pattern={videos}',
        'test_dataloader.num_workers=0', 'test_dataloader.batch_size=2',
        f'test_dataloader.dataset.annotation.ann_file={ann}',
        f'test_dataloader.dataset.video_pattern={videos}',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ]


@pytest.fixture(scope='module')
def demo_run(cluster, demo_data):
    work = str(cluster['root'] / 'demo')
    res = run([
        'bash',
        osp.join(TOOLS, 'slurm_train.sh'), PARTITION, 'demo', DEMO_CONFIG,
        work, '--no-validate', '--cfg-options', *_demo_options(demo_data)
    ],
              _slurm_env(cluster),
              timeout=300)
    return work, res


def test_slurm_train_demo_two_tasks(demo_run):
    work, res = demo_run
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'Iter(train) [2/2]' in res.stdout
    assert last_checkpoint(work) == osp.join(work, 'iter_2.pth')
    ckpt = load_checkpoint_file(osp.join(work, 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2
    assert len(ckpt['meta']['random_states']) == 2
    assert any(k.startswith('head.') for k in ckpt['state_dict'])
    logs = glob.glob(osp.join(work, '*', '*.log'))
    text = open(logs[0]).read()
    assert 'Iter(train) [2/2]' in text and 'loss_frame_ap' in text


def test_slurm_test_demo_two_tasks(cluster, demo_data, demo_run):
    work, train_res = demo_run
    if train_res.returncode != 0:
        pytest.skip('demo training failed (see the test above)')
    if not osp.isfile(osp.join(TOOLS, 'test.py')):
        pytest.skip('tools/test.py is not in this tree')
    res = run([
        'bash',
        osp.join(TOOLS, 'slurm_test.sh'), PARTITION, 'demo-test', DEMO_CONFIG,
        osp.join(work, 'iter_2.pth'), '--work-dir',
        str(cluster['root'] / 'demo_test'), '--cfg-options',
        *_demo_options(demo_data)
    ],
              _slurm_env(cluster),
              timeout=300)
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'launcher: slurm' in res.stdout
    assert 'mAP' in res.stdout or 'map' in res.stdout.lower()
