"""The base of every HAP-VR loss: one weight, declared inputs.

Each loss is a thin registered wrapper around a pure function of
:mod:`hapvr_mm.models.losses.functional`. It subclasses mmaction2's
``BaseWeightedLoss`` (so ``loss_weight`` is applied once, in the base
class) and declares, in :attr:`RoutedLoss.inputs`, which outputs of the
model it consumes; the model (``HAPVR``) builds those outputs and calls
``loss(*[outputs[name] for name in loss.inputs])``. A new loss is therefore
one registered class and one config line; nothing in the model changes.

The outputs ``HAPVR`` provides (computed only when a loss asks for them):

=====================  =====================================================
name                   value
=====================  =====================================================
``similarity``         ``[N, N]`` video similarities of the batch (training
                       range [0, 1])
``relevance``          ``[N, N]`` 0/1 relevance of the batch
``raw_output``         the comparator's output before hardtanh (tensor or
                       list of per-pair maps)
``raw_mask``           its valid cells (or None)
``frame_similarity``   ``[P, T, T]`` frame similarities of the ``P``
                       relevant pairs
``frame_positives``    ``[P, T, T]`` teacher pseudo-label positives
``frame_negatives``    ``[P, T, T]`` teacher pseudo-label negatives
``features``           ``[N, T, R, D]`` indexed features
``masks``              ``[N, T]`` bool frame masks (or None)
=====================  =====================================================
"""
from typing import Any, Tuple

from mmaction.models.losses import BaseWeightedLoss

__all__ = ['RoutedLoss', 'MODEL_OUTPUTS', 'TEACHER_OUTPUTS']

#: every output name a loss may declare in ``inputs``
MODEL_OUTPUTS = ('similarity', 'relevance', 'raw_output', 'raw_mask',
                 'frame_similarity', 'frame_positives', 'frame_negatives',
                 'features', 'masks')
#: outputs that need the frozen teacher (frame pseudo labels)
TEACHER_OUTPUTS = ('frame_positives', 'frame_negatives')


class RoutedLoss(BaseWeightedLoss):
    """A weighted loss that names the model outputs it consumes.

    Subclasses set :attr:`inputs` and :attr:`default_name`, pass their
    hyper-parameters to ``super().__init__`` as keywords (they become
    attributes and appear in ``repr``) and implement ``_forward``, which
    returns the unweighted loss (a scalar tensor, or a dict of scalars
    whose keys contain ``loss``).

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        **hparams: Hyper-parameters, stored as attributes.
    """

    #: model outputs consumed, in the order of ``_forward``'s arguments
    inputs: Tuple[str, ...] = ('similarity', 'relevance')
    #: key in the model's loss dict when the config gives no name
    default_name: str = 'loss'

    def __init__(self, loss_weight: float = 1.0, **hparams: Any) -> None:
        super().__init__(loss_weight=loss_weight)
        self._hparams = tuple(hparams)
        for key, value in hparams.items():
            setattr(self, key, value)

    @property
    def needs_teacher(self) -> bool:
        """Whether this loss consumes teacher pseudo labels."""
        return any(name in TEACHER_OUTPUTS for name in self.inputs)

    def extra_repr(self) -> str:
        """Hyper-parameters and weight, as shown by ``print``."""
        names = self._hparams + ('loss_weight', )
        return ', '.join(f'{k}={getattr(self, k)!r}' for k in names)
