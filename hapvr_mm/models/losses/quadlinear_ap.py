"""QuadLinear-AP losses of HAP-VR: video level and frame level."""
from typing import Optional

from mmaction.registry import MODELS
from torch import Tensor, nn

from .functional import frame_quadlinear_ap_loss, quadlinear_ap_loss

__all__ = ['QuadLinearAPLoss', 'FrameQuadLinearAPLoss']


@MODELS.register_module()
class QuadLinearAPLoss(nn.Module):
    """Video-level QuadLinear-AP loss ``L_AP = 1 - mean_q AP(q)``.

    See :func:`hapvr_mm.models.losses.functional.quadlinear_ap_loss`.

    Args:
        sigma (float): margin of the quad-linear surrogate. Defaults to 0.05.
        rho (float): weight of positives ranked above a positive.
            Defaults to 0.1.
        surrogate (str): ``'quadlinear'`` (HAP-VR) or ``'sigmoid'``
            (Smooth-AP, weight 1 everywhere, ``rho``/``sigma`` unused).
            Defaults to ``'quadlinear'``.
        temperature (float): sigmoid temperature. Defaults to 0.01.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 sigma: float = 0.05,
                 rho: float = 0.1,
                 surrogate: str = 'quadlinear',
                 temperature: float = 0.01,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.rho = rho
        self.surrogate = surrogate
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, similarity: Tensor, relevance: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            similarity (Tensor): ``[N, N]`` video similarities.
            relevance (Tensor): ``[N, N]`` 0/1 or bool relevance, at least
                one positive per row.

        Returns:
            Tensor: scalar, ``loss_weight * L_AP``.
        """
        return self.loss_weight * quadlinear_ap_loss(
            similarity, relevance, self.sigma, self.rho, self.surrogate,
            self.temperature)

    def extra_repr(self) -> str:
        return (f'sigma={self.sigma}, rho={self.rho}, '
                f'surrogate={self.surrogate!r}, '
                f'temperature={self.temperature}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class FrameQuadLinearAPLoss(nn.Module):
    """Frame-level QuadLinear-AP loss with pseudo labels (``L_frame``).

    See :func:`hapvr_mm.models.losses.functional.frame_quadlinear_ap_loss`
    for the two calling forms (4-D with a relevance matrix, or the ``P``
    relevant pairs with ``relevance=None``) and the degenerate cases.

    Args:
        sigma (float): margin of the quad-linear surrogate. Defaults to 0.05.
        rho (float): weight of positive frames ranked above.
            Defaults to 5.0.
        surrogate (str): ``'quadlinear'`` or ``'sigmoid'`` (Smooth-AP).
            Defaults to ``'quadlinear'``.
        temperature (float): sigmoid temperature. Defaults to 0.01.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 sigma: float = 0.05,
                 rho: float = 5.0,
                 surrogate: str = 'quadlinear',
                 temperature: float = 0.01,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.sigma = sigma
        self.rho = rho
        self.surrogate = surrogate
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self,
                frame_similarity: Tensor,
                positives: Tensor,
                negatives: Tensor,
                relevance: Optional[Tensor] = None) -> Tensor:
        """Compute the weighted loss.

        Args:
            frame_similarity (Tensor): ``[N, N, Ti, Tj]`` (with
                ``relevance``) or ``[P, Ti, Tj]`` (``relevance=None``).
            positives (Tensor): 0/1 or bool positive frames, same shape.
            negatives (Tensor): 0/1 or bool negative frames, same shape.
            relevance (Tensor, optional): ``[N, N]`` 0/1 or bool.
                Defaults to None.

        Returns:
            Tensor: scalar, ``loss_weight * L_frame``.
        """
        return self.loss_weight * frame_quadlinear_ap_loss(
            frame_similarity, positives, negatives, relevance, self.sigma,
            self.rho, self.surrogate, self.temperature)

    def extra_repr(self) -> str:
        return (f'sigma={self.sigma}, rho={self.rho}, '
                f'surrogate={self.surrogate!r}, '
                f'temperature={self.temperature}, '
                f'loss_weight={self.loss_weight}')
