"""Training hooks."""
from .atomic_checkpoint_hook import (AtomicCheckpointHook, AtomicLocalBackend,
                                     atomic_write_bytes, get_random_states,
                                     set_random_states)
from .loss_guard_hook import LossGuardHook
from .pseudo_label_hook import PseudoLabelHook
from .skipped_videos_hook import SkippedVideosHook
from .validate_at_start_hook import ValidateAtStartHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'atomic_write_bytes',
    'get_random_states', 'set_random_states', 'LossGuardHook',
    'PseudoLabelHook', 'SkippedVideosHook', 'ValidateAtStartHook'
]
