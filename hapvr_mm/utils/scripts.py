"""Load a script of the repository (``tools/``, ``benchmarks/``) as a module.

The command-line scripts are not part of the package; tests, benchmarks and
other scripts call their functions in-process (no interpreter start-up)
through :func:`load_script`.
"""
import importlib.util
import os.path as osp
from types import ModuleType
from typing import Optional

__all__ = ['load_script']


def load_script(path: str, name: Optional[str] = None) -> ModuleType:
    """Execute the Python file ``path`` as a fresh module and return it.

    Args:
        path (str): the ``.py`` file.
        name (str, optional): the module's name. Defaults to
            ``'_hapvr_script_' + stem``.

    Returns:
        ModuleType: the module (its ``if __name__ == '__main__'`` block does
        not run).

    Raises:
        FileNotFoundError: ``path`` is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'no script at {path}')
    stem = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(
        name or f'_hapvr_script_{stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
