"""The engine's built-in behaviour, each a plugin on the lifecycle hooks (as pytest's built-ins are):
the default training step, seeding, LR schedulers, validation, checkpoints, early stopping, progress bars and
metric logging. ``default_plugins(engine)`` lists what an engine registers unless told ``builtins=False``."""

from __future__ import annotations

import random
import sys
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from oml_core._markers import hookimpl
from oml_core.engine.checkpointing import Checkpointing, EarlyStopping
from oml_core.engine.state import FitStatus, StepOutput
from oml_core.errors import OMLError
from oml_core.inference import to_device
from oml_core.protocols import LoggerWithOutcome

if TYPE_CHECKING:
    from oml_core.engine.core import Engine


class NonFiniteLossError(OMLError):
    """The loss became NaN or infinite; the run stops and the last good checkpoint is kept."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs.

    Example:
        >>> seed_everything(0); a = torch.rand(1); seed_everything(0); bool(a == torch.rand(1))
        True
    """
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"OVERALL": {"cmc": {1: 0.5}}}`` -> ``{"OVERALL/cmc/1": 0.5}``.

    Example:
        >>> flatten_metrics({"OVERALL": {"cmc": {1: torch.tensor(0.5)}}})
        {'OVERALL/cmc/1': 0.5}
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, prefix=f"{name}/"))
        else:
            flat[name] = float(value)
    return flat


# ---------------------------------------------------------------------------------------------------- the step
class DefaultTrainStep:
    """Forward, loss, backward, gradient accumulation and clipping, optimizer step; CUDA autocast (bf16) on GPU."""

    builtin_name = "train_step"

    @hookimpl(trylast=True)
    def oml_train_step(self, engine: Engine, batch: dict[str, Any]) -> StepOutput:
        options, state = engine.options, engine.state
        engine.training_model.train()
        images = to_device(batch["input_tensors"], engine.device)
        labels = batch["labels"].to(engine.device, non_blocking=True)
        use_amp = options.amp and engine.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.autocast(device_type=engine.device.type, dtype=torch.bfloat16, enabled=use_amp):
            embeddings = engine.training_model(images)
        loss = engine.criterion(embeddings.float(), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at epoch {state.epoch + 1}, step {state.step + 1} (batch {state.batch_in_epoch + 1} "
                "of the epoch); the run stops here and the last checkpoint written before is kept. Lower the learning rate, "
                "set grad_clip_norm, or check the data of this batch."
            )
        backward_and_step(engine, loss)
        logs = {k: float(v) for k, v in (getattr(engine.criterion, "last_logs", None) or {}).items()}
        return StepOutput(loss=loss.detach(), logs=logs, embeddings=embeddings.detach())


def backward_and_step(engine: Engine, loss: torch.Tensor) -> None:
    """Backward pass with gradient accumulation (``options.accumulate_grad_batches``; the last batch of an epoch
    always steps), gradient clipping (``options.grad_clip_norm``) and the optimizer step. For custom train steps.

    Example (inside an ``oml_train_step`` implementation)::

        loss = engine.criterion(engine.training_model(images), labels)
        backward_and_step(engine, loss)
    """
    options, state = engine.options, engine.state
    (loss / options.accumulate_grad_batches).backward()
    batches_in_epoch = len(engine.batch_sampler) if engine.batch_sampler is not None else 0
    last_of_epoch = state.batch_in_epoch + 1 == batches_in_epoch
    if (state.batch_in_epoch + 1) % options.accumulate_grad_batches == 0 or last_of_epoch:
        if options.grad_clip_norm is not None:
            params = [p for group in engine.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, options.grad_clip_norm)
        engine.optimizer.step()
        engine.optimizer.zero_grad(set_to_none=True)


class Seeding:
    """Seeds every RNG when a fresh run starts (a resumed run restores the RNG states from its checkpoint)."""

    builtin_name = "seeding"

    @hookimpl(tryfirst=True)
    def oml_fit_start(self, engine: Engine) -> None:
        if engine.state.step == 0:
            seed_everything(engine.options.seed + engine.state.rank)


class LRScheduling:
    """Steps ``engine.schedule`` every batch or every epoch (its ``interval``), before any plugin of the same hook
    sees the batch's end (``tryfirst``), so checkpoints hold the stepped scheduler; a plateau schedule steps after
    each validation of the trained model, with the value of its monitored metric."""

    builtin_name = "lr_scheduling"

    @hookimpl(tryfirst=True)
    def oml_train_batch_end(self, engine: Engine) -> None:
        schedule = engine.schedule
        if schedule is not None and schedule.monitor is None and schedule.interval == "step":
            schedule.scheduler.step()

    @hookimpl
    def oml_epoch_end(self, engine: Engine) -> None:
        schedule = engine.schedule
        if schedule is not None and schedule.monitor is None and schedule.interval == "epoch":
            schedule.scheduler.step()

    @hookimpl
    def oml_validation_end(self, engine: Engine) -> None:
        schedule = engine.schedule
        if schedule is not None and schedule.monitor is not None and engine.state.step > 0:
            schedule.scheduler.step(engine.state.metrics.get(schedule.monitor, float("nan")))


# ---------------------------------------------------------------------------------------------------- validation
def run_validation(engine: Engine) -> dict[str, Any]:
    """Same as ``engine.validate()`` (kept for callers of the former API)."""
    return engine.validate()


class EmbeddingValidation:
    """The default ``oml_validate``: embed ``engine.val_dataset`` and compute EmbeddingMetrics on it (rank 0)."""

    builtin_name = "embedding_validation"

    @hookimpl(trylast=True)
    def oml_validate(self, engine: Engine) -> dict[str, Any]:
        from oml_core.engine.validation import compute_dataset_metrics, embed_dataset

        if engine.val_dataset is None:
            raise OMLError("validation needs a validation dataset (val_dataset / the 'validation' split of the dataframe)")
        embeddings = embed_dataset(engine)
        engine.hooks.embeddings_ready(embeddings, engine.val_dataset)
        return compute_dataset_metrics(engine, embeddings) if engine.state.is_main_process else {}


class Validation:
    """Validates before training (if asked) and every ``validate_every_n_epochs`` epochs; prints the metrics."""

    builtin_name = "validation"

    @hookimpl
    def oml_fit_start(self, engine: Engine) -> None:
        if engine.options.validate_before_training and engine.state.step == 0 and engine.val_dataset is not None:
            engine.validate()

    @hookimpl(tryfirst=True)
    def oml_epoch_end(self, engine: Engine) -> None:
        every = engine.options.validate_every_n_epochs
        if engine.val_dataset is not None and every > 0 and engine.state.epoch % every == 0:
            engine.validate()

    @hookimpl(wrapper=True, tryfirst=True)
    def oml_fit_end(self, engine: Engine, status: FitStatus) -> Generator[None, None, None]:
        """A run that ends (completed, or stopped early) with a stale last validation validates once more, so
        that its final metrics and ``best.pt`` cover the final model. A wrapper, outermost: this runs before every
        other ``oml_fit_end`` (the final checkpoint, then the plugins that upload or read it)."""
        state = engine.state
        stale = state.last_validated_step != state.step and state.step > 0
        if status in ("completed", "stopped") and stale and engine.val_dataset is not None:
            if engine.options.validate_every_n_epochs > 0 or engine.options.validate_before_training:
                engine.validate()
        return (yield)

    @hookimpl
    def oml_validation_end(self, engine: Engine, metrics: dict[str, Any]) -> None:
        if engine.state.is_main_process:
            overall = flatten_metrics(metrics.get("OVERALL", {}))
            shown = "  ".join(f"{name.replace('/', '@')}={value:.4f}" for name, value in overall.items())
            tqdm.write(f"validation (epoch {engine.state.epoch}, step {engine.state.step}): {shown}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------- output
class ProgressBar:
    """A tqdm bar per epoch (rank 0), with the running loss."""

    builtin_name = "progress_bar"

    def __init__(self) -> None:
        self.bar: tqdm[Any] | None = None

    @hookimpl
    def oml_epoch_start(self, engine: Engine) -> None:
        if engine.state.is_main_process and engine.batch_sampler is not None:
            state = engine.state
            self.bar = tqdm(
                total=len(engine.batch_sampler),
                initial=state.batch_in_epoch,
                desc=f"epoch {state.epoch + 1}/{state.max_epochs}",
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
            )

    @hookimpl
    def oml_train_batch_end(self, output: StepOutput) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{float(output.loss):.4f}", refresh=False)

    @hookimpl(tryfirst=True)
    def oml_epoch_end(self) -> None:
        self._close()

    @hookimpl
    def oml_fit_end(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricLogging:
    """Sends the training loss (every ``log_every_n_steps``) and validation metrics to ``engine.loggers``."""

    builtin_name = "metric_logging"

    def __init__(self, hparams: dict[str, Any] | None = None) -> None:
        self.hparams = hparams or {}

    @hookimpl
    def oml_fit_start(self, engine: Engine) -> None:
        if engine.state.is_main_process:
            for logger in engine.loggers:
                logger.log_hparams(self.hparams)

    @hookimpl
    def oml_train_batch_end(self, engine: Engine, output: StepOutput) -> None:
        every = engine.options.log_every_n_steps
        if every and engine.state.step % every == 0:
            metrics = {"train/loss": float(output.loss), **{f"train/{k}": v for k, v in output.logs.items()}}
            for i, group in enumerate(engine.optimizer.param_groups):
                metrics[f"train/lr/{i}"] = float(group["lr"])
            engine.hooks.log_metrics(metrics, engine.state.step)

    @hookimpl
    def oml_log_metrics(self, engine: Engine, metrics: dict[str, float], step: int) -> None:
        for logger in engine.loggers:
            logger.log_metrics(metrics, step)

    @hookimpl
    def oml_save_checkpoint(self, engine: Engine, checkpoint: dict[str, Any]) -> None:
        """Where each logger's files end now: a resumed run cuts what was logged after the checkpoint."""
        checkpoint["loggers"] = [_logger_state(logger) for logger in engine.loggers]

    @hookimpl
    def oml_load_checkpoint(self, engine: Engine, checkpoint: dict[str, Any]) -> None:
        if not engine.state.is_main_process:
            return
        for logger, saved in zip(engine.loggers, checkpoint.get("loggers", [])):
            if saved is not None and hasattr(logger, "load_state_dict"):
                logger.load_state_dict(saved)

    @hookimpl(trylast=True)
    def oml_fit_end(self, engine: Engine, status: FitStatus) -> None:
        if engine.state.is_main_process:
            for logger in engine.loggers:
                if isinstance(logger, LoggerWithOutcome):
                    logger.log_outcome(status)
                logger.close()


def _logger_state(logger: Any) -> dict[str, Any] | None:
    state_dict = getattr(logger, "state_dict", None)
    return state_dict() if callable(state_dict) else None


def default_plugins(engine: Engine) -> list[Any]:
    options = engine.options
    from oml_core.engine.run_artifacts import TrackerArtifacts, ValidationSnapshot

    plugins: list[Any] = [
        DefaultTrainStep(), Seeding(), LRScheduling(), EmbeddingValidation(), Validation(), MetricLogging(),
        Checkpointing(
            every_n_epochs=options.checkpoint_every_n_epochs,
            every_n_steps=options.checkpoint_every_n_steps,
            monitor=options.monitor,
            mode=options.monitor_mode,
        ),
    ]  # fmt: skip
    plugins += [ValidationSnapshot(), TrackerArtifacts()]
    if options.progress_bar:
        plugins.append(ProgressBar())
    if options.early_stopping_patience is not None:
        plugins.append(EarlyStopping(options.early_stopping_patience, monitor=options.monitor or "", mode=options.monitor_mode))
    return plugins
