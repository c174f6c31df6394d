"""InfoNCE loss over a relevance matrix."""
from mmaction.registry import MODELS
from torch import Tensor, nn

from .functional import info_nce_loss

__all__ = ['InfoNCELoss']


@MODELS.register_module()
class InfoNCELoss(nn.Module):
    """InfoNCE loss ``L_nce`` of HAP-VR / S2VS.

    See :func:`hapvr_mm.models.losses.functional.info_nce_loss`.

    Args:
        temperature (float): ``tau``. Defaults to 0.03.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.03,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, similarity: Tensor, relevance: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            similarity (Tensor): ``[N, N]`` video similarities.
            relevance (Tensor): ``[N, N]`` 0/1 or bool relevance.

        Returns:
            Tensor: scalar, ``loss_weight * L_nce``.
        """
        return self.loss_weight * info_nce_loss(similarity, relevance,
                                                self.temperature)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, '
                f'loss_weight={self.loss_weight}')
