"""Run a config's training iterations and evaluation on a stand-in device.

:func:`check_device_placement` builds mmengine's runner from a config and
runs it with the model, the teacher, the optimizer state and every batch
on the stand-in accelerator of :mod:`hapvr_mm.utils.device_standin`: real
CPU arithmetic, but any operation that mixes host and device tensors, and
any host tensor our code creates inside the step and then combines with a
device tensor, raises :class:`~hapvr_mm.utils.device_standin.
DevicePlacementError` naming the operation and the line.

What runs is what a GPU run executes: the runner's ``wrap_model`` moves the
model to the (stand-in) device, the data preprocessor moves each batch
there, ``PseudoLabelHook`` builds the teacher there (in fp16, as on a GPU),
the config's optimizer wrapper runs (an ``AmpOptimWrapper`` is built as on
CUDA, with a dynamic ``GradScaler`` on the stand-in device), and the
retrieval loop indexes, scores and gathers. Two things differ from CUDA and
are stated in the report: autocast does not cast on the stand-in (PyTorch
has no autocast for its device type; the dtypes it would use are audited
by ``benchmarks/fp16_audit.py``), and no checkpoint is written (a
stand-in tensor cannot be saved).
"""
import contextlib
import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional
from unittest import mock

import torch
from mmengine.config import Config

from hapvr_mm.utils.device_standin import (DeviceStandIn, StandInTensor,
                                           standin_tensors)

__all__ = ['DeviceReport', 'check_device_placement', 'standin_runtime']


@dataclass
class DeviceReport:
    """What one stand-in run did.

    Attributes:
        losses (list[dict[str, float]]): the loss values of each training
            iteration.
        metrics (dict): the evaluation's metrics (empty without one).
        autocast_dtypes (list): dtypes the optimizer wrapper asked autocast
            for (not applied on the stand-in).
        loss_scale (float, optional): the GradScaler's scale after training
            (None without an ``AmpOptimWrapper``).
        host_reads (dict[str, int]): device-to-host reads by line.
        host_creations (list[str]): host tensors our code made inside the
            steps (legal while they stay on the host).
        off_device (list[str]): model, teacher or optimizer tensors that
            were not on the stand-in device after training (should be
            empty).
        teacher_dtype (torch.dtype, optional): the teacher's parameter
            dtype.
    """

    losses: List[Dict[str, float]] = field(default_factory=list)
    metrics: Dict[str, Any] = field(default_factory=dict)
    autocast_dtypes: List[Any] = field(default_factory=list)
    loss_scale: Optional[float] = None
    host_reads: Dict[str, int] = field(default_factory=dict)
    host_creations: List[str] = field(default_factory=list)
    off_device: List[str] = field(default_factory=list)
    teacher_dtype: Optional[torch.dtype] = None


@contextlib.contextmanager
def standin_runtime(standin: DeviceStandIn,
                    report: DeviceReport) -> Iterator[None]:
    """Make mmengine's runner treat the stand-in as its accelerator.

    Inside: ``Runner.wrap_model`` moves models to ``standin.device``,
    ``AmpOptimWrapper`` can be built and gets a ``GradScaler`` on that
    device, and the optimizer wrapper's autocast records its dtype in
    ``report.autocast_dtypes`` instead of casting.

    Args:
        standin (DeviceStandIn): the active stand-in.
        report (DeviceReport): receives the autocast dtypes.
    """
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    import mmengine.runner.amp as runner_amp
    import mmengine.runner.runner as runner_mod

    @contextlib.contextmanager
    def recorded_autocast(*args, dtype=None, enabled=True, **kwargs):
        if enabled:
            report.autocast_dtypes.append(dtype)
        yield

    scaler = functools.partial(torch.amp.GradScaler, standin.device.type)
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(runner_mod, 'get_device',
                              lambda: standin.device.type))
        stack.enter_context(
            mock.patch.object(amp_wrapper, 'is_cuda_available', lambda: True))
        stack.enter_context(
            mock.patch.object(amp_wrapper, 'GradScaler', scaler))
        stack.enter_context(
            mock.patch.object(runner_amp, 'autocast', recorded_autocast))
        yield


def _strict(standin: DeviceStandIn, fn, on_result=None):
    """``fn`` run inside ``standin.strict()``."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with standin.strict():
            out = fn(*args, **kwargs)
        if on_result is not None:
            on_result(out)
        return out

    return wrapped


def _quiet_checkpoints(cfg: Config) -> None:
    """No checkpoint or validation inside the stand-in training run."""
    hooks = cfg.get('default_hooks') or {}
    if hooks.get('checkpoint') is not None:
        hooks['checkpoint']['interval'] = 10**9
        hooks['checkpoint']['save_last'] = False
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg['val_interval'] = 10**9


def _off_device(runner, report: DeviceReport) -> None:
    from mmengine.model import is_model_wrapper
    model = runner.model
    model = model.module if is_model_wrapper(model) else model
    params, buffers = standin_tensors(model)
    report.off_device += [f'parameter {n}' for n in params]
    report.off_device += [f'buffer {n}' for n in buffers]
    for hook in runner.hooks:  # PseudoLabelHook keeps the teacher
        net = getattr(hook, 'teacher', None)
        if not isinstance(net, torch.nn.Module):
            continue
        tp, tb = standin_tensors(net)
        report.off_device += [f'teacher parameter {n}' for n in tp]
        report.off_device += [f'teacher buffer {n}' for n in tb]
        report.teacher_dtype = next(net.parameters()).dtype
    optim = getattr(runner.optim_wrapper, 'optimizer', None)
    if optim is not None:
        for i, state in enumerate(optim.state.values()):
            for key, value in state.items():
                # step counters are host scalars by PyTorch's design
                if isinstance(value, torch.Tensor) and value.dim() and \
                        not isinstance(value, StandInTensor):
                    report.off_device.append(f'optimizer state {i}.{key}')
    scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
    if scaler is not None:
        report.loss_scale = float(scaler.get_scale())


def check_device_placement(train_cfg: Optional[Config] = None,
                           test_cfg: Optional[Config] = None,
                           iters: int = 1,
                           standin: Optional[DeviceStandIn] = None
                           ) -> DeviceReport:
    """Train and/or evaluate a config on the stand-in device.

    Args:
        train_cfg (Config, optional): a training config; ``iters``
            iterations of it run (no validation, no checkpoint).
        test_cfg (Config, optional): a config with ``test_dataloader``,
            ``test_evaluator`` and ``test_cfg``; one full evaluation runs.
        iters (int): training iterations. Defaults to 1.
        standin (DeviceStandIn, optional): the stand-in to use (e.g. with
            other ``watched`` packages). Defaults to a new one watching
            ``hapvr_mm``.

    Returns:
        DeviceReport: losses, metrics and what the stand-in saw.

    Raises:
        DevicePlacementError: an operation mixed host and device tensors.
        ValueError: neither config was given.
    """
    from mmengine.runner import Runner
    if train_cfg is None and test_cfg is None:
        raise ValueError('check_device_placement needs a train_cfg, a '
                         'test_cfg or both')
    standin = standin or DeviceStandIn()
    report = DeviceReport()

    def record_losses(out):
        report.losses.append({
            k:
            float(v.detach().elem if isinstance(v, StandInTensor) else v)
            for k, v in out.items()
        })

    with standin, standin_runtime(standin, report):
        if train_cfg is not None:
            cfg = copy.deepcopy(train_cfg)
            cfg.train_cfg['max_iters'] = iters
            _quiet_checkpoints(cfg)
            runner = Runner.from_cfg(cfg)
            model = runner.model
            model.train_step = _strict(standin, model.train_step,
                                       record_losses)
            runner.train()
            _off_device(runner, report)
        if test_cfg is not None:
            cfg = copy.deepcopy(test_cfg)
            cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
            runner = Runner.from_cfg(cfg)
            model = runner.model
            model.test_step = _strict(standin, model.test_step)
            model.video_similarity = _strict(standin, model.video_similarity)
            report.metrics = dict(runner.test())
    report.host_reads = dict(standin.host_reads)
    report.host_creations = list(standin.host_creations)
    return report
