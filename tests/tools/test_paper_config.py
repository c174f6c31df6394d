"""The paper recipe (configs/hapvr_fivr.py) trains on the demo data.

ResNet-50 + PCA-512 student, ViT-S/16 teacher, W=28 at 224 pixels, as the
config says; only the batch (2 source videos), the data paths, the workers
and the length are overridden on the command line, and no weight file is
given, so the run must say loudly that the weights are random. The run is
SIGKILLed after its second checkpoint and ``--resume`` continues from that
checkpoint's iteration.
"""
import os.path as osp
import signal
import subprocess
import sys
import time

import launch_utils as lu
import pytest

from hapvr_mm.compat import load_checkpoint_file

CONFIG = osp.join(lu.REPO, 'configs', 'hapvr_fivr.py')
MAKE_DEMO = osp.join(lu.TOOLS, 'data', 'make_demo_dataset.py')


def paper_options(train_root: str, max_iters: int):
    """``--cfg-options`` that point the paper config at the demo data."""
    return [
        '--no-validate', '--cfg-options', 'model.backbone.init_cfg=None',
        'model.neck.whitening.pca_file=None',
        'custom_hooks.0.teacher.init_cfg=None',
        f'train_dataloader.dataset.data_root={train_root}',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        f'train_cfg.max_iters={max_iters}',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1'
    ]


@pytest.fixture(scope='module')
def demo_train(tmp_path_factory):
    out = tmp_path_factory.mktemp('paper_demo')
    subprocess.run([
        sys.executable, MAKE_DEMO, '--out',
        str(out), '--num-train', '4', '--num-queries', '1',
        '--num-distractors', '1', '--corrupt', '0', '--quiet'
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    return str(out / 'train')


def test_paper_config_trains_on_demo_data_and_resumes(demo_train, tmp_path):
    work = str(tmp_path / 'work')
    env = lu.toy_env(OMP_NUM_THREADS='2')
    cmd = lu.train_cmd(work, *paper_options(demo_train, 6), config=CONFIG)
    log_path = tmp_path / 'first.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            cmd, cwd=lu.REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        ckpt2 = osp.join(work, 'iter_2.pth')
        deadline = time.time() + 600
        while not osp.isfile(ckpt2) and proc.poll() is None:
            assert time.time() < deadline, 'no iter_2.pth after 600 s'
            time.sleep(0.2)
        # the checkpoint file appears atomically: it is complete when seen
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    first = log_path.read_text()
    assert osp.isfile(ckpt2), first[-4000:]
    assert not osp.isfile(osp.join(work, 'iter_6.pth')), 'was not killed'
    # paper model, random weights announced loudly
    assert 'WARNING: ResNet has no pretrained checkpoint' in first
    assert 'PCAWhitening has no PCA file' in first
    assert 'teacher' in first.lower() and 'init_cfg is None' in first

    ckpt = load_checkpoint_file(ckpt2)
    state = ckpt['state_dict']
    assert state['head.attention.proj.weight'].shape == (512, 512)
    # ResNet-50 (bottleneck blocks, 2048-d last stage) + PCA 3840 -> 512
    assert state['backbone.layer4.2.conv3.conv.weight'].shape[0] == 2048
    assert state['neck.whitening.eigenvectors'].shape == (3840, 512)
    assert not any('teacher' in k for k in state), 'teacher was saved'
    killed_at = ckpt['meta']['iter']
    assert killed_at >= 2

    res = lu.run(
        lu.train_cmd(
            work,
            '--resume',
            *paper_options(demo_train, killed_at + 1),
            config=CONFIG),
        env,
        timeout=600)
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'resumed' in res.stdout.lower()
    assert f'Iter(train) [{killed_at + 1}/{killed_at + 1}]' in res.stdout
    for key in ('loss_nce', 'loss_video_ap', 'loss_frame_ap', 'loss_reg'):
        assert key in res.stdout
    assert osp.isfile(osp.join(work, f'iter_{killed_at + 1}.pth'))
