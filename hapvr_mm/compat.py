"""Work-arounds for known breakages of today's mmaction2 / mmengine / torch.

Each fix is applied once by :func:`apply_all` (called from
``hapvr_mm/__init__.py``) and never edits site-packages:

* mmaction2 1.2.0 from PyPI ships without ``mmaction/models/localizers/drn``
  although ``mmaction/models/localizers/__init__.py`` imports it, so
  ``import mmaction.models`` fails. :func:`patch_mmaction_drn` installs a
  placeholder module whose ``DRN`` raises a clear error when used.
* mmaction2 imports ``importlib_metadata`` without declaring it.
  :func:`patch_importlib_metadata` maps it to the standard library's
  ``importlib.metadata`` when the backport is missing.
* torch >= 2.6 loads with ``weights_only=True`` by default, which rejects the
  few non-tensor objects in mmengine's checkpoints.
  :func:`allow_mmengine_checkpoint_globals` allow-lists exactly those
  globals (:data:`MMENGINE_CHECKPOINT_GLOBALS`); ``weights_only`` stays on.
"""
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os.path as osp
import sys
import types
from typing import Any, List

__all__ = [
    'apply_all', 'patch_mmaction_drn', 'patch_importlib_metadata',
    'allow_mmengine_checkpoint_globals', 'mmengine_checkpoint_globals',
    'history_buffer_getattr'
]

_DRN_MODULES = ('mmaction.models.localizers.drn',
                'mmaction.models.localizers.drn.drn')


def patch_importlib_metadata() -> bool:
    """Alias ``importlib_metadata`` to ``importlib.metadata`` if missing.

    Returns:
        bool: True when the alias was installed, False when the backport is
        importable (nothing to do).
    """
    if 'importlib_metadata' in sys.modules:
        return False
    if importlib.util.find_spec('importlib_metadata') is not None:
        return False
    sys.modules['importlib_metadata'] = importlib.metadata
    return True


def _mmaction_root() -> str:
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return ''
    return list(spec.submodule_search_locations)[0]


class _MissingDRN:
    """Placeholder for mmaction2's DRN localizer, absent from its wheel."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError(
            'mmaction2 was installed without mmaction/models/localizers/drn '
            '(a packaging bug of mmaction2 1.2.0 on PyPI); DRN cannot be '
            'used. Install mmaction2 from source to use DRN.')


def patch_mmaction_drn() -> bool:
    """Make ``import mmaction.models`` work when the DRN package is missing.

    Returns:
        bool: True when placeholder modules were installed.
    """
    root = _mmaction_root()
    if not root or _DRN_MODULES[1] in sys.modules:
        return False
    drn_dir = osp.join(root, 'models', 'localizers', 'drn')
    if osp.isfile(osp.join(drn_dir, 'drn.py')):
        return False
    pkg = types.ModuleType(_DRN_MODULES[0])
    pkg.__path__ = []  # a package with no files
    pkg.__spec__ = importlib.machinery.ModuleSpec(
        _DRN_MODULES[0], loader=None, is_package=True)
    mod = types.ModuleType(_DRN_MODULES[1])
    mod.__spec__ = importlib.machinery.ModuleSpec(_DRN_MODULES[1], None)
    mod.DRN = _MissingDRN
    pkg.drn = mod
    sys.modules[_DRN_MODULES[0]] = pkg
    sys.modules[_DRN_MODULES[1]] = mod
    return True


# statistics methods HistoryBuffer registers for itself on first use
_HISTORY_STATISTICS = frozenset(('min', 'max', 'current', 'mean'))


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` that only resolves ``HistoryBuffer`` statistics.

    mmengine pickles each ``HistoryBuffer``'s ``_statistics_methods`` (bound
    as ``getattr(HistoryBuffer, 'mean')`` and so on), so its checkpoints
    reference the builtin ``getattr``. Allow-listing the real builtin would
    let a checkpoint reach any attribute of any allowed object; this stand-in
    is registered under the builtin's name instead and refuses anything
    else.

    Args:
        obj: the object whose attribute is asked for.
        name (str): the attribute name.

    Returns:
        the statistics method.

    Raises:
        pickle.UnpicklingError: for any other object or name.
    """
    import pickle
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = _HISTORY_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed and not name.startswith('_'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        'HistoryBuffer statistics methods are allowed')


def mmengine_checkpoint_globals() -> List[Any]:
    """Non-tensor globals that mmengine's ``Runner`` writes in checkpoints.

    ``meta`` holds ``numpy`` scalars and the NumPy / Python random states
    (arrays and dtypes), and ``message_hub`` holds ``HistoryBuffer`` objects
    (whose data are NumPy arrays and whose statistics methods are pickled
    through ``getattr``, see :func:`history_buffer_getattr`).

    Returns:
        list: the exact objects (or ``(object, pickled name)`` pairs) to pass
        to ``torch.serialization.add_safe_globals``.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    out: List[Any] = [
        HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
    ]
    # NumPy arrays, scalars and dtypes as pickled by numpy 1.x and 2.x.
    core = getattr(np, '_core', None) or np.core
    out.append(core.multiarray._reconstruct)
    out.append(core.multiarray.scalar)
    out.append(np.ndarray)
    out.append(np.dtype)
    for name in ('Float64DType', 'Float32DType', 'Int64DType', 'Int32DType',
                 'UInt32DType', 'UInt8DType', 'BoolDType', 'StrDType'):
        cls = getattr(np.dtypes, name, None)
        if cls is not None:
            out.append(cls)
    return out


def allow_mmengine_checkpoint_globals() -> bool:
    """Allow-list :func:`mmengine_checkpoint_globals` for ``torch.load``.

    Returns:
        bool: True when torch supports safe globals (torch >= 2.4).
    """
    import torch
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(mmengine_checkpoint_globals())
    return True


def apply_all() -> None:
    """Apply every work-around (idempotent)."""
    patch_importlib_metadata()
    patch_mmaction_drn()
    allow_mmengine_checkpoint_globals()
