"""Similarity regularisation of the video comparator's raw output."""
from typing import Optional, Sequence, Union

from mmaction.registry import MODELS
from torch import Tensor, nn

from .functional import similarity_regularization

__all__ = ['SimilarityRegularizationLoss']


@MODELS.register_module()
class SimilarityRegularizationLoss(nn.Module):
    """Similarity regularisation ``L_reg`` (sum over pairs and cells).

    See :func:`hapvr_mm.models.losses.functional.similarity_regularization`.

    Args:
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(
            self,
            raw_output: Union[Tensor, Sequence[Tensor]],
            mask: Optional[Union[Tensor, Sequence[Tensor]]] = None) -> Tensor:
        """Compute the weighted loss.

        Args:
            raw_output (Tensor | Sequence[Tensor]): comparator output ``V``
                before hardtanh, any shape(s).
            mask (Tensor | Sequence[Tensor], optional): 0/1 or bool valid
                cells, same shape(s). Defaults to None.

        Returns:
            Tensor: scalar, ``loss_weight * L_reg``.
        """
        return self.loss_weight * similarity_regularization(raw_output, mask)

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}'
