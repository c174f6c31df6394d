"""A stand-in accelerator device that checks tensor placement on the CPU.

Nothing in a training step may create its tensors on the host or combine a
host tensor with a device tensor: on a GPU either is an error (``Expected
all tensors to be on the same device``) or a silent copy per step. Neither
shows on a CPU-only machine, where every tensor is on the host anyway.

:class:`DeviceStandIn` makes it show. Inside it, tensors moved to the
stand-in device (``DeviceStandIn.device``, PyTorch's ``meta`` device type)
become :class:`StandInTensor` s: wrappers that report the stand-in device
but carry real CPU data, so that every operation is computed exactly as on
the CPU (values, ``.item()``, ``nonzero``, Python branches on values, the
autograd engine and optimizers all work), while each operation is checked:

* an operation that receives both stand-in tensors and host tensors of one
  or more dimensions raises :class:`DevicePlacementError` (0-dim host
  tensors are allowed with device tensors, as CUDA allows them; copies
  between devices are allowed);
* a factory given the stand-in device and a host ``torch.Generator``
  raises, as CUDA does;
* inside :meth:`DeviceStandIn.strict` (the code under test, e.g. a model's
  ``train_step``), host tensors that code of the ``watched`` packages
  (default: ``hapvr_mm``) creates, e.g. ``torch.zeros(n)`` without
  ``device=``, are tagged with where they were made, and one that meets a
  device tensor raises even as a 0-dim scalar (which CUDA would copy over
  silently every step). Host-side work that stays on the host (random
  draws with a CPU generator, then one ``.to(device)``) is legal, and
  listed in :attr:`DeviceStandIn.host_creations`; host scalars made by
  PyTorch or mmengine themselves (optimizer step counters) are theirs.

Device-to-host reads (``.item()``, ``bool(t)``, ``.cpu()``) are legal but
are synchronisations on a GPU; they are counted in
:attr:`DeviceStandIn.host_reads`.

What the stand-in cannot show: kernels' own behaviour on a GPU (cuDNN
algorithms, memory fragmentation, speed) and autocast's dtype casting
(PyTorch has no autocast for the ``meta`` device type); the dtype side is
audited separately with CPU autocast (docs/benchmarks.md, "fp16 audit").

Example::

    standin = DeviceStandIn()
    with standin:
        model.to(standin.device)
        with standin.strict():
            losses = model.train_step(batch, optim_wrapper)
"""
import contextlib
import os.path as osp
import sys
import traceback
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

__all__ = [
    'DeviceStandIn', 'StandInTensor', 'DevicePlacementError', 'STANDIN_DEVICE',
    'standin_tensors'
]

#: the device type that stand-in tensors report
STANDIN_DEVICE = torch.device('meta')

#: operations that legally take tensors of two devices (copies)
_COPY_OPS = frozenset(('copy_', '_to_copy', '_copy_from', 'to',
                       '_copy_from_and_resize', 'lift_fresh_copy'))
#: operations that read device data on the host (a sync on a GPU)
_HOST_READS = frozenset(('_local_scalar_dense', 'equal', 'is_nonzero'))
#: ``Tensor.data``'s setter, as a torch function mode sees it
_DATA_SETTER = torch.Tensor.data.__set__
#: path fragments of frames that are PyTorch's own or this module's
_TORCH_DIR = osp.dirname(osp.abspath(torch.__file__))
_THIS_FILE = osp.abspath(__file__)


class DevicePlacementError(RuntimeError):
    """A tensor is on the host where the stand-in device was expected."""


class StandInTensor(torch.Tensor):
    """A tensor that reports the stand-in device and holds CPU data.

    Args:
        elem (Tensor): the CPU tensor whose values it carries (a plain
            ``torch.Tensor``).

    Its ``device`` is :data:`STANDIN_DEVICE`; every operation on it is
    computed on ``elem`` by :func:`_dispatch`.
    """

    elem: torch.Tensor

    __slots__ = ['elem']

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> 'StandInTensor':
        if type(elem) is not torch.Tensor or elem.device.type != 'cpu':
            raise TypeError('StandInTensor wraps a plain CPU tensor, got '
                            f'{type(elem).__name__} on {elem.device}')
        out = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=STANDIN_DEVICE,
            requires_grad=elem.requires_grad)
        out.elem = elem
        return out

    def __repr__(self, *, tensor_contents=None) -> str:  # noqa: D105
        return f'StandInTensor({self.elem!r})'

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(None, func, args, kwargs or {})

    def __reduce_ex__(self, protocol):
        raise TypeError('a StandInTensor cannot be saved; move it to the '
                        'CPU first (.cpu())')


def _is_host(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and not isinstance(
        x, StandInTensor) and x.device.type == 'cpu'


def _describe(x: torch.Tensor) -> str:
    return f'{tuple(x.shape)} {str(x.dtype)[6:]}'


def _user_frame(watched: Sequence[str]) -> Optional[str]:
    """``file:line in function`` of the nearest caller outside PyTorch.

    Returns it only when that frame lies in one of the ``watched`` package
    folders; None when the nearest such caller is some other library
    (mmengine, the test itself), whose host tensors are not ours to judge.
    """
    frame = sys._getframe(1)
    while frame is not None:
        path = osp.abspath(frame.f_code.co_filename)
        if path != _THIS_FILE and not path.startswith(_TORCH_DIR):
            if any(path.startswith(w) for w in watched):
                return (f'{path}:{frame.f_lineno} in '
                        f'{frame.f_code.co_name}')
            return None
        frame = frame.f_back
    return None


def _aliased_returns(func, args: tuple, kwargs: dict, out: Any) -> Any:
    """For in-place / ``out=`` operations, return the mutated inputs."""
    schema = func._schema
    mutated = {}
    for i, arg in enumerate(schema.arguments):
        info = arg.alias_info
        if info is not None and info.is_write:
            value = (
                args[i] if i < len(args) and not arg.kwarg_only else
                kwargs.get(arg.name))
            mutated[frozenset(info.before_set)] = value
    if not mutated:
        return None
    rets = []
    for ret in schema.returns:
        info = ret.alias_info
        if info is None or frozenset(info.before_set) not in mutated:
            return None
        rets.append(mutated[frozenset(info.before_set)])
    if len(rets) == 1:
        return rets[0]
    return tuple(rets)


def _dispatch(mode: Optional['DeviceStandIn'], func, args: tuple,
              kwargs: dict) -> Any:
    """Run ``func`` on CPU data, checking and re-wrapping devices."""
    name = func._schema.name.split('::')[-1]
    flat, _ = tree_flatten((args, kwargs))
    standin = [x for x in flat if isinstance(x, StandInTensor)]
    # 0-dim host tensors may meet device tensors (CUDA allows it), unless
    # our own code made them inside the checked step
    host = [
        x for x in flat if _is_host(x) and (
            x.dim() > 0 or getattr(x, '_standin_origin', None) is not None)
    ]
    bare = [
        x for x in flat if isinstance(x, torch.Tensor)
        and not isinstance(x, StandInTensor) and x.device.type == 'meta'
    ]
    if bare:
        raise RuntimeError(
            f'{func} at {_caller()}: got a {STANDIN_DEVICE.type} tensor '
            'without data, made outside the stand-in (a constructor it '
            'does not intercept?)')
    device = kwargs.get('device')
    to_standin = _is_standin_device(device)
    to_host = device is not None and torch.device(device).type == 'cpu'
    if standin and host and name not in _COPY_OPS:
        origins = {getattr(x, '_standin_origin', None) for x in host} - {None}
        raise DevicePlacementError(
            f'{func} at {_caller()}: mixes tensors on the device with host '
            f'tensors {[_describe(x) for x in host]}' +
            (f' (made at {"; ".join(sorted(origins))})' if origins else '') +
            '; create them with device= or move them with .to(device)')
    if to_standin and kwargs.get('generator') is not None and \
            kwargs['generator'].device.type == 'cpu':
        raise DevicePlacementError(
            f'{func} at {_caller()}: a CPU torch.Generator for a tensor '
            'created on the device (CUDA refuses this)')
    if mode is not None and name in _HOST_READS and standin and \
            mode.strict_depth:
        where = _caller()
        mode.host_reads[where] = mode.host_reads.get(where, 0) + 1

    def unwrap(x):
        return x.elem if isinstance(x, StandInTensor) else x

    a, k = tree_map(unwrap, (args, kwargs))
    if to_standin:
        k = dict(k)
        k['device'] = torch.device('cpu')
    out = func(*a, **k)
    if not func._schema.returns:
        return None
    aliased = _aliased_returns(func, args, kwargs, out)
    if aliased is not None:
        return aliased
    if to_standin or (standin and not to_host):
        return tree_map(_wrap_plain, out)
    if mode is not None and mode.strict_depth and name not in _COPY_OPS:
        mode.note_host_tensors(func, out)
    return out


def _wrap_plain(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and type(x) is torch.Tensor:
        return StandInTensor(x)
    return x


def _caller() -> str:
    """The innermost frame outside PyTorch and this module."""
    for entry in reversed(traceback.extract_stack()):
        path = osp.abspath(entry.filename)
        if path != _THIS_FILE and not path.startswith(_TORCH_DIR):
            return f'{path}:{entry.lineno} in {entry.name}'
    return '<unknown>'


def _is_standin_device(device: Any) -> bool:
    return device is not None and torch.device(
        device).type == STANDIN_DEVICE.type


class _StandInConstructors(TorchFunctionMode):
    """Build ``torch.tensor(data, device=<stand-in>)`` from its data.

    PyTorch copies constructor data to the target device below the
    dispatcher, where a dispatch mode cannot see it (the meta device would
    drop the values), so these constructors are redirected here.
    """

    def __init__(self, owner: 'DeviceStandIn') -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func == _DATA_SETTER:
            # ``t.data = new`` (Module.half(), .to(dtype)) swaps the tensor's
            # metadata only: give the wrapper the new values too
            out = func(*args, **kwargs)
            target, new = args
            if isinstance(target, StandInTensor):
                if not isinstance(new, StandInTensor):
                    raise DevicePlacementError(
                        f'{_caller()}: .data of a device tensor set to a '
                        f'host tensor {_describe(new)}')
                target.elem = new.elem
            return out
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and \
                _is_standin_device(kwargs.get('device')):
            kwargs['device'] = 'cpu'
            with self.owner.lenient():
                return _wrap_plain(_unwrap_all(func(*args, **kwargs)))
        if func is torch.Tensor.new_tensor and isinstance(
                args[0], StandInTensor) and _is_standin_device(
                    kwargs.get('device', args[0].device)):
            kwargs['device'] = 'cpu'
            kwargs.setdefault('dtype', args[0].dtype)
            with self.owner.lenient():
                return _wrap_plain(
                    torch.tensor(_unwrap_all(args[1]), **kwargs))
        return func(*args, **kwargs)


def _unwrap_all(x: Any) -> Any:
    return tree_map(
        lambda t: t.elem.clone() if isinstance(t, StandInTensor) else t, x)


class DeviceStandIn(TorchDispatchMode):
    """Dispatch mode that checks placement against a stand-in device.

    Args:
        watched (sequence[str]): folders (or packages' ``__init__`` files'
            folders) whose code may not create host tensors inside
            :meth:`strict`. Defaults to the ``hapvr_mm`` package.

    Attributes:
        device (torch.device): the stand-in device to move models and data
            to (``meta``).
        host_reads (dict[str, int]): device-to-host reads (``.item()``,
            ``bool(t)``, ...) inside :meth:`strict`, by calling line.
        host_creations (list[str]): operations of watched code that made
            host tensors inside :meth:`strict` (legal while those tensors
            stay on the host, e.g. random draws with a CPU generator; an
            error as soon as one meets a device tensor).
    """

    device = STANDIN_DEVICE

    def __init__(self, watched: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        if watched is None:
            watched = [osp.dirname(osp.dirname(_THIS_FILE))]
        self.watched = [osp.abspath(w) for w in watched]
        self.host_reads: Dict[str, int] = {}
        self.host_creations: List[str] = []
        self.strict_depth = 0
        self._constructors = _StandInConstructors(self)

    def __enter__(self) -> 'DeviceStandIn':
        self._constructors.__enter__()
        try:
            return super().__enter__()
        except BaseException:
            self._constructors.__exit__(None, None, None)
            raise

    def __exit__(self, *exc) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._constructors.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(self, func, args, kwargs or {})

    @contextlib.contextmanager
    def strict(self) -> Iterator['DeviceStandIn']:
        """Also refuse host tensors created by watched code in this block."""
        self.strict_depth += 1
        try:
            yield self
        finally:
            self.strict_depth -= 1

    @contextlib.contextmanager
    def lenient(self) -> Iterator['DeviceStandIn']:
        """Suspend :meth:`strict` (for the stand-in's own host work)."""
        depth, self.strict_depth = self.strict_depth, 0
        try:
            yield self
        finally:
            self.strict_depth = depth

    def note_host_tensors(self, func, out: Any) -> None:
        """Tag host tensors that watched code makes inside :meth:`strict`.

        A tagged tensor may not meet a device tensor, not even as a 0-dim
        scalar; each is listed in :attr:`host_creations`.
        """
        made = [x for x in tree_flatten(out)[0] if _is_host(x)]
        if not made:
            return
        where = _user_frame(self.watched)
        if where is None:
            return
        for x in made:
            if getattr(x, '_standin_origin', None) is None:
                x._standin_origin = where
        self.host_creations.append(
            f'{func} at {where}: {[_describe(x) for x in made]}')

    @staticmethod
    def unwrap(x: Any) -> Any:
        """The CPU data of a stand-in tensor (anything else unchanged)."""
        return x.elem if isinstance(x, StandInTensor) else x


def standin_tensors(module: torch.nn.Module) -> Tuple[List[str], List[str]]:
    """Names of a module's parameters and buffers off the stand-in device.

    Args:
        module (nn.Module): the module to inspect.

    Returns:
        tuple[list[str], list[str]]: parameter names and buffer names that
        are not :class:`StandInTensor` s (both empty when all are placed).
    """
    params = [
        n for n, p in module.named_parameters()
        if not isinstance(p, StandInTensor)
    ]
    buffers = [
        n for n, b in module.named_buffers()
        if not isinstance(b, StandInTensor)
    ]
    return params, buffers
