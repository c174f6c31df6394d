"""Shared pytest set-up: import the plugin and use mmaction's scope."""
import warnings

warnings.filterwarnings('ignore', message='Fail to import')

import hapvr_mm  # noqa: E402,F401
from mmengine.registry import init_default_scope  # noqa: E402

init_default_scope('mmaction')
