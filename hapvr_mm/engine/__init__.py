"""Engine components of hapvr_mm: hooks, runner loops, schedulers."""
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .runner import *  # noqa: F401,F403
from .runner import __all__ as _runner_all
from .schedulers import *  # noqa: F401,F403
from .schedulers import __all__ as _schedulers_all

__all__ = list(_hooks_all) + list(_runner_all) + list(_schedulers_all)
