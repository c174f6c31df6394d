"""Retrieval evaluation: AP functions, benchmark protocols, the AP metric.

``functional`` holds the pure NumPy AP functions, ``annotations`` the
benchmarks' ground truth and protocols, ``metrics`` the registered
``RetrievalAPMetric``. Nothing here imports :mod:`hapvr_mm.datasets`.
"""
from .annotations import *  # noqa: F401,F403
from .functional import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
