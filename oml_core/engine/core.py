"""The training and validation engine: a short loop whose behaviour comes from plugins on its hooks.

Example (plain components, no config)::

    engine = Engine(model=extractor, criterion=loss, optimizer=opt, train_dataset=train, batch_sampler=sampler,
                    val_dataset=val, options=EngineOptions(max_epochs=5, run_dir="runs/demo"))
    state = engine.fit()            # or engine.fit(resume_from="runs/demo/checkpoints/last.pt")
    metrics = engine.validate()
"""

from __future__ import annotations

import hashlib
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pluggy
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from oml_core.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointWriter,
    load_checkpoint_file,
    restore_rng_states,
    rng_states,
)
from oml_core.engine.monitor import BestMonitor, MonitorMode
from oml_core.engine.schedulers import LRSchedule
from oml_core.engine.state import EngineOptions, FitStatus, State, StepOutput
from oml_core.host import Host, plugin_name
from oml_core.plugin_manager import name_plugin_in_errors, new_plugin_manager
from oml_core.protocols import BatchSampler


class Engine:
    """Runs training epochs and validations; everything beyond the loop itself is a plugin on the ``oml_*`` hooks."""

    def __init__(
        self,
        *,
        model: nn.Module,
        criterion: Any,
        optimizer: torch.optim.Optimizer,
        train_dataset: Dataset[Any] | None = None,
        batch_sampler: BatchSampler | None = None,
        val_dataset: Dataset[Any] | None = None,
        scheduler: Any = None,
        options: EngineOptions | None = None,
        loggers: Sequence[Any] = (),
        plugins: Iterable[object] = (),
        host: Host | None = None,
        builtins: bool = True,
    ) -> None:
        from oml_core.engine import builtins as builtin_plugins
        from oml_core.engine.distributed import distributed_info

        self.options = options or EngineOptions()
        self.host = host if host is not None else Host()
        rank, world_size = distributed_info()
        self.state = State(max_epochs=self.options.max_epochs, rank=rank, world_size=world_size)
        self.device = _resolve_device(self.options.device)
        self.model = model.to(self.device)
        self.criterion = criterion.to(self.device) if isinstance(criterion, nn.Module) else criterion
        self.optimizer = optimizer
        if scheduler is not None and not isinstance(scheduler, LRSchedule):
            scheduler = LRSchedule(scheduler, self.options.scheduler_interval)
        #: the LR schedule (torch scheduler, interval, monitored metric for plateau schedules); ``scheduler`` is its
        #: torch scheduler
        self.schedule: LRSchedule | None = scheduler
        self.scheduler = scheduler.scheduler if scheduler is not None else None
        self.train_dataset = train_dataset
        self.batch_sampler = batch_sampler
        self.val_dataset = val_dataset
        self.loggers = list(loggers)
        self.run_dir = Path(self.options.run_dir) if self.options.run_dir else None
        self.training_model: nn.Module = self.model
        if world_size > 1:
            self.training_model = nn.parallel.DistributedDataParallel(self.model)
        self.last_retrieval_results: Any = None  # set by validation, for visualising the worst queries
        self.monitors: dict[tuple[str, str], BestMonitor] = {}
        # this engine's own plugin manager: its built-ins, the plugins given to it and the lifecycle hooks of the
        # host's plugins; two engines on one host never see each other's plugins
        self.pm = new_plugin_manager(self.host.extra_hookspecs, trace=self.host.trace_hooks)
        self.hooks = LifecycleHooks(self)
        given = list(plugins)
        replaced = {getattr(p, "builtin_name", None) for p in given} - {None}
        own = [p for p in builtin_plugins.default_plugins(self) if p.builtin_name not in replaced] if builtins else []
        for name, plugin in self.host.lifecycle_plugins():
            self._register(plugin, name, check=False)
        for plugin in [*own, *given]:
            self.add_plugin(plugin)

    # ------------------------------------------------------------------------------------------------ the loop
    def fit(self, resume_from: str | Path | None = None) -> State:
        """Train for ``options.max_epochs`` epochs (continuing a checkpoint's run when ``resume_from`` is given)."""
        state, hooks = self.state, self.hooks
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        status: FitStatus = "failed"
        with self._ctrl_c_requests_stop():
            try:
                hooks.fit_start()
                while state.epoch < state.max_epochs and not state.stop_requested:
                    hooks.epoch_start()
                    for batch in self._train_batches():
                        output = hooks.train_step(batch)
                        state.step += 1
                        state.batch_in_epoch += 1
                        state.last_loss = float(output.loss)
                        hooks.train_batch_end(batch, output)
                        if state.stop_requested:
                            break
                    else:
                        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                        hooks.epoch_end()
                status = "interrupted" if state.interrupted else "stopped" if state.stop_requested else "completed"
            except BaseException as exc:
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                hooks.exception(exc)
                raise
            finally:
                hooks.fit_end(status)
        return state

    def validate(self) -> dict[str, Any]:
        """Compute the validation metrics (the ``oml_validate`` hook; by default embedding metrics of
        ``val_dataset``), record them in ``state.metrics`` and the history, and log them.

        Returns ``{category: {metric: {k: v}}}``."""
        from oml_core.engine.builtins import flatten_metrics
        from oml_core.engine.distributed import broadcast_from_main

        hooks, state = self.hooks, self.state
        hooks.validation_start()
        # every rank runs the hook (embedding is shared among ranks); rank 0's metrics are the ones kept
        metrics = broadcast_from_main(hooks.validate())
        flat = flatten_metrics(metrics)
        state.metrics = flat
        state.last_validated_step = state.step
        state.history.append({"epoch": state.epoch, "step": state.step, **flat})
        for monitor in self.monitors.values():
            monitor.update(flat, state.step)
        hooks.validation_end(metrics)
        hooks.log_metrics({f"val/{k}": v for k, v in flat.items()}, state.step)
        return metrics

    def monitor(self, metric: str, mode: MonitorMode = "max") -> BestMonitor:
        """The shared "best so far" record of ``metric`` (created on first use, updated by every validation,
        saved in checkpoints): best-checkpoint selection, early stopping and plateau schedulers all read it."""
        key = (metric, mode)
        if key not in self.monitors:
            self.monitors[key] = BestMonitor(metric, mode)
        return self.monitors[key]

    # ------------------------------------------------------------------------------------------------ data
    def _train_batches(self) -> Iterator[dict[str, Any]]:
        if self.train_dataset is None or self.batch_sampler is None:
            raise ValueError("Engine.fit needs train_dataset and batch_sampler")
        epoch, skip = self.state.epoch, self.state.batch_in_epoch
        self.batch_sampler.set_epoch(epoch)
        seeded = PerItemSeededDataset(self.train_dataset, seed=self.options.seed, epoch=epoch)
        # the loader's own generator (not the global RNG) seeds its workers, so where an epoch starts cannot
        # shift the global random stream that dropout, miners and losses draw from
        loader_rng = torch.Generator().manual_seed(_mix(self.options.seed, epoch, self.state.rank))
        loader = DataLoader(
            seeded,
            batch_sampler=_SkipFirst(self.batch_sampler, skip),  # type: ignore[arg-type]
            num_workers=self.options.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=loader_rng,
        )
        yield from loader

    # ------------------------------------------------------------------------------------------------ plugins
    def add_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register ``plugin`` (an object or module with ``@hookimpl`` functions) on this engine only.

        A misspelled hook or a wrong argument name raises ``PluginValidationError`` naming the plugin."""
        existing = self.pm.get_name(plugin)
        if existing is not None:  # e.g. a local plugin file that the host also loaded for its components
            return existing
        if name is None:  # readable names in error messages: the built-in's name, else the class or module name
            base = getattr(plugin, "builtin_name", None) or plugin_name(plugin).split("-")[0]
            name, n = base, 1
            while self.pm.has_plugin(name):
                n += 1
                name = f"{base}#{n}"
        return self._register(plugin, name, check=True)

    def _register(self, plugin: object, name: str, *, check: bool) -> str:
        from oml_core.errors import PluginValidationError

        try:
            self.pm.register(plugin, name=name)
            if check:
                self.pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.get_name(plugin) is not None:
                self.pm.unregister(plugin)
            raise PluginValidationError(f"engine plugin {name!r}: {exc}") from None
        if not type(plugin).__module__.startswith("oml_core."):  # a built-in's error is OML's own, not a plugin's
            name_plugin_in_errors(self.pm, plugin, name)
        return name

    def plugin_names(self) -> list[str]:
        """Names of the plugins on this engine's hooks (built-ins, given plugins, installed plugins' hooks)."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def close(self) -> None:
        """Forget this engine's plugins (kept for callers of the former API; the host was never touched)."""
        for plugin in list(self.pm.get_plugins()):
            self.pm.unregister(plugin)

    # ------------------------------------------------------------------------------------------------ checkpoints
    def checkpoint_dict(self) -> dict[str, Any]:
        checkpoint: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": {**self.state.counters(), "history": self.state.history},
            "rng": rng_states(),
            "sampler_epoch": self.state.epoch,
            "monitors": [monitor.state_dict() for monitor in self.monitors.values()],
        }
        pending = [p.grad for group in self.optimizer.param_groups for p in group["params"]]
        if any(grad is not None for grad in pending):  # mid gradient accumulation: the sum so far is state too
            checkpoint["pending_gradients"] = pending
        if isinstance(self.criterion, nn.Module):
            checkpoint["criterion"] = self.criterion.state_dict()
        if self.scheduler is not None:
            checkpoint["scheduler"] = self.scheduler.state_dict()
        self.hooks.save_checkpoint(checkpoint)
        return checkpoint

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a checkpoint atomically and wait until it is on disk (rank 0 only; other ranks return the path
        without writing)."""
        checkpoint = self.checkpoint_dict()
        if self.state.is_main_process:
            CheckpointWriter(background=False).save(checkpoint, path)
        return Path(path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, criterion, counters, RNG states and plugins' state."""
        checkpoint = load_checkpoint_file(path, map_location=self.device)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if "criterion" in checkpoint and isinstance(self.criterion, nn.Module):
            self.criterion.load_state_dict(checkpoint["criterion"])
        if self.scheduler is not None and "scheduler" in checkpoint:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        counters = checkpoint["state"]
        self.state.epoch, self.state.step, self.state.batch_in_epoch = (
            counters["epoch"],
            counters["step"],
            counters["batch_in_epoch"],
        )
        self.state.history = list(counters.get("history", []))
        self.state.last_validated_step = self.state.history[-1]["step"] if self.state.history else None
        for saved in checkpoint.get("monitors", []):
            monitor = BestMonitor.from_state_dict(saved)
            self.monitors[(monitor.metric, monitor.mode)] = monitor
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for param, grad in zip(params, checkpoint.get("pending_gradients", [None] * len(params))):
            param.grad = None if grad is None else grad.to(param.device)
        restore_rng_states(checkpoint["rng"])
        self.hooks.load_checkpoint(checkpoint)

    @contextmanager
    def _ctrl_c_requests_stop(self) -> Iterator[None]:
        """First Ctrl-C: stop at the next batch boundary (and save a checkpoint). Second Ctrl-C: stop at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.state.interrupted:
                raise KeyboardInterrupt
            self.state.interrupted = True
            self.state.request_stop("interrupted (Ctrl-C); press Ctrl-C again to stop immediately")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class LifecycleHooks:
    """Typed calls of the lifecycle hooks (tox's pattern): the engine never touches ``pm.hook`` by name."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._hook = engine.pm.hook

    def fit_start(self) -> None:
        self._hook.oml_fit_start(engine=self._engine)

    def epoch_start(self) -> None:
        self._hook.oml_epoch_start(engine=self._engine)

    def train_step(self, batch: dict[str, Any]) -> StepOutput:
        output = self._hook.oml_train_step(engine=self._engine, batch=batch)
        if not isinstance(output, StepOutput):
            raise TypeError(f"oml_train_step returned {type(output).__name__}, expected StepOutput (is a step plugin loaded?)")
        return output

    def train_batch_end(self, batch: dict[str, Any], output: StepOutput) -> None:
        self._hook.oml_train_batch_end(engine=self._engine, batch=batch, output=output)

    def epoch_end(self) -> None:
        self._hook.oml_epoch_end(engine=self._engine)

    def validate(self) -> dict[str, Any]:
        metrics = self._hook.oml_validate(engine=self._engine)
        if not isinstance(metrics, dict):
            got = type(metrics).__name__
            raise TypeError(f"oml_validate returned {got}, expected a dict of metrics (is a validation plugin loaded?)")
        return metrics

    def validation_start(self) -> None:
        self._hook.oml_validation_start(engine=self._engine)

    def embeddings_ready(self, embeddings: torch.Tensor, dataset: Any) -> None:
        self._hook.oml_embeddings_ready(engine=self._engine, embeddings=embeddings, dataset=dataset)

    def validation_end(self, metrics: dict[str, Any]) -> None:
        self._hook.oml_validation_end(engine=self._engine, metrics=metrics)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._engine.state.is_main_process:
            self._hook.oml_log_metrics(engine=self._engine, metrics=metrics, step=step)

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._hook.oml_save_checkpoint(engine=self._engine, checkpoint=checkpoint)

    def load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._hook.oml_load_checkpoint(engine=self._engine, checkpoint=checkpoint)

    def exception(self, exception: BaseException) -> None:
        self._hook.oml_exception(engine=self._engine, exception=exception)

    def fit_end(self, status: FitStatus) -> None:
        self._hook.oml_fit_end(engine=self._engine, status=status)


class PerItemSeededDataset(Dataset[Any]):
    """Seeds the RNG from (seed, epoch, index) before reading each item, so random augmentations are the same
    whatever the worker, the batch order or where a resumed epoch starts."""

    def __init__(self, dataset: Dataset[Any], *, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        # only the CPU generator: torch.manual_seed would also queue lazy CUDA/XPU/MTIA seeding, recording a stack
        # trace each time (that alone cost the engine ~7% of a CPU training step)
        saved = torch.get_rng_state()
        torch.default_generator.manual_seed(_mix(self.seed, self.epoch, index))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(saved)


class _SkipFirst:
    """Drops the first ``n`` batches of a (deterministic) batch sampler: how a resumed epoch starts mid-way."""

    def __init__(self, sampler: BatchSampler, n: int) -> None:
        self.sampler, self.n = sampler, n

    def __iter__(self) -> Iterator[list[int]]:
        for i, batch in enumerate(self.sampler):
            if i >= self.n:
                yield batch

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.n)


def _mix(*values: int) -> int:
    digest = hashlib.blake2b(":".join(map(str, values)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
