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

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from oml_core.engine.checkpoint import CHECKPOINT_FORMAT, atomic_save, load_checkpoint_file, restore_rng_states, rng_states
from oml_core.engine.state import EngineOptions, FitStatus, State, StepOutput
from oml_core.host import Host
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
        self.scheduler = scheduler
        self.train_dataset = train_dataset
        self.batch_sampler = batch_sampler
        self.val_dataset = val_dataset
        self.loggers = list(loggers)
        self.run_dir = Path(self.options.run_dir) if self.options.run_dir else None
        self.training_model: nn.Module = self.model
        if world_size > 1:
            self.training_model = nn.parallel.DistributedDataParallel(self.model)
        self.hooks = LifecycleHooks(self)
        self.last_retrieval_results: Any = None  # set by validation, for visualising the worst queries
        self._plugin_names: list[str] = []
        own = builtin_plugins.default_plugins(self) if builtins else []
        for plugin in [*own, *plugins]:
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
        """Embed the validation set, compute retrieval metrics and log them; returns ``{category: {metric: {k: v}}}``."""
        from oml_core.engine.builtins import run_validation

        return run_validation(self)

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
        """Register ``plugin`` (an object or module with ``@hookimpl`` functions) on this engine's host."""
        registered = self.host.register(plugin, name=name)
        self._plugin_names.append(registered)
        return registered

    def close(self) -> None:
        """Unregister this engine's plugins from the host (a host can then serve another engine)."""
        for name in self._plugin_names:
            self.host.unregister(name)
        self._plugin_names.clear()

    # ------------------------------------------------------------------------------------------------ checkpoints
    def checkpoint_dict(self) -> dict[str, Any]:
        checkpoint: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": {**self.state.counters(), "history": self.state.history},
            "rng": rng_states(),
            "sampler_epoch": self.state.epoch,
        }
        if isinstance(self.criterion, nn.Module):
            checkpoint["criterion"] = self.criterion.state_dict()
        if self.scheduler is not None:
            checkpoint["scheduler"] = self.scheduler.state_dict()
        self.hooks.save_checkpoint(checkpoint)
        return checkpoint

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a checkpoint atomically (rank 0 only; other ranks return the path without writing)."""
        checkpoint = self.checkpoint_dict()
        if self.state.is_main_process:
            atomic_save(checkpoint, path)
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
        self._hook = engine.host.pm.hook

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
