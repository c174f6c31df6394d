"""Utilities."""
from .dist import default_backend, init_dist_cpu
from .malloc import tune_glibc_malloc

__all__ = ['default_backend', 'init_dist_cpu', 'tune_glibc_malloc']
