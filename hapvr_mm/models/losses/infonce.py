"""InfoNCE loss over a relevance matrix."""
from mmaction.registry import MODELS
from torch import Tensor

from .base import RoutedLoss
from .functional import info_nce_loss

__all__ = ['InfoNCELoss']


@MODELS.register_module()
class InfoNCELoss(RoutedLoss):
    """InfoNCE loss ``L_nce`` of HAP-VR / S2VS (docs/method.md section 4).

    See :func:`hapvr_mm.models.losses.functional.info_nce_loss`. Consumes
    ``similarity`` ``[N, N]`` and ``relevance`` ``[N, N]``; returns the
    scalar ``loss_weight * L_nce``.

    Args:
        temperature (float): ``tau``. Defaults to 0.03.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    default_name = 'loss_nce'

    def __init__(self,
                 temperature: float = 0.03,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight, temperature=temperature)

    def _forward(self, similarity: Tensor, relevance: Tensor) -> Tensor:
        return info_nce_loss(similarity, relevance, self.temperature)
