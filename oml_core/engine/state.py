"""The engine's typed state and the values its hooks exchange."""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch

FitStatus = Literal["completed", "stopped", "interrupted", "failed"]


@attrs.define
class State:
    """Where a run is. Counters count what is *done*: ``epoch`` finished epochs, ``step`` finished batches,
    ``batch_in_epoch`` finished batches of the current epoch (all restored from a checkpoint on resume).

    Stopping is a request: ``state.request_stop("why")``; the engine stops at the next batch boundary.
    """

    max_epochs: int
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    last_loss: float | None = None
    metrics: dict[str, float] = attrs.field(factory=dict)
    history: list[dict[str, Any]] = attrs.field(factory=list)
    last_validated_step: int | None = None
    stop_requested: bool = False
    stop_reason: str | None = None
    interrupted: bool = False
    rank: int = 0
    world_size: int = 1

    def request_stop(self, reason: str) -> None:
        """Ask the engine to stop after the current batch (early stopping, a time budget, a plugin's decision)."""
        if not self.stop_requested:
            self.stop_requested, self.stop_reason = True, reason

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def counters(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step, "batch_in_epoch": self.batch_in_epoch}


@attrs.frozen
class StepOutput:
    """What a training step returns: the (detached) loss and the criterion's logs for this batch."""

    loss: torch.Tensor
    logs: dict[str, float] = attrs.field(factory=dict)
    embeddings: torch.Tensor | None = None


@attrs.frozen(kw_only=True)
class EngineOptions:
    """Options of the built-in behaviour; ``oml train`` fills them from the config."""

    max_epochs: int = 1
    seed: int = 42
    device: str = "auto"
    grad_clip_norm: float | None = None
    accumulate_grad_batches: int = 1
    amp: bool = True
    validate_every_n_epochs: int = 1
    validate_before_training: bool = False
    validation_batch_size: int = 64
    num_workers: int = 0
    progress_bar: bool = True
    log_every_n_steps: int = 1
    run_dir: str | None = None
    metric_args: dict[str, Any] = attrs.field(factory=dict)
    checkpoint_every_n_epochs: int = 1
    checkpoint_every_n_steps: int | None = None
    monitor: str | None = "OVERALL/cmc/1"
    monitor_mode: Literal["max", "min"] = "max"
    early_stopping_patience: int | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"
