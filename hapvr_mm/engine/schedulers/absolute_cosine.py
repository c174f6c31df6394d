"""Cosine learning-rate decay on the absolute iteration count.

HAP-VR's schedule (docs/method.md section 1) warms the learning rate up
linearly for 1,000 iterations and then follows

    lr(t) = eta_min + (lr - eta_min) / 2 * (1 + cos(pi * t / T_max))

with ``t`` the ABSOLUTE iteration and ``T_max`` the whole run (30,000), not
``t - 1000`` over the 29,000 post-warm-up iterations as mmengine's
``CosineAnnealingLR(begin=1000)`` computes it. With ``eta_min = 0.1 lr``
this is ``0.1 lr + 0.45 lr (1 + cos(pi t / 30000))``.
"""
import math
from typing import List, Optional, Union

from mmaction.registry import PARAM_SCHEDULERS
from mmengine.optim import BaseOptimWrapper
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from torch.optim import Optimizer

__all__ = ['absolute_cosine_lr', 'AbsoluteCosineAnnealingLR']


def absolute_cosine_lr(step: int, base: float, eta_min: float,
                       T_max: int) -> float:
    """The cosine value at an absolute step.

    Args:
        step (int): absolute iteration ``t`` (0-based).
        base (float): the value at ``t = 0`` of the cosine (the base lr).
        eta_min (float): the value at ``t = T_max``.
        T_max (int): the half period, in iterations.

    Returns:
        float: ``eta_min + (base - eta_min) (1 + cos(pi t / T_max)) / 2``.
    """
    return eta_min + 0.5 * (base -
                            eta_min) * (1.0 + math.cos(math.pi * step / T_max))


class AbsoluteCosineAnnealingParamScheduler(_ParamScheduler):
    """Closed-form cosine whose phase is the absolute step.

    Active on the steps ``[begin, end)`` like every mmengine scheduler,
    but the cosine is evaluated at the absolute step ``t`` (``begin`` plus
    the steps taken since ``begin``), so a warm-up before ``begin`` does not
    shift it. The value is computed from the base value (closed form), never
    from the current one, so it does not depend on what another scheduler
    set before ``begin``.

    Args:
        optimizer (Optimizer | BaseOptimWrapper): the optimizer.
        param_name (str): the parameter to schedule, e.g. ``lr``.
        T_max (int | None): half period of the cosine in absolute steps;
            None: ``end``. Default: None.
        eta_min (float | None): the value at ``T_max``. Default: None.
        eta_min_ratio (float | None): ``eta_min`` as a fraction of the base
            value (give one of ``eta_min`` / ``eta_min_ratio``; neither
            means 0). Default: None.
        begin (int): first step of the scheduler. Default: 0.
        end (int): step after the last one. Default: INF.
        last_step (int): see mmengine. Default: -1.
        by_epoch (bool): steps are epochs. Default: True.
        verbose (bool): print every update. Default: False.
    """

    def __init__(self,
                 optimizer: Union[Optimizer, BaseOptimWrapper],
                 param_name: str,
                 T_max: Optional[int] = None,
                 eta_min: Optional[float] = None,
                 eta_min_ratio: Optional[float] = None,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False) -> None:
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError('give eta_min or eta_min_ratio, not both (got '
                             f'{eta_min} and {eta_min_ratio})')
        if T_max is None:
            if end == INF:
                raise ValueError('AbsoluteCosineAnnealing needs T_max or a '
                                 'finite end')
            T_max = end
        if T_max <= 0:
            raise ValueError(f'T_max must be > 0, got {T_max}')
        self.T_max = int(T_max)
        self.eta_min = eta_min
        self.eta_min_ratio = eta_min_ratio
        super().__init__(
            optimizer,
            param_name=param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose)

    def _eta_min(self, base: float) -> float:
        if self.eta_min_ratio is not None:
            return base * self.eta_min_ratio
        return 0.0 if self.eta_min is None else self.eta_min

    def _get_value(self) -> List[float]:
        """Closed-form values at the absolute step ``begin + last_step``."""
        step = self.begin + self.last_step
        return [
            absolute_cosine_lr(step, base, self._eta_min(base), self.T_max)
            for base in self.base_values
        ]


@PARAM_SCHEDULERS.register_module()
class AbsoluteCosineAnnealingLR(LRSchedulerMixin,
                                AbsoluteCosineAnnealingParamScheduler):
    """Learning-rate cosine on the absolute iteration (HAP-VR's schedule).

    ``lr(t) = eta_min + (lr - eta_min) (1 + cos(pi t / T_max)) / 2`` for
    ``begin <= t < end``, ``t`` the absolute iteration. The paper recipe
    uses ``begin=1000, end=30000, T_max=30000, eta_min=0.1 lr`` after a
    1,000-iteration ``LinearLR`` warm-up from ``0.01 lr``.

    Args:
        optimizer (Optimizer | BaseOptimWrapper): the optimizer.
        T_max (int | None): half period; None: ``end``. Default: None.
        eta_min (float | None): final learning rate. Default: None.
        eta_min_ratio (float | None): final rate / base rate. Default: None.
        begin (int): first iteration. Default: 0.
        end (int): iteration after the last. Default: INF.
        last_step (int): see mmengine. Default: -1.
        by_epoch (bool): steps are epochs. Default: True.
        verbose (bool): print every update. Default: False.
    """
