"""A small demo benchmark shared by the mixing examples' tests."""
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory) -> str:
    """Demo videos: 6 training, 2 queries with 2 copies, 2 distractors."""
    out = tmp_path_factory.mktemp('mixing_demo')
    subprocess.run([
        sys.executable,
        osp.join(TOOLS, 'data', 'make_demo_dataset.py'), '--out',
        str(out), '--num-train', '6', '--num-queries', '2',
        '--copies-per-query', '2', '--num-distractors', '2', '--corrupt', '0',
        '--quiet'
    ],
                   check=True,
                   capture_output=True,
                   timeout=300)
    return str(out)


def data_options(data: str, train: bool = True) -> list:
    """``--cfg-options`` pointing a demo-based config at ``data``."""
    ann = osp.join(data, 'eval', 'annotation.json')
    pattern = osp.join(data, 'eval', 'videos', '{id}.mp4')
    opts = []
    if train:
        opts += [
            f'train_dataloader.dataset.data_root={osp.join(data, "train")}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False'
        ]
    for split in ('val', 'test'):
        opts += [
            f'{split}_dataloader.dataset.annotation.ann_file={ann}',
            f'{split}_dataloader.dataset.video_pattern={pattern}',
            f'{split}_dataloader.num_workers=0'
        ]
    return opts


def run(cmd: list, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command from the repository root, output captured as text."""
    env = dict(__import__('os').environ, OMP_NUM_THREADS='2')
    return subprocess.run(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
