"""FastAP loss (Cakir et al., CVPR 2019) on the batch similarity."""
from mmaction.registry import MODELS
from torch import Tensor

from .base import RoutedLoss
from .functional import embedding_similarity, fast_ap_loss, label_relevance

__all__ = ['FastAPLoss']


@MODELS.register_module()
class FastAPLoss(RoutedLoss):
    """Video-level FastAP loss ``L = 1 - mean_q FastAP(q)``.

    A histogram approximation of AP, offered as an alternative to the
    video-level QuadLinear-AP loss (its default name is the same,
    ``loss_video_ap``). See
    :func:`hapvr_mm.models.losses.functional.fast_ap_loss`. Two calling
    forms, as :class:`~hapvr_mm.models.losses.QuadLinearAPLoss`:

    * retrieval form (inside ``HAPVR``): ``similarity [N, N]`` and
      ``relevance [N, N]`` (0/1 or bool, diagonal True);
    * the form of mmaction2's heads, ``loss_cls(cls_score [N, C],
      label [N])``: the similarity is
      :func:`~hapvr_mm.models.losses.functional.embedding_similarity` of
      ``cls_score`` and two samples are relevant when their labels are
      equal (:func:`~hapvr_mm.models.losses.functional.label_relevance`).

    The query itself is left out of its ranked list; rows without any other
    positive are ignored (loss 0 when none has one). Returns the scalar
    ``loss_weight * L``.

    Args:
        num_bins (int): number of histogram bins over the distance range
            [0, 4]. Defaults to 10.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    default_name = 'loss_video_ap'

    def __init__(self, num_bins: int = 10, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight, num_bins=num_bins)

    def _forward(self, similarity: Tensor, relevance: Tensor,
                 **kwargs) -> Tensor:
        if relevance.dim() == 1:
            # mmaction2 head form: (cls_score [N, C], label [N])
            if similarity.dim() != 2 or \
                    similarity.shape[0] != relevance.shape[0]:
                raise ValueError(
                    'FastAPLoss called as loss_cls(cls_score, label) '
                    'expects cls_score [N, C] and label [N], received '
                    f'{list(similarity.shape)} and {list(relevance.shape)}')
            relevance = label_relevance(relevance)
            similarity = embedding_similarity(similarity)
        return fast_ap_loss(similarity, relevance, self.num_bins)
