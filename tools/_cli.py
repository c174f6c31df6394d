"""How the command-line tools end: user errors as one line, exit status 2.

Library code (``hapvr_mm``) only raises; the tools decide how to exit.
"""
import sys
from typing import Any, Callable, Optional, Sequence, Type

from hapvr_mm.utils.errors import error_message, user_errors


def run_tool(
    main: Callable[..., Any],
    argv: Optional[Sequence[str]] = None,
    extra: Sequence[Type[BaseException]] = ()
) -> Any:
    """Run a tool's ``main``; user errors end as one line, exit status 2.

    Args:
        main (callable): the tool's ``main(argv)``.
        argv (sequence[str], optional): its arguments (None:
            ``sys.argv[1:]``).
        extra (sequence[type]): more exception types that are user errors
            for this tool (e.g. ``FileNotFoundError`` for a missing input).

    Returns:
        Any: what ``main`` returned.

    Raises:
        SystemExit: status 2 after printing ``error: MESSAGE`` to stderr;
            any other exception propagates with its traceback.
    """
    errors = user_errors() + tuple(extra)
    try:
        return main(argv)
    except errors as err:
        print(f'error: {error_message(err)}', file=sys.stderr, flush=True)
        raise SystemExit(2) from None
