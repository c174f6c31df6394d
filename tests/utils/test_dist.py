"""shutdown_dist: barrier, then the default group is destroyed."""
import torch.distributed as dist

from hapvr_mm.utils import shutdown_dist


def test_shutdown_destroys_group(tmp_path):
    shutdown_dist()  # no group: nothing happens
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/rdzv', rank=0, world_size=1)
    assert dist.is_initialized()
    shutdown_dist()
    assert not dist.is_initialized()
