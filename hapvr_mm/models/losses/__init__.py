"""Losses of HAP-VR (docs/method.md section 4)."""
from .base import MODEL_OUTPUTS, TEACHER_OUTPUTS, RoutedLoss
from .fast_ap import FastAPLoss
from .functional import (embedding_similarity, fast_ap_loss,
                         frame_quadlinear_ap_loss, hard_negative_loss,
                         info_nce_loss, label_relevance, quadlinear,
                         quadlinear_ap_loss, self_similarity_loss,
                         similarity_regularization)
from .infonce import InfoNCELoss
from .quadlinear_ap import FrameQuadLinearAPLoss, QuadLinearAPLoss
from .similarity_reg import SimilarityRegularizationLoss
from .sshn import HardNegativeLoss, SelfSimilarityLoss, SSHNLoss

__all__ = [
    'InfoNCELoss', 'QuadLinearAPLoss', 'FrameQuadLinearAPLoss',
    'SimilarityRegularizationLoss', 'HardNegativeLoss', 'SelfSimilarityLoss',
    'SSHNLoss', 'quadlinear', 'quadlinear_ap_loss', 'frame_quadlinear_ap_loss',
    'info_nce_loss', 'hard_negative_loss', 'self_similarity_loss',
    'similarity_regularization', 'embedding_similarity', 'label_relevance',
    'RoutedLoss', 'MODEL_OUTPUTS', 'TEACHER_OUTPUTS', 'FastAPLoss',
    'fast_ap_loss'
]
