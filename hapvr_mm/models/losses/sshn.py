"""SSHN losses: hardest negative and self similarity."""
from typing import Tuple, Union

from mmaction.registry import MODELS
from torch import Tensor, nn

from .functional import hard_negative_loss, self_similarity_loss

__all__ = ['HardNegativeLoss', 'SelfSimilarityLoss', 'SSHNLoss']


@MODELS.register_module()
class HardNegativeLoss(nn.Module):
    """Hardest-negative loss ``L_hn``.

    See :func:`hapvr_mm.models.losses.functional.hard_negative_loss`.

    Args:
        eps (float): lower clamp inside the log. Defaults to 1e-3.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, eps: float = 1e-3, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, similarity: Tensor, relevance: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            similarity (Tensor): ``[N, N]`` video similarities.
            relevance (Tensor): ``[N, N]`` 0/1 or bool relevance.

        Returns:
            Tensor: scalar, ``loss_weight * L_hn``.
        """
        return self.loss_weight * hard_negative_loss(similarity, relevance,
                                                     self.eps)

    def extra_repr(self) -> str:
        return f'eps={self.eps}, loss_weight={self.loss_weight}'


@MODELS.register_module()
class SelfSimilarityLoss(nn.Module):
    """Self-similarity loss ``L_self``.

    See :func:`hapvr_mm.models.losses.functional.self_similarity_loss`.

    Args:
        eps (float): lower clamp inside the log. Defaults to 1e-3.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, eps: float = 1e-3, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, similarity: Tensor, relevance: Tensor = None) -> Tensor:
        """Compute the weighted loss.

        Args:
            similarity (Tensor): ``[N, N]`` video similarities.
            relevance (Tensor, optional): unused; accepted so that every
                video loss has the same call. Defaults to None.

        Returns:
            Tensor: scalar, ``loss_weight * L_self``.
        """
        return self.loss_weight * self_similarity_loss(similarity, self.eps)

    def extra_repr(self) -> str:
        return f'eps={self.eps}, loss_weight={self.loss_weight}'


@MODELS.register_module()
class SSHNLoss(nn.Module):
    """SSHN loss ``L_hn + L_self`` with one ``loss_weight``.

    Args:
        eps (float): lower clamp inside the logs. Defaults to 1e-3.
        loss_weight (float): multiplier of both terms. Defaults to 1.0.
    """

    def __init__(self, eps: float = 1e-3, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(
            self,
            similarity: Tensor,
            relevance: Tensor,
            return_terms: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Compute the weighted loss.

        Args:
            similarity (Tensor): ``[N, N]`` video similarities.
            relevance (Tensor): ``[N, N]`` 0/1 or bool relevance.
            return_terms (bool): return the two weighted terms instead of
                their sum. Defaults to False.

        Returns:
            Tensor | tuple[Tensor, Tensor]: scalar
            ``loss_weight * (L_hn + L_self)``, or
            ``(loss_weight * L_hn, loss_weight * L_self)``.
        """
        l_hn = self.loss_weight * hard_negative_loss(similarity, relevance,
                                                     self.eps)
        l_self = self.loss_weight * self_similarity_loss(similarity, self.eps)
        if return_terms:
            return l_hn, l_self
        return l_hn + l_self

    def extra_repr(self) -> str:
        return f'eps={self.eps}, loss_weight={self.loss_weight}'
