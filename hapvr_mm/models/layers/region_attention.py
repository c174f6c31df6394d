"""Region attention of the similarity network (docs/method.md s. 3, step 1)."""
import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

__all__ = ['RegionAttention']


@MODELS.register_module()
class RegionAttention(BaseModule):
    """Weight each region vector by ``sigmoid(u^T tanh(W x + b))``.

    Args:
        dims (int): feature dimension ``D``. Defaults to 512.
        init_cfg (dict, optional): mmengine init config. Defaults to None
            (Xavier-uniform ``W`` and ``u``, zero bias, as docs/method.md).

    Shapes:
        input ``[..., D]`` -> output ``[..., D]``.
    """

    def __init__(self, dims: int = 512, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if dims <= 0:
            raise ValueError(f'dims must be positive, got {dims}')
        self.dims = dims
        self.proj = nn.Linear(dims, dims)
        self.context = nn.Parameter(torch.empty(dims, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero bias."""
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.xavier_uniform_(self.context)

    def weights(self, x: Tensor) -> Tensor:
        """Attention weight of every region.

        Args:
            x (Tensor): ``[..., D]`` region features.

        Returns:
            Tensor: ``[..., 1]`` weights in (0, 1).
        """
        if x.shape[-1] != self.dims:
            raise ValueError(f'expected features [..., {self.dims}], got '
                             f'{tuple(x.shape)}')
        return torch.sigmoid(torch.tanh(self.proj(x)) @ self.context)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` scaled by its attention weights (``[..., D]``)."""
        return x * self.weights(x)
