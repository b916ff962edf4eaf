"""Built-in callbacks around the "best so far" monitor: checkpoints (``last.pt``, ``best.pt``) and early stopping.

Both read the engine's shared :class:`~oml_core.engine.monitor.BestMonitor` (``engine.monitor(metric, mode)``), so
one validation updates one record, saved once in each checkpoint.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oml_core._markers import hookimpl
from oml_core.config import field_error
from oml_core.engine.checkpoint import CheckpointError, CheckpointWriter
from oml_core.engine.monitor import MonitorMode
from oml_core.engine.state import FitStatus
from oml_core.files import remove_temp_files

if TYPE_CHECKING:
    from oml_core.engine.core import Engine


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise field_error(attribute, f"{attribute.name} must be >= 0, got {value}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 1:
        raise field_error(attribute, f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class CheckpointingConfig:
    """``last.pt`` every N epochs and/or steps (and at the end of a run that did not fail); ``best.pt`` whenever
    ``monitor`` (a flat metric name) reaches a new best; ``keep_last`` > 1 also keeps that many of the latest
    periodic checkpoints as ``step-<N>.pt``."""

    every_n_epochs: int = attrs.field(default=1, validator=_non_negative)
    every_n_steps: int | None = attrs.field(default=None, validator=_positive)
    keep_last: int = attrs.field(default=1, validator=_positive)
    monitor: str | None = "OVERALL/cmc/1"
    mode: MonitorMode = "max"


class Checkpointing:
    """Writes ``checkpoints/last.pt`` every N epochs (and/or steps) and when a run ends without failing, and
    ``checkpoints/best.pt`` (the same file as that ``last.pt``, hard-linked) after a validation that improved the
    monitored metric. It runs after every other plugin of the same hook (``trylast``), so a checkpoint holds the
    state after the LR scheduler stepped and the validation was recorded: a resumed run continues exactly. Training
    waits only while the state is serialised; the fsync and rename finish in the background (see
    :class:`~oml_core.engine.checkpoint.CheckpointWriter`) and the run's end waits for them: a process killed in
    that moment leaves the previous ``last.pt``, which resumes exactly too. A failed run writes nothing new, so the
    last good checkpoint survives a NaN loss or a plugin that raises.

    Example:
        >>> Checkpointing(every_n_steps=100, monitor="OVERALL/map/5").every_n_steps
        100
    """

    builtin_name = "checkpointing"

    def __init__(
        self,
        every_n_epochs: int = 1,
        every_n_steps: int | None = None,
        keep_last: int = 1,
        monitor: str | None = "OVERALL/cmc/1",
        mode: MonitorMode = "max",
    ) -> None:
        self.every_n_epochs, self.every_n_steps, self.keep_last = every_n_epochs, every_n_steps, keep_last
        self.monitor, self.mode = monitor, mode
        self._best_pending = False
        self._saved_at_step: int | None = None
        self._writer = CheckpointWriter()

    @staticmethod
    def _path(engine: Engine, name: str) -> Path:
        assert engine.run_dir is not None
        return engine.run_dir / "checkpoints" / f"{name}.pt"

    def _save(self, engine: Engine) -> None:
        if engine.run_dir is None:
            return
        checkpoint = engine.checkpoint_dict()  # on every rank: a plugin's oml_save_checkpoint may gather
        self._saved_at_step = engine.state.step
        if not engine.state.is_main_process:
            return
        last = self._path(engine, "last")
        also, prune = [], None
        if self._best_pending:
            also.append(self._path(engine, "best"))
            self._best_pending = False
        if self.keep_last > 1:
            also.append(self._path(engine, f"step-{engine.state.step:08d}"))
            prune = functools.partial(_keep_newest, last.parent, "step-*.pt", self.keep_last)
        self._writer.save(checkpoint, last, also=also, then=prune)

    def wait(self) -> None:
        """Block until the checkpoint being written is on disk (for a plugin that reads ``last.pt`` mid-run)."""
        self._writer.wait()

    @hookimpl(tryfirst=True)
    def oml_fit_start(self, engine: Engine) -> None:
        if engine.run_dir is not None and engine.state.is_main_process:
            # a run killed while a write was in flight left its temp file (as large as a checkpoint); the
            # previous complete checkpoint is the one resumed from
            remove_temp_files(engine.run_dir / "checkpoints")
        if self.monitor is not None:
            engine.monitor(self.monitor, self.mode)  # monitored from the first validation on

    @hookimpl(trylast=True)
    def oml_validation_end(self, engine: Engine) -> None:
        if self.monitor is not None and engine.monitor(self.monitor, self.mode).improved:
            self._best_pending = True

    @hookimpl(trylast=True)
    def oml_train_batch_end(self, engine: Engine) -> None:
        if self.every_n_steps and engine.state.step % self.every_n_steps == 0:
            self._save(engine)

    @hookimpl(trylast=True)
    def oml_epoch_end(self, engine: Engine) -> None:
        every = self.every_n_epochs
        if (every and engine.state.epoch % every == 0) or self._best_pending:
            self._save(engine)

    @hookimpl(wrapper=True)
    def oml_fit_end(self, engine: Engine, status: FitStatus) -> Generator[None, None, None]:
        """The final checkpoint, on disk before any plain ``oml_fit_end`` runs (a tracker uploading ``best.pt``,
        a plugin reading ``last.pt``): a wrapper, inside the final validation's."""
        if status != "failed":
            if self._saved_at_step != engine.state.step or self._best_pending:
                self._save(engine)
            self._writer.wait()
        else:
            try:  # the run failed: the write in flight is still a good checkpoint; its error must not hide the run's
                self._writer.wait()
            except CheckpointError as exc:
                print(f"oml: {exc}", file=sys.stderr)
        return (yield)


def _keep_newest(folder: Path, pattern: str, keep: int) -> None:
    for old in sorted(folder.glob(pattern))[:-keep]:
        old.unlink(missing_ok=True)


@attrs.frozen(kw_only=True)
class EarlyStoppingConfig:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` validations in a row."""

    patience: int = attrs.field(default=3, validator=_positive)
    monitor: str = "OVERALL/cmc/1"
    mode: MonitorMode = "max"
    min_delta: float = attrs.field(default=0.0, validator=_non_negative)


class EarlyStopping:
    """Requests a stop (the run ends as ``stopped``, after a final validation if the last one is stale) when the
    monitored metric has not improved for ``patience`` validations. Its state is the shared monitor's, which every
    checkpoint holds.

    Example:
        >>> EarlyStopping(patience=5, min_delta=0.01).patience
        5
    """

    builtin_name = "early_stopping"

    def __init__(
        self, patience: int = 3, monitor: str = "OVERALL/cmc/1", mode: MonitorMode = "max", min_delta: float = 0.0
    ) -> None:
        self.patience, self.monitor, self.mode, self.min_delta = patience, monitor, mode, min_delta

    @hookimpl(tryfirst=True)
    def oml_fit_start(self, engine: Engine) -> None:
        engine.monitor(self.monitor, self.mode)  # monitored from the first validation on

    @hookimpl
    def oml_validation_end(self, engine: Engine) -> None:
        stale = engine.monitor(self.monitor, self.mode).validations_without_improvement(self.min_delta)
        if stale >= self.patience:
            engine.state.request_stop(f"early stopping: {self.monitor} did not improve for {self.patience} validations")
