"""Exceptions the ``apis`` raise for a run that cannot start as asked.

They are ordinary exceptions: library code raises them and never exits the
process. The command-line tools (``tools/train.py``, ``tools/test.py``, ...)
catch :data:`USER_ERRORS` and stop with ``error: <message>`` on stderr and
exit status 2, without a traceback.
"""
from typing import Any, Tuple, Type

__all__ = ['ConfigError', 'PreflightError', 'USER_ERRORS']


class ConfigError(ValueError):
    """The config and the command-line options ask for a run that cannot be
    made (e.g. ``--amp`` without a CUDA device)."""


class PreflightError(RuntimeError):
    """Files or folders named by the config are missing or unreadable.

    Args:
        message (str): The full report, one line per missing path.
        missing (list[MissingPath]): What is missing. Defaults to none.
    """

    def __init__(self, message: str, missing: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.missing = list(missing or [])

    def __str__(self) -> str:
        return self.message


#: The project's exceptions that a tool reports as a user error.
USER_ERRORS: Tuple[Type[Exception], ...] = (ConfigError, PreflightError)
