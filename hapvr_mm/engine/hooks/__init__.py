"""Training hooks."""
from .pseudo_label_hook import PseudoLabelHook
from .validate_at_start_hook import ValidateAtStartHook

__all__ = ['PseudoLabelHook', 'ValidateAtStartHook']
