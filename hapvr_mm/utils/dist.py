"""Distributed set-up that also works on machines without CUDA."""
import os
import subprocess
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as torch_dist

__all__ = ['init_dist_cpu', 'default_backend', 'shutdown_dist']


def default_backend() -> str:
    """``'nccl'`` when CUDA is available, else ``'gloo'``."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def _slurm_env(port: Optional[int]) -> None:
    """Fill torch.distributed's variables from Slurm's, like mmengine."""
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1').strip()
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('MASTER_ADDR', addr or '127.0.0.1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def init_dist_cpu(launcher: str,
                  port: Optional[int] = None,
                  timeout_s: int = 1800) -> bool:
    """Start a ``gloo`` process group when CUDA is not available.

    mmengine's own ``init_dist`` calls ``torch.cuda.set_device`` (and, under
    Slurm, divides by the GPU count), which fails on CPU-only machines. When
    CUDA is missing this function initialises the default group with
    ``gloo`` from the launcher's environment instead; mmengine's runner then
    finds it already initialised. With CUDA it does nothing.

    Args:
        launcher (str): ``'none'``, ``'pytorch'`` or ``'slurm'``.
        port (int, optional): master port for Slurm.
        timeout_s (int): collective timeout in seconds.

    Returns:
        bool: True when a group was initialised here.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if torch_dist.is_available() and torch_dist.is_initialized():
        return False
    if launcher == 'slurm':
        _slurm_env(port)
    elif launcher != 'pytorch':
        raise ValueError(f'launcher must be none, pytorch or slurm on a '
                         f'CPU machine, got {launcher!r}')
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if key not in os.environ:
            raise RuntimeError(f'--launcher {launcher} needs ${key}; start '
                               'the job with tools/dist_train.sh (torchrun) '
                               'or tools/slurm_train.sh')
    torch_dist.init_process_group(
        backend='gloo', timeout=timedelta(seconds=timeout_s))
    return True


def shutdown_dist() -> None:
    """Wait for every rank, then destroy the default process group.

    Call at the end of a distributed tool. A process that exits with a live
    ``gloo`` group can abort in the group's destructor (``terminate called
    without an active exception``) and turn a finished run into a failed
    one; destroying the group after a barrier lets every rank exit cleanly.
    Does nothing when no group is initialised.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    torch_dist.barrier()
    torch_dist.destroy_process_group()
