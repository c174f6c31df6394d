"""QuadLinear-AP losses of HAP-VR: video level and frame level."""
from typing import Optional

from mmaction.registry import MODELS
from torch import Tensor

from .base import RoutedLoss
from .functional import (embedding_similarity, frame_quadlinear_ap_loss,
                         label_relevance, quadlinear_ap_loss)

__all__ = ['QuadLinearAPLoss', 'FrameQuadLinearAPLoss']


@MODELS.register_module()
class QuadLinearAPLoss(RoutedLoss):
    """Video-level QuadLinear-AP loss ``L_AP = 1 - mean_q AP(q)``.

    See :func:`hapvr_mm.models.losses.functional.quadlinear_ap_loss`
    (docs/method.md section 4). Two calling forms:

    * retrieval form (inside ``HAPVR``): ``similarity [N, N]`` and
      ``relevance [N, N]`` (0/1 or bool, at least one positive per row);
    * the form of mmaction2's heads, ``loss_cls(cls_score [N, C],
      label [N])``: the similarity is the cosine of the rows of
      ``cls_score`` mapped to [0, 1]
      (:func:`~hapvr_mm.models.losses.functional.embedding_similarity`) and
      two samples are relevant when their labels are equal
      (:func:`~hapvr_mm.models.losses.functional.label_relevance`), so
      ``cls_head.loss_cls=dict(type='QuadLinearAPLoss')`` trains a stock
      recognizer to rank same-class clips first.

    Returns the scalar ``loss_weight * L_AP``.

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

    default_name = 'loss_video_ap'

    def __init__(self,
                 sigma: float = 0.05,
                 rho: float = 0.1,
                 surrogate: str = 'quadlinear',
                 temperature: float = 0.01,
                 loss_weight: float = 1.0) -> None:
        super().__init__(
            loss_weight,
            sigma=sigma,
            rho=rho,
            surrogate=surrogate,
            temperature=temperature)

    def _forward(self, similarity: Tensor, relevance: Tensor,
                 **kwargs) -> Tensor:
        if relevance.dim() == 1:
            # mmaction2 head form: (cls_score [N, C], label [N])
            if similarity.dim() != 2 or \
                    similarity.shape[0] != relevance.shape[0]:
                raise ValueError(
                    'QuadLinearAPLoss called as loss_cls(cls_score, label) '
                    'expects cls_score [N, C] and label [N], received '
                    f'{list(similarity.shape)} and {list(relevance.shape)}')
            relevance = label_relevance(relevance)
            similarity = embedding_similarity(similarity)
        return quadlinear_ap_loss(similarity, relevance, self.sigma, self.rho,
                                  self.surrogate, self.temperature)


@MODELS.register_module()
class FrameQuadLinearAPLoss(RoutedLoss):
    """Frame-level QuadLinear-AP loss with pseudo labels (``L_frame``).

    See :func:`hapvr_mm.models.losses.functional.frame_quadlinear_ap_loss`
    for the two calling forms (4-D with a relevance matrix, or the ``P``
    relevant pairs with ``relevance=None``) and the degenerate cases. In a
    model it consumes ``frame_similarity``, ``frame_positives`` and
    ``frame_negatives`` (``[P, T, T]`` over the relevant pairs); returns the
    scalar ``loss_weight * L_frame``.

    Args:
        sigma (float): margin of the quad-linear surrogate. Defaults to 0.05.
        rho (float): weight of positive frames ranked above.
            Defaults to 5.0.
        surrogate (str): ``'quadlinear'`` or ``'sigmoid'`` (Smooth-AP).
            Defaults to ``'quadlinear'``.
        temperature (float): sigmoid temperature. Defaults to 0.01.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    inputs = ('frame_similarity', 'frame_positives', 'frame_negatives')
    default_name = 'loss_frame_ap'

    def __init__(self,
                 sigma: float = 0.05,
                 rho: float = 5.0,
                 surrogate: str = 'quadlinear',
                 temperature: float = 0.01,
                 loss_weight: float = 1.0) -> None:
        super().__init__(
            loss_weight,
            sigma=sigma,
            rho=rho,
            surrogate=surrogate,
            temperature=temperature)

    def _forward(self,
                 frame_similarity: Tensor,
                 positives: Tensor,
                 negatives: Tensor,
                 relevance: Optional[Tensor] = None) -> Tensor:
        return frame_quadlinear_ap_loss(frame_similarity, positives, negatives,
                                        relevance, self.sigma, self.rho,
                                        self.surrogate, self.temperature)
