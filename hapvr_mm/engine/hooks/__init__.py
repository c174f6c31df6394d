"""Training hooks."""
from .pseudo_label_hook import PseudoLabelHook
from .skipped_videos_hook import SkippedVideosHook
from .validate_at_start_hook import ValidateAtStartHook

__all__ = ['PseudoLabelHook', 'SkippedVideosHook', 'ValidateAtStartHook']
