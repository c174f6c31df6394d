"""Utilities."""
from .dist import default_backend, init_dist_cpu

__all__ = ['default_backend', 'init_dist_cpu']
