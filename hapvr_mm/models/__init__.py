"""Models of HAP-VR: backbones, layers, similarity, heads, losses."""
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .retrievers import *  # noqa: F401,F403
from .similarity import *  # noqa: F401,F403
