"""Work-arounds for known breakages of mmaction2 / mmengine / torch.

This docstring is the one place that lists them. :func:`apply_all` (called
once from ``hapvr_mm/__init__.py``) applies each entry of :data:`PATCHES`
whose ``needed()`` check is true for the installed versions; every patch is
idempotent (a second call changes nothing and returns False) and none edits
site-packages. :func:`status` says which ones are active.

``importlib_metadata``
    mmaction2 1.2.0 imports the ``importlib_metadata`` backport without
    declaring it. Needed while the backport is not installed; then the
    standard library's ``importlib.metadata`` is registered under that name
    (:func:`patch_importlib_metadata`).

``mmaction_drn``
    The mmaction2 1.2.0 wheel on PyPI lacks
    ``mmaction/models/localizers/drn`` although
    ``mmaction/models/localizers/__init__.py`` imports it, so ``import
    mmaction.models`` fails. Needed while ``drn/drn.py`` is absent from the
    installed mmaction; then a placeholder module is registered whose
    ``DRN`` raises a clear error when used (:func:`patch_mmaction_drn`).

``checkpoint_globals``
    torch >= 2.6 unpickles with ``weights_only=True`` by default and
    mmengine 0.10 calls ``torch.load`` without saying otherwise, so the few
    non-tensor objects mmengine's ``Runner`` writes into checkpoints
    (:func:`mmengine_checkpoint_globals`) are refused and ``Runner.resume``
    fails. Needed while torch's default is weights-only and mmengine's
    loader does not pass ``weights_only`` itself. The allow-list is not
    added to torch's process-wide list: mmengine's single checkpoint entry
    point, ``CheckpointLoader.load_checkpoint``, is wrapped so that the
    allow-list is active only while it loads a checkpoint
    (:func:`patch_checkpoint_loader`, :func:`checkpoint_globals_allowed`).
    Any other ``torch.load(weights_only=True)`` in the process still refuses
    these globals, and ``weights_only`` stays on everywhere.

``mmcv_lite_warning``
    With ``mmcv-lite`` (no compiled ops) importing mmaction2 warns ``Fail to
    import ``MultiScaleDeformableAttention`` ...`` from
    ``mmcv.cnn.bricks.transformer``: an op this plugin never uses. Needed
    while mmcv's compiled extension is absent; then exactly that message
    from that module is ignored (:func:`ignore_mmcv_lite_warning`, the one
    helper for this: tools and tests install no filter of their own), so any
    other failed import, e.g. a config's ``custom_imports``, still shows.

The first two must run at import: without them ``mmaction.models`` (and so
this plugin's registrations) cannot be imported. The third runs at import
because a plain mmengine ``Runner`` resuming a checkpoint calls no plugin
code before it loads the file. The fourth runs before mmaction2 is imported
(``hapvr_mm/__init__.py`` applies the patches first).
"""
import contextlib
import functools
import glob
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import os
import os.path as osp
import sys
import types
import warnings
from typing import Any, Callable, Dict, Iterator, List, NamedTuple

__all__ = [
    'apply_all', 'status', 'PATCHES', 'Patch', 'patch_mmaction_drn',
    'patch_importlib_metadata', 'patch_checkpoint_loader',
    'checkpoint_globals_allowed', 'checkpoint_globals_needed',
    'load_checkpoint_file', 'mmengine_checkpoint_globals',
    'history_buffer_getattr', 'ignore_mmcv_lite_warning', 'MMCV_LITE_WARNING'
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


def _torch_loads_weights_only_by_default() -> bool:
    """Whether ``torch.load`` defaults to ``weights_only=True`` here."""
    import torch
    if not hasattr(torch.serialization, 'safe_globals'):
        return False  # torch < 2.5: no weights-only default, nothing to do
    forced = os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '')
    if forced.lower() in ('1', 'y', 'yes', 'true'):
        return True
    version = torch.torch_version.TorchVersion(torch.__version__)
    return version >= (2, 6)


def _mmengine_passes_weights_only() -> bool:
    """Whether mmengine's local checkpoint loader chooses ``weights_only``."""
    from mmengine.runner import checkpoint as ckpt_mod
    try:
        source = inspect.getsource(ckpt_mod.load_from_local)
    except (OSError, TypeError, AttributeError):
        return False
    return 'weights_only' in source


def checkpoint_globals_needed() -> bool:
    """Whether mmengine's checkpoints need the allow-list to load.

    Returns:
        bool: True with torch's weights-only default (torch >= 2.6) and an
        mmengine whose loader does not set ``weights_only`` itself.
    """
    return _torch_loads_weights_only_by_default() and \
        not _mmengine_passes_weights_only()


@contextlib.contextmanager
def checkpoint_globals_allowed() -> Iterator[None]:
    """Allow :func:`mmengine_checkpoint_globals` inside the ``with`` block.

    Uses ``torch.serialization.safe_globals``, which restores torch's
    allow-list on exit; a no-op on a torch without it.

    Yields:
        None
    """
    import torch
    ctx = getattr(torch.serialization, 'safe_globals', None)
    if ctx is None:
        yield
        return
    with ctx(mmengine_checkpoint_globals()):
        yield


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with the allow-list active.

    For reading an mmengine checkpoint directly (outside
    ``load_checkpoint`` / ``Runner``).

    Args:
        path (str): The checkpoint file.
        map_location: As for ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The unpickled checkpoint.
    """
    import torch
    with checkpoint_globals_allowed():
        return torch.load(path, map_location=map_location, weights_only=True)


_WRAPPED_FLAG = '_hapvr_checkpoint_globals'


def patch_checkpoint_loader() -> bool:
    """Load mmengine checkpoints with the allow-list active.

    Wraps ``mmengine.runner.CheckpointLoader.load_checkpoint`` (the entry
    point of ``load_checkpoint``, ``Runner.load_checkpoint`` and
    ``Runner.resume`` for every storage scheme) in
    :func:`checkpoint_globals_allowed`.

    Returns:
        bool: True when the wrapper was installed now; False when it was
        already there.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    current = CheckpointLoader.__dict__['load_checkpoint'].__func__
    if getattr(current, _WRAPPED_FLAG, False):
        return False

    @functools.wraps(current)
    def load_checkpoint(cls, *args: Any, **kwargs: Any) -> Any:
        with checkpoint_globals_allowed():
            return current(cls, *args, **kwargs)

    setattr(load_checkpoint, _WRAPPED_FLAG, True)
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)
    return True


#: The start of the one known-harmless warning of ``mmcv-lite`` (a regular
#: expression for ``warnings.filterwarnings``).
MMCV_LITE_WARNING = (r'Fail to import ``MultiScaleDeformableAttention`` '
                     r'from ``mmcv\.ops\.multi_scale_deform_attn``')
_MMCV_LITE_MODULE = r'mmcv\.cnn\.bricks\.transformer'


def _mmcv_ops_missing() -> bool:
    """Whether the installed mmcv lacks its compiled ops (``mmcv-lite``)."""
    spec = importlib.util.find_spec('mmcv')
    if spec is None or not spec.submodule_search_locations:
        return False
    root = list(spec.submodule_search_locations)[0]
    return not glob.glob(osp.join(root, '_ext*'))


def ignore_mmcv_lite_warning() -> bool:
    """Ignore mmcv-lite's ``MultiScaleDeformableAttention`` import warning.

    Only that message, issued by ``mmcv.cnn.bricks.transformer``, is
    ignored; every other warning (another failed import included) shows as
    before.

    Returns:
        bool: True when the filter was added now, False when it was
        already there.
    """
    for action, message, category, module, _ in warnings.filters:
        if action == 'ignore' and message is not None and \
                message.pattern == MMCV_LITE_WARNING and \
                module is not None and module.pattern == _MMCV_LITE_MODULE:
            return False
    warnings.filterwarnings(
        'ignore',
        message=MMCV_LITE_WARNING,
        category=UserWarning,
        module=_MMCV_LITE_MODULE)
    return True


class Patch(NamedTuple):
    """One work-around: its name, when it is needed and how it is applied.

    ``needed()`` is evaluated against the installed versions; ``apply()``
    returns True when it changed something.
    """
    name: str
    needed: Callable[[], bool]
    apply: Callable[[], bool]


def _drn_missing() -> bool:
    root = _mmaction_root()
    return bool(root) and not osp.isfile(
        osp.join(root, 'models', 'localizers', 'drn', 'drn.py'))


def _backport_missing() -> bool:
    return 'importlib_metadata' not in sys.modules and \
        importlib.util.find_spec('importlib_metadata') is None


#: Every work-around, in the order :func:`apply_all` applies them (see the
#: module docstring for why each exists).
PATCHES = (
    Patch('importlib_metadata', _backport_missing, patch_importlib_metadata),
    Patch('mmaction_drn', _drn_missing, patch_mmaction_drn),
    Patch('checkpoint_globals', checkpoint_globals_needed,
          patch_checkpoint_loader),
    Patch('mmcv_lite_warning', _mmcv_ops_missing, ignore_mmcv_lite_warning),
)

_ACTIVE: Dict[str, bool] = {}


def apply_all() -> Dict[str, bool]:
    """Apply every needed work-around once (idempotent).

    Returns:
        dict[str, bool]: For each patch name, whether it is needed by the
        installed versions (and so active after this call).
    """
    for patch in PATCHES:
        needed = bool(patch.needed()) or _ACTIVE.get(patch.name, False)
        if needed:
            patch.apply()
        _ACTIVE[patch.name] = needed
    return dict(_ACTIVE)


def status() -> Dict[str, bool]:
    """Which work-arounds are active in this process.

    Returns:
        dict[str, bool]: Patch name to active (False before
        :func:`apply_all`).
    """
    return {p.name: _ACTIVE.get(p.name, False) for p in PATCHES}
