"""High-level entry points used by ``tools/``."""
from .convert import convert_official_checkpoint
from .device_check import DeviceReport, check_device_placement, standin_runtime
from .errors import USER_ERRORS, ConfigError, PreflightError
from .preflight import (check_checkpoint_file, check_config_files,
                        find_missing_files)
from .runner_builder import (apply_train_flags, build_runner,
                             build_test_runner, build_train_runner,
                             load_config)

__all__ = [
    'build_test_runner', 'build_train_runner', 'build_runner',
    'apply_train_flags', 'load_config', 'convert_official_checkpoint',
    'PreflightError', 'ConfigError', 'USER_ERRORS', 'check_checkpoint_file',
    'check_config_files', 'find_missing_files', 'check_device_placement',
    'DeviceReport', 'standin_runtime'
]
