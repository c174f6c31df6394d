"""gather_features: 2 processes x B reproduce 1 process x 2B (gloo, CPU)."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WORKER = osp.join(ROOT, 'tests', 'fixtures', 'gather_parity.py')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run(nproc: int, out: str) -> list:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    cmd = [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
        f'--master_port={free_port()}', WORKER, out
    ]
    res = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    with open(out) as f:
        return json.load(f)


def test_two_ranks_with_gather_equal_one_rank_with_double_batch(tmp_path):
    one = run(1, str(tmp_path / 'one.json'))
    two = run(2, str(tmp_path / 'two.json'))
    assert len(one) == len(two) == 3
    assert set(one[0]) == {
        'loss', 'loss_nce', 'loss_video_ap', 'loss_frame_ap',
        'loss_hard_negative', 'loss_self', 'loss_reg'
    }
    for it, (a, b) in enumerate(zip(one, two)):
        for key in a:
            assert abs(a[key] - b[key]) <= 1e-5 * max(1.0, abs(a[key])), \
                (it, key, a[key], b[key])
    # the model learned something, so later iterations test the gradients
    assert one[0]['loss'] != one[-1]['loss']
