"""Autocast helpers: which dtype is active, and float32 regions.

Under mixed precision (``--amp``, ``AmpOptimWrapper``) autocast runs matrix
products and convolutions in half precision. That suits the similarity
network, but not terms whose result depends on small differences between
similarities: the pseudo labels rank teacher similarities (a top-k), and
the losses' inputs are compared pair by pair. Those terms are computed in
:func:`float32_region` (docs/benchmarks.md, "fp16 audit").
"""
import contextlib
from typing import ContextManager, Optional

import torch

__all__ = ['autocast_dtype', 'float32_region']


def autocast_dtype(device: str) -> Optional[torch.dtype]:
    """The autocast dtype active on ``device`` (``'cuda'``/``'cpu'``), or None.

    ``torch.is_autocast_enabled(device)`` exists from torch 2.4; older
    versions have one function per device. A device type that has no
    autocast at all (``meta``, used to count FLOPs and to check device
    placement) has none active.

    Args:
        device (str): a device type.

    Returns:
        torch.dtype | None: the lower-precision dtype autocast uses there,
        or None when autocast is off.
    """
    try:
        if not torch.is_autocast_enabled(device):
            return None
        return torch.get_autocast_dtype(device)
    except RuntimeError:  # no autocast for this device type
        return None
    except TypeError:  # torch < 2.4
        if device == 'cuda' and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        if device == 'cpu' and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        return None


def float32_region(device: str) -> ContextManager:
    """A context in which autocast is off on ``device`` (if it was on).

    Tensors already in half precision stay so: cast them with ``.float()``
    inside the region.

    Args:
        device (str): a device type (``x.device.type``).

    Returns:
        ContextManager: ``torch.autocast(device, enabled=False)`` while
        autocast is active there, else a no-op context.
    """
    if autocast_dtype(device) is None:
        return contextlib.nullcontext()
    return torch.autocast(device, enabled=False)
