"""SSHN losses: hardest negative and self similarity."""
from typing import Dict, Optional, Union

from mmaction.registry import MODELS
from torch import Tensor

from .base import RoutedLoss
from .functional import hard_negative_loss, self_similarity_loss

__all__ = ['HardNegativeLoss', 'SelfSimilarityLoss', 'SSHNLoss']


@MODELS.register_module()
class HardNegativeLoss(RoutedLoss):
    """Hardest-negative loss ``L_hn`` (docs/method.md section 4).

    See :func:`hapvr_mm.models.losses.functional.hard_negative_loss`.
    Consumes ``similarity`` and ``relevance`` (``[N, N]``); returns the
    scalar ``loss_weight * L_hn``.

    Args:
        eps (float): lower clamp inside the log. Defaults to 1e-3.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    default_name = 'loss_hard_negative'

    def __init__(self, eps: float = 1e-3, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight, eps=eps)

    def _forward(self, similarity: Tensor, relevance: Tensor) -> Tensor:
        return hard_negative_loss(similarity, relevance, self.eps)


@MODELS.register_module()
class SelfSimilarityLoss(RoutedLoss):
    """Self-similarity loss ``L_self`` (docs/method.md section 4).

    See :func:`hapvr_mm.models.losses.functional.self_similarity_loss`.
    Consumes ``similarity`` ``[N, N]`` only; returns the scalar
    ``loss_weight * L_self``.

    Args:
        eps (float): lower clamp inside the log. Defaults to 1e-3.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    inputs = ('similarity', )
    default_name = 'loss_self'

    def __init__(self, eps: float = 1e-3, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight, eps=eps)

    def _forward(self,
                 similarity: Tensor,
                 relevance: Optional[Tensor] = None) -> Tensor:
        return self_similarity_loss(similarity, self.eps)


@MODELS.register_module()
class SSHNLoss(RoutedLoss):
    """SSHN loss ``L_hn + L_self`` with one ``loss_weight``.

    Consumes ``similarity`` and ``relevance`` (``[N, N]``).

    Args:
        eps (float): lower clamp inside the logs. Defaults to 1e-3.
        return_terms (bool): return the two weighted terms as a dict
            ``{'loss_hard_negative', 'loss_self'}`` (the model then logs
            them apart) instead of their sum. Defaults to False.
        loss_weight (float): multiplier of both terms. Defaults to 1.0.
    """

    default_name = 'loss_sshn'

    def __init__(self,
                 eps: float = 1e-3,
                 return_terms: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight, eps=eps, return_terms=return_terms)

    def _forward(self, similarity: Tensor,
                 relevance: Tensor) -> Union[Tensor, Dict[str, Tensor]]:
        l_hn = hard_negative_loss(similarity, relevance, self.eps)
        l_self = self_similarity_loss(similarity, self.eps)
        if self.return_terms:
            return dict(loss_hard_negative=l_hn, loss_self=l_self)
        return l_hn + l_self
