"""Models of HAP-VR: backbones, necks, layers, similarity, heads, losses."""
from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .pseudo_labels import FramePseudoLabeler, frame_pseudo_labels
from .retrievers import *  # noqa: F401,F403
from .similarity import *  # noqa: F401,F403
from .weight_init import StrictPretrained

__all__ = ['FramePseudoLabeler', 'frame_pseudo_labels', 'StrictPretrained']
