"""Built-in LR schedules (the ``schedulers`` registry kind), each stepping per ``step`` or per ``epoch``:
cosine (with linear warm-up), one-cycle, step, multistep and reduce-on-plateau (which follows the engine's shared
monitor of a validation metric)."""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs
import torch

Interval = Literal["epoch", "step"]


@attrs.frozen
class LRSchedule:
    """What a scheduler factory returns: the torch scheduler, when it steps and, for plateau schedules, the
    monitored metric (stepped after each validation with its value)."""

    scheduler: Any
    interval: Interval = "epoch"
    monitor: str | None = None


def _total(interval: Interval, epochs: int, steps_per_epoch: int) -> int:
    return max(1, epochs if interval == "epoch" else epochs * max(1, steps_per_epoch))


class WarmupCosine:
    """LR factor: linear from ``start_factor`` to 1 over ``warmup`` intervals, then cosine down to ``min_factor``
    (a plain object, so that LambdaLR's state_dict saves it and a resumed run continues the same curve).

    Example:
        >>> schedule = WarmupCosine(total=10, warmup=2, start_factor=0.0, min_factor=0.0)
        >>> [round(schedule(i), 3) for i in (0, 1, 2, 10)]
        [0.0, 0.5, 1.0, 0.0]
    """

    def __init__(self, total: int, warmup: int, start_factor: float, min_factor: float) -> None:
        self.total, self.warmup, self.start_factor, self.min_factor = total, warmup, start_factor, min_factor

    def __call__(self, index: int) -> float:
        if index < self.warmup:
            return self.start_factor + (1.0 - self.start_factor) * index / self.warmup
        progress = min(1.0, (index - self.warmup) / max(1, self.total - self.warmup))
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@attrs.frozen(kw_only=True)
class CosineConfig:
    """Cosine decay over the whole run down to ``eta_min`` (absolute LR), after ``warmup`` intervals of linear
    warm-up from ``warmup_start_factor`` x the LR."""

    interval: Interval = "epoch"
    eta_min: float = 0.0
    warmup: int = 0
    warmup_start_factor: float = 0.01


def build_cosine(
    *, optimizer: Any, epochs: int, steps_per_epoch: int = 1, interval: Interval, eta_min: float, warmup: int,
    warmup_start_factor: float,
) -> LRSchedule:  # fmt: skip
    """Cosine decay (with optional warm-up) over ``epochs`` (or ``epochs * steps_per_epoch`` steps).

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> build_cosine(optimizer=opt, epochs=4, interval="epoch", eta_min=0.0, warmup=0, warmup_start_factor=0.01).interval
        'epoch'
    """
    total = _total(interval, epochs, steps_per_epoch)
    if warmup <= 0:
        return LRSchedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=eta_min), interval)
    base = min(group["lr"] for group in optimizer.param_groups)
    curve = WarmupCosine(total, warmup, warmup_start_factor, min_factor=eta_min / base if base else 0.0)
    return LRSchedule(torch.optim.lr_scheduler.LambdaLR(optimizer, curve), interval)


@attrs.frozen(kw_only=True)
class OneCycleConfig:
    """One-cycle: up to ``max_lr_factor`` x each group's LR over ``pct_start`` of the run, then down (per step)."""

    interval: Interval = "step"
    max_lr_factor: float = 10.0
    pct_start: float = 0.3


def build_one_cycle(
    *, optimizer: Any, epochs: int, steps_per_epoch: int = 1, interval: Interval, max_lr_factor: float, pct_start: float
) -> LRSchedule:
    max_lr = [group["lr"] * max_lr_factor for group in optimizer.param_groups]
    total = _total(interval, epochs, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct_start)
    return LRSchedule(scheduler, interval)


@attrs.frozen(kw_only=True)
class StepConfig:
    """Multiply the LR by ``gamma`` every ``step_size`` intervals."""

    interval: Interval = "epoch"
    step_size: int = 10
    gamma: float = 0.1


def build_step(*, optimizer: Any, interval: Interval, step_size: int, gamma: float) -> LRSchedule:
    return LRSchedule(torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma), interval)


@attrs.frozen(kw_only=True)
class MultiStepConfig:
    """Multiply the LR by ``gamma`` at each of ``milestones`` (in intervals)."""

    interval: Interval = "epoch"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


def build_multistep(*, optimizer: Any, interval: Interval, milestones: tuple[int, ...], gamma: float) -> LRSchedule:
    return LRSchedule(torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma), interval)


@attrs.frozen(kw_only=True)
class PlateauConfig:
    """Multiply the LR by ``factor`` when ``monitor`` has not improved for ``patience`` validations."""

    monitor: str = "OVERALL/cmc/1"
    mode: Literal["max", "min"] = "max"
    factor: float = 0.1
    patience: int = 2
    min_lr: float = 0.0


def build_plateau(
    *, optimizer: Any, monitor: str, mode: Literal["max", "min"], factor: float, patience: int, min_lr: float
) -> LRSchedule:
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr)
    return LRSchedule(scheduler, "epoch", monitor=monitor)
