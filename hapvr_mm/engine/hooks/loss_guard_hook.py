"""Stop a diverging training before it saves anything non-finite."""
import math
import os.path as osp
from collections import deque
from typing import Any, Mapping, Optional

import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

from ...utils.errors import TrainingDivergedError

__all__ = ['LossGuardHook']


def _as_float(value: Any) -> Optional[float]:
    """A scalar loss value as a Python float (None if not a scalar)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            value = value.detach().float().mean()
        return float(value.detach().float().item())
    if isinstance(value, (int, float)):
        return float(value)
    return None


@HOOKS.register_module()
class LossGuardHook(Hook):
    """Stop training at the first non-finite (or exploding) loss.

    After every training iteration the loss values returned by
    ``train_step`` (every key containing ``'loss'``) are checked; a NaN or
    infinite value, or a loss whose magnitude exceeds ``explosion_factor``
    times the running median of the last ``window`` losses (after
    ``warmup`` iterations), raises
    :class:`~hapvr_mm.utils.TrainingDivergedError` naming the iteration,
    the values and the last good checkpoint. Its
    priority (``'ABOVE_NORMAL'``) runs it before the ``CheckpointHook``
    (``'VERY_LOW'``), so the diverged iteration is never saved; and every
    checkpoint is checked in ``before_save_checkpoint``: a non-finite
    parameter or buffer stops the run before the file is written, so
    ``last_checkpoint`` keeps naming a finite one and ``max_keep_ckpts``
    never deletes the last finite checkpoints.

    Skipped steps of a dynamic AMP loss scaler (infinite gradients) are not
    failures: the guard looks at the loss values and the saved parameters,
    which such a skipped step leaves finite.

    Args:
        explosion_factor (float, optional): stop when ``|loss| >
            explosion_factor * max(|median|, min_scale)`` of the last
            ``window`` losses. None: only non-finite losses stop the run.
            Defaults to 1e3.
        window (int): losses in the running median. Defaults to 50.
        warmup (int): iterations seen before the explosion rule applies.
            Defaults to 1: the first loss already sets the scale, so a
            learning rate that multiplies the loss by 1e10 in one step
            (lr 1000 on the demo: 12.9, then 4.6e11) stops at iteration 2.
        min_scale (float): floor of the median's magnitude, so a loss near
            0 does not make any small change an explosion. Defaults to 1.0.
        check_checkpoint (bool): check the state dict of every checkpoint
            before it is written. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 explosion_factor: Optional[float] = 1e3,
                 window: int = 50,
                 warmup: int = 1,
                 min_scale: float = 1.0,
                 check_checkpoint: bool = True) -> None:
        if explosion_factor is not None and not (
                isinstance(explosion_factor, (int, float))
                and explosion_factor > 1 and math.isfinite(explosion_factor)):
            raise ValueError('explosion_factor must be None or a finite '
                             f'number > 1, got {explosion_factor!r}')
        for name, value in (('window', window), ('warmup', warmup)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got '
                                 f'{value!r}')
        if not (isinstance(min_scale, (int, float)) and min_scale > 0):
            raise ValueError(f'min_scale must be > 0, got {min_scale!r}')
        self.explosion_factor = explosion_factor
        self.window = window
        self.warmup = warmup
        self.min_scale = float(min_scale)
        self.check_checkpoint = check_checkpoint
        self._history: deque = deque(maxlen=window)
        self._seen = 0

    # ------------------------------------------------------------------ #
    @staticmethod
    def _last_checkpoint(runner) -> str:
        """The last checkpoint written in the work dir, as text."""
        path = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            with open(path) as f:
                last = f.read().strip()
        except OSError:
            last = ''
        if not last:
            return ('no checkpoint was saved yet: lower the learning rate '
                    'and start again')
        return (f'last good checkpoint: {last} (resume from it with '
                '--resume once the cause is fixed, e.g. a lower learning '
                'rate)')

    def _stop(self, runner, what: str) -> None:
        raise TrainingDivergedError(
            f'training diverged at iteration {runner.iter + 1}: {what}; '
            f'nothing of this iteration was saved; '
            f'{self._last_checkpoint(runner)}')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[Mapping[str, Any]] = None) -> None:
        """Check the iteration's losses.

        Raises:
            TrainingDivergedError: a non-finite or exploding loss.
        """
        if not isinstance(outputs, Mapping):
            return
        losses = {}
        for key, value in outputs.items():
            if 'loss' in str(key):
                val = _as_float(value)
                if val is not None:
                    losses[str(key)] = val
        if not losses:
            return
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            shown = ', '.join(f'{k}={v}' for k, v in bad.items())
            self._stop(runner, f'non-finite loss ({shown})')
        total = losses.get('loss', sum(losses.values()))
        if self.explosion_factor is not None and \
                self._seen >= self.warmup and self._history:
            ordered = sorted(self._history)
            median = ordered[len(ordered) // 2]
            limit = self.explosion_factor * max(abs(median), self.min_scale)
            if abs(total) > limit:
                self._stop(
                    runner, f'loss {total:.4g} exploded (more than '
                    f'{self.explosion_factor:g} x the running median '
                    f'{median:.4g} of the last {len(ordered)} iterations; '
                    'explosion_factor of LossGuardHook)')
        self._history.append(total)
        self._seen += 1

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to write a checkpoint holding a non-finite value.

        Raises:
            TrainingDivergedError: naming the first non-finite tensor.
        """
        if not self.check_checkpoint:
            return
        state = checkpoint.get('state_dict', {}) if isinstance(
            checkpoint, Mapping) else {}
        for name, tensor in state.items():
            if isinstance(tensor, torch.Tensor) and \
                    tensor.is_floating_point() and \
                    not bool(torch.isfinite(tensor).all()):
                self._stop(
                    runner, f'parameter {name!r} holds NaN or inf values '
                    '(the checkpoint was not written)')
