"""Utilities."""
from .device_standin import DevicePlacementError, DeviceStandIn, StandInTensor
from .dist import default_backend, init_dist_cpu, shutdown_dist
from .dtype_audit import DtypeRecorder
from .errors import (DiskFullError, RunStoppedError, SkippedVideosError,
                     TrainingDivergedError, disk_full_error, error_message,
                     user_errors)
from .malloc import tune_glibc_malloc
from .safe_io import (UnsafePickleError, load_data_file, safe_pickle_load,
                      safe_pickle_loads)
from .scripts import load_script

__all__ = [
    'default_backend', 'init_dist_cpu', 'shutdown_dist', 'tune_glibc_malloc',
    'DeviceStandIn', 'StandInTensor', 'DevicePlacementError', 'DtypeRecorder',
    'UnsafePickleError', 'safe_pickle_load', 'safe_pickle_loads',
    'load_data_file', 'RunStoppedError', 'SkippedVideosError',
    'TrainingDivergedError', 'DiskFullError', 'disk_full_error', 'user_errors',
    'error_message', 'load_script'
]
