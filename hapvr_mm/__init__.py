"""hapvr_mm: HAP-VR near-duplicate video retrieval as an mmaction2 plugin.

Importing the package applies the compatibility fixes of
:mod:`hapvr_mm.compat` and registers every component into mmaction2's
registries (``custom_imports = dict(imports=['hapvr_mm'])``).
"""
from . import compat
from .version import __version__

compat.apply_all()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = [
    '__version__', 'compat', 'datasets', 'engine', 'evaluation', 'models'
]
