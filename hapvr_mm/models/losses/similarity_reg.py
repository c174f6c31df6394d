"""Similarity regularisation of the video comparator's raw output."""
from typing import Optional, Sequence, Union

from mmaction.registry import MODELS
from torch import Tensor

from .base import RoutedLoss
from .functional import similarity_regularization

__all__ = ['SimilarityRegularizationLoss']


@MODELS.register_module()
class SimilarityRegularizationLoss(RoutedLoss):
    """Similarity regularisation ``L_reg`` (sum over pairs and cells).

    See :func:`hapvr_mm.models.losses.functional.similarity_regularization`.
    Consumes ``raw_output`` (the comparator output ``V`` before hardtanh, a
    tensor or a list of per-pair maps) and ``raw_mask`` (its valid cells,
    same shapes, or None); returns the scalar ``loss_weight * L_reg``.

    Args:
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    inputs = ('raw_output', 'raw_mask')
    default_name = 'loss_reg'

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)

    def _forward(self,
                 raw_output: Union[Tensor, Sequence[Tensor]],
                 mask: Optional[Union[Tensor,
                                      Sequence[Tensor]]] = None) -> Tensor:
        return similarity_regularization(raw_output, mask)
