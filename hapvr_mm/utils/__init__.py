"""Utilities."""
from .dist import default_backend, init_dist_cpu, shutdown_dist
from .malloc import tune_glibc_malloc

__all__ = [
    'default_backend', 'init_dist_cpu', 'shutdown_dist', 'tune_glibc_malloc'
]
