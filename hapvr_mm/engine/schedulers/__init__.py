"""Parameter schedulers."""
from .absolute_cosine import AbsoluteCosineAnnealingLR, absolute_cosine_lr

__all__ = ['AbsoluteCosineAnnealingLR', 'absolute_cosine_lr']
