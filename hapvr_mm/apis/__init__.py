"""High-level entry points used by ``tools/``."""
from .convert import convert_official_checkpoint
from .runner_builder import build_test_runner, build_train_runner, load_config

__all__ = [
    'build_test_runner', 'build_train_runner', 'load_config',
    'convert_official_checkpoint'
]
