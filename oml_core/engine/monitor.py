"""The one "best so far" record of a monitored metric, shared by best-checkpoint selection, early stopping and any
plugin that asks ``engine.monitor(metric, mode)``; it is updated once per validation and saved in checkpoints."""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

MonitorMode = Literal["max", "min"]


def is_better(value: float, reference: float | None, mode: MonitorMode, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``reference`` by more than ``min_delta`` (NaN never does; anything beats None).

    Example:
        >>> is_better(0.6, 0.5, "max"), is_better(0.6, 0.5, "min"), is_better(0.52, 0.5, "max", min_delta=0.05)
        (True, False, False)
    """
    if math.isnan(value):
        return False
    if reference is None or math.isnan(reference):
        return True
    return value > reference + min_delta if mode == "max" else value < reference - min_delta


@attrs.define
class BestMonitor:
    """The values of ``metric`` at each validation after training started (the one before training is a
    baseline, never a candidate for ``best.pt``), the best of them and where it was reached.

    Example:
        >>> monitor = BestMonitor("OVERALL/cmc/1")
        >>> [monitor.update({"OVERALL/cmc/1": v}, step=s) for s, v in [(4, 0.5), (8, 0.7), (12, 0.6)]]
        [True, True, False]
        >>> monitor.best, monitor.best_step, monitor.validations_without_improvement()
        (0.7, 8, 1)
    """

    metric: str
    mode: MonitorMode = "max"
    values: list[float] = attrs.field(factory=list)
    steps: list[int] = attrs.field(factory=list)
    best: float | None = None
    best_step: int | None = None
    improved: bool = False  # did the latest validation improve the best

    def update(self, metrics: dict[str, float], step: int) -> bool:
        """Record one validation (a missing metric counts as NaN); returns whether it is a new best."""
        self.improved = False
        if step == 0:
            return False
        value = float(metrics.get(self.metric, math.nan))
        self.values.append(value)
        self.steps.append(step)
        if is_better(value, self.best, self.mode):
            self.best, self.best_step, self.improved = value, step, True
        return self.improved

    def validations_without_improvement(self, min_delta: float = 0.0) -> int:
        """How many validations in a row (the latest ones) did not beat the best before them by ``min_delta``."""
        reference: float | None = None
        count = 0
        for value in self.values:
            if is_better(value, reference, self.mode, min_delta if reference is not None else 0.0):
                reference, count = value, 0
            else:
                count += 1
        return count

    def state_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> BestMonitor:
        return cls(**state)
