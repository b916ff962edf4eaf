"""The config pipelines behind ``oml train``, ``oml validate`` and ``oml predict``.

Each run gets a directory ``<run_dir>/<name>-<timestamp>/`` holding the resolved config, plugin versions, logs,
checkpoints and ``metrics.json``. A resumed run (``--resume RUN_DIR``) continues in its own directory.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import torch

from oml_core.config import dump_yaml
from oml_core.data.const import LABELS_COLUMN, SPLIT_COLUMN, TRAIN_SPLIT, VALIDATION_SPLIT
from oml_core.engine import Engine, EngineOptions, seed_everything
from oml_core.engine.builtins import MetricLogging
from oml_core.engine.checkpoint import CheckpointError
from oml_core.engine.distributed import barrier, distributed_info
from oml_core.engine.schedulers import LRSchedule
from oml_core.errors import ConfigError, OMLError, PluginHookError
from oml_core.files import atomic_write_text
from oml_core.host import Host
from oml_core.pipelines import load_pipeline_config
from oml_core.pipelines.configs import TrainConfig
from oml_core.pipelines.preflight import check_data
from oml_core.registry import CallbackChoice, OptimizerChoice, SchedulerChoice


@attrs.frozen
class TrainResult:
    run_dir: Path
    status: str
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    epochs: int
    steps: int


# ---------------------------------------------------------------------------------------------------- helpers
def load_local_plugin(reference: str, base_dir: Path) -> ModuleType:
    """Import a local plugin: a ``.py`` file (relative to the config's folder or the working directory) or a module.

    Example:
        >>> load_local_plugin("my_hooks.py", Path("configs"))   # doctest: +SKIP
    """
    if reference.endswith(".py"):
        candidates = [Path(reference)] if Path(reference).is_absolute() else [base_dir / reference, Path.cwd() / reference]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            tried = ", ".join(str(c) for c in candidates)
            raise ConfigError([f"$.plugins.local: plugin file {reference!r} not found (looked at {tried})"])
        name = f"oml_local_{path.stem}_{abs(hash(str(path.resolve()))):x}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the file does, the run refuses to start
            what = f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else f"raised {type(exc).__name__}: {exc}"
            raise OMLError(
                f"$.plugins.local: local plugin {reference!r} ({path}) {what} while being imported; the run did not start. "
                "Fix the file or remove it from plugins.local."
            ) from None
        return module
    try:
        return importlib.import_module(reference)
    except ImportError as exc:
        raise ConfigError([f"$.plugins.local: cannot import plugin module {reference!r}: {exc}"]) from None


def register_local_plugins(host: Host, references: tuple[str, ...], base_dir: Path) -> None:
    """Load a config's ``plugins.local`` into ``host``, each named as the config names it. Any problem (missing
    file, import error, ``sys.exit``, a misspelled hook, a wrong hook argument) refuses the run before it starts."""
    for reference in references:
        module = load_local_plugin(reference, base_dir)
        try:
            host.register(module, name=reference)
        except OMLError as exc:
            raise OMLError(f"$.plugins.local: {exc}".replace(f"plugin {reference!r}", f"local plugin {reference!r}", 1)) from None


def new_run_dir_path(cfg: Any, *, kind: str = "train") -> Path:
    """``<run_dir>/<name>-<kind>-<timestamp>``, refused if it would not be a folder directly inside ``run_dir``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_dir = Path(cfg.run_dir) / f"{cfg.name}-{kind}-{stamp}"
    if run_dir.resolve().parent != Path(cfg.run_dir).resolve():
        raise ConfigError([f"$.name: {cfg.name!r} would put the run directory outside run_dir ({cfg.run_dir})"])
    return run_dir


def make_run_dir(cfg: Any, *, kind: str = "train") -> Path:
    run_dir = new_run_dir_path(cfg, kind=kind)
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def describe_environment(host: Host) -> dict[str, Any]:
    """Versions of everything that shaped a run: Python, torch, OML and each plugin's distribution."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "status": p.status} for p in host.plugins
        ],
    }


def build_transforms(host: Host, choices: tuple[Any, ...], im_size: int, *, train: bool) -> Any:
    from oml_core.data.transforms import build_transforms as from_choices
    from oml_core.data.transforms import get_augs_torch, get_normalisation_resize_torch

    if choices:
        return from_choices(host, choices)
    return get_augs_torch(im_size) if train else get_normalisation_resize_torch(im_size)


def build_datasets(cfg: TrainConfig, host: Host) -> tuple[Any, Any]:
    """The training and validation datasets of ``cfg.data`` (validation may be None if the split is empty)."""
    from oml_core.data import DatasetQueryGallery, DatasetWithLabels, check_paths_inside_root, read_dataframe

    data = cfg.data
    df = read_dataframe(data.dataframe)
    if SPLIT_COLUMN not in df.columns:
        raise OMLError(f"{data.dataframe}: the dataframe needs a '{SPLIT_COLUMN}' column with train/validation rows")
    # the parts keep the file's row numbers, so that a problem found in them names the row of the file
    df_train = df[df[SPLIT_COLUMN] == TRAIN_SPLIT]
    df_val = df[df[SPLIT_COLUMN] == VALIDATION_SPLIT]
    if data.modality is not None:  # texts, audio...: the modality builds the datasets
        if data.dataset_root is not None:  # its files obey the same rule as images: inside the root
            check_paths_inside_root(df, data.dataset_root, allow_outside_root=data.allow_outside_root,
                                    source=str(data.dataframe))  # fmt: skip
        modality = host.registries.modalities.create(data.modality)
        val_of = modality.query_gallery_dataset(df_val, data.dataset_root) if len(df_val) else None
        return modality.labeled_dataset(df_train, data.dataset_root), val_of
    common: dict[str, Any] = {
        "dataset_root": data.dataset_root,
        "cache_size": data.cache_size,
        "skip_unreadable": data.skip_unreadable,
        "allow_absolute_paths": data.allow_outside_root,
    }
    train = DatasetWithLabels(
        df_train, transform=build_transforms(host, data.transforms_train, data.im_size, train=True), **common
    )
    val = None
    if len(df_val):
        val = DatasetQueryGallery(
            df_val, transform=build_transforms(host, data.transforms_val, data.im_size, train=False), **common
        )
    return train, val


def build_optimizer(host: Host, choice: OptimizerChoice, modules: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimizer ``choice`` names (``optimizers`` registry) over ``modules`` (``{"backbone": extractor,
    "head": criterion}``: ``backbone_lr`` applies to the extractor)."""
    return host.registries.optimizers.create(choice, modules=modules)  # type: ignore[no-any-return]


def build_scheduler(
    host: Host, choice: SchedulerChoice | None, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int
) -> LRSchedule | None:
    """The LR schedule ``choice`` names (``schedulers`` registry), sized for ``epochs`` of ``steps_per_epoch``."""
    if choice is None:
        return None
    return host.registries.schedulers.create_in_context(  # type: ignore[no-any-return]
        choice, optimizer=optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch
    )


def build_callbacks(host: Host, choices: tuple[CallbackChoice, ...]) -> list[Any]:
    """The engine plugins of a config's ``callbacks`` list (one that has a built-in's name replaces the built-in)."""
    return [host.registries.callbacks.create(choice) for choice in choices]


def maybe_init_distributed(device: str) -> None:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU, nccl on CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")


def _device_for_rank(device: str) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu" if device == "auto" else device


def load_model_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load an engine checkpoint's model, or any state_dict file the weights loader understands (safely, strictly)."""
    from oml_core.weights import load_checkpoint, load_weights_into

    load_weights_into(model, load_checkpoint(path), source=str(path))  # an engine checkpoint unwraps to its "model"


def _metric_args(cfg: TrainConfig) -> dict[str, Any]:
    v = cfg.validation
    return {
        "cmc_top_k": v.cmc_top_k,
        "precision_top_k": v.precision_top_k,
        "map_top_k": v.map_top_k,
        "fmr_vals": v.fmr_vals,
        "pcf_variance": v.pcf_variance,
        "metric": v.metric,
    }


def _engine_options(cfg: TrainConfig, run_dir: Path | None) -> EngineOptions:
    return EngineOptions(
        max_epochs=cfg.epochs,
        seed=cfg.seed,
        device=_device_for_rank(cfg.device),
        grad_clip_norm=cfg.grad_clip_norm,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        amp=cfg.amp,
        validate_every_n_epochs=cfg.validation.every_n_epochs,
        validate_before_training=cfg.validation.before_training,
        validation_batch_size=cfg.validation.batch_size,
        num_workers=cfg.data.num_workers,
        progress_bar=cfg.progress_bar,
        log_every_n_steps=cfg.log_every_n_steps,
        run_dir=str(run_dir) if run_dir else None,
        metric_args=_metric_args(cfg),
        checkpoint_every_n_epochs=cfg.checkpoint.every_n_epochs,
        checkpoint_every_n_steps=cfg.checkpoint.every_n_steps,
        monitor=cfg.checkpoint.monitor,
        monitor_mode=cfg.checkpoint.mode,
        early_stopping_patience=cfg.early_stopping_patience,
    )


def _prepare(config_path: str | Path, overrides: list[str] | None, host: Host | None) -> tuple[TrainConfig, Host]:
    host = host if host is not None else Host()
    cfg: TrainConfig = load_pipeline_config(host, config_path, pipeline="train", overrides=overrides)
    base_dir = Path(config_path).resolve().parent
    register_local_plugins(host, cfg.plugins.local, base_dir)
    maybe_init_distributed(cfg.device)
    return cfg, host


# ---------------------------------------------------------------------------------------------------- pipelines
def build_engine(cfg: TrainConfig, host: Host, run_dir: Path | None, *, hparams: dict[str, Any] | None = None) -> Engine:
    """Every component of ``cfg``, created through the registries, wired into an Engine (whose plugin manager also
    gets the lifecycle hooks of the config's ``plugins.local``, which ``_prepare`` loaded into the host)."""
    rank, world_size = distributed_info()
    seed_everything(cfg.seed)
    train_dataset, val_dataset = build_datasets(cfg, host)
    extractor = host.registries.extractors.create(cfg.extractor)
    labels = train_dataset.get_labels()
    criterion = host.registries.losses.create_in_context(
        cfg.criterion, in_features=int(extractor.feat_dim), num_classes=int(train_dataset.df[LABELS_COLUMN].max()) + 1
    )
    sampler = host.registries.samplers.create_in_context(
        cfg.sampler,
        labels=labels,
        label2category=train_dataset.get_label2category(),
        seed=cfg.seed,
        rank=rank,
        world_size=world_size,
    )
    optimizer = build_optimizer(host, cfg.optimizer, {"backbone": extractor, "head": criterion})
    scheduler = build_scheduler(host, cfg.scheduler, optimizer, cfg.epochs, len(sampler))
    callbacks = build_callbacks(host, cfg.callbacks)
    if run_dir is not None and rank == 0:  # the first thing written, after everything that can refuse the run
        run_dir.mkdir(parents=True, exist_ok=True)
    loggers = [host.registries.loggers.create(choice, run_dir=run_dir) for choice in cfg.loggers] if run_dir and rank == 0 else []
    engine = Engine(
        model=extractor,
        criterion=criterion,
        optimizer=optimizer,
        scheduler=scheduler,
        train_dataset=train_dataset,
        batch_sampler=sampler,
        val_dataset=val_dataset,
        options=_engine_options(cfg, run_dir),
        loggers=loggers,
        host=host,
        plugins=[MetricLogging(hparams), *callbacks],
    )
    return engine


def train(
    config_path: str | Path,
    *,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
    host: Host | None = None,
    check_images: bool = False,
) -> TrainResult:
    """``oml train``: run the training described by a config file. Nothing is written before the pre-flight checks
    pass and every component is built (``check_images``: open every image first and report all unreadable ones).

    Example:
        >>> result = train("configs/train_mock.yaml", overrides=["epochs=2"])   # doctest: +SKIP
        >>> result.metrics_after["OVERALL/cmc/1"] > result.metrics_before["OVERALL/cmc/1"]   # doctest: +SKIP
    """
    cfg, host = _prepare(config_path, overrides, host)
    rank, _ = distributed_info()
    resume_from, run_dir = _resolve_resume(resume)
    check_data(cfg, host, images=check_images and rank == 0)
    unstructured = host.registries.converter.unstructure(cfg)
    if run_dir is None:  # only a path: build_engine creates the folder once every component was built
        run_dir = _share_path(new_run_dir_path(cfg) if rank == 0 else None)
    engine = build_engine(cfg, host, run_dir, hparams=unstructured)
    if rank == 0:
        dump_yaml(unstructured, run_dir / "config.yaml")
        atomic_write_text(run_dir / "environment.json", json.dumps(describe_environment(host), indent=2))
        print(f"oml: run directory {run_dir}", file=sys.stderr)
    try:
        state = engine.fit(resume_from=resume_from)
    except Exception as exc:
        raise_plugin_hook_error(exc, run_dir)
        raise
    finally:
        engine.close()
    history = state.history
    before = history[0] if history and history[0]["step"] == 0 else {}
    after = history[-1] if history else {}
    strip = lambda row: {k: v for k, v in row.items() if k not in ("epoch", "step")}  # noqa: E731
    status = "interrupted" if state.interrupted else "stopped" if state.stop_requested else "completed"
    result = TrainResult(run_dir, status, strip(before), strip(after), state.epoch, state.step)
    if rank == 0:
        summary = {"status": status, "epochs": state.epoch, "steps": state.step, "before": result.metrics_before,
                   "after": result.metrics_after, "history": history}  # fmt: skip
        atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=2))
    barrier()
    return result


def raise_plugin_hook_error(exc: Exception, run_dir: Path | None) -> None:
    """Re-raise an exception that a plugin's hook raised during a run as one paragraph naming the plugin, the hook
    and the checkpoint that is kept (OML's own errors are clear already and pass through)."""
    plugin, hook = getattr(exc, "oml_plugin", None), getattr(exc, "oml_hook", None)
    if plugin is None or hook is None or isinstance(exc, OMLError):
        return
    last = run_dir / "checkpoints" / "last.pt" if run_dir is not None else None
    raise PluginHookError(plugin, hook, exc, str(last) if last is not None and last.is_file() else None) from exc


def _resolve_resume(resume: str | Path | None) -> tuple[Path | None, Path | None]:
    """``--resume`` takes a checkpoint file or a run directory (then its ``checkpoints/last.pt``)."""
    if resume is None:
        return None, None
    path = Path(resume)
    if path.is_dir():
        checkpoint = path / "checkpoints" / "last.pt"
        if not checkpoint.is_file():
            raise CheckpointError(f"run directory {path} has no checkpoints/last.pt to resume from")
        return checkpoint, path
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} is neither a checkpoint file nor a run directory")
    from oml_core.weights import check_torch_file

    check_torch_file(path)  # before a run directory is made for it
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
    return path, run_dir


def _share_path(path: Path | None) -> Path:
    from oml_core.engine.distributed import broadcast_from_main

    shared = broadcast_from_main(str(path) if path else None)
    assert shared is not None
    return Path(shared)


def validate(
    config_path: str | Path, *, checkpoint: str | Path | None, overrides: list[str] | None = None, host: Host | None = None
) -> dict[str, Any]:
    """``oml validate``: the retrieval metrics of a checkpoint on the config's validation split."""
    cfg, host = _prepare(config_path, overrides, host)
    rank, _ = distributed_info()
    engine = build_engine(cfg, host, None)
    try:
        if checkpoint is not None:
            load_model_weights(engine.model, checkpoint)
        if engine.val_dataset is None:
            raise OMLError(f"{cfg.data.dataframe} has no '{VALIDATION_SPLIT}' rows to validate on")
        metrics = engine.validate()
    finally:
        engine.close()
    if rank == 0:
        run_dir = make_run_dir(cfg, kind="validate")
        dump_yaml(host.registries.converter.unstructure(cfg), run_dir / "config.yaml")
        atomic_write_text(run_dir / "metrics.json", json.dumps(engine.state.metrics, indent=2))
        print(f"oml: metrics written to {run_dir / 'metrics.json'}", file=sys.stderr)
    return metrics


def predict(
    config_path: str | Path,
    *,
    checkpoint: str | Path | None,
    out: str | Path,
    split: str | None = None,
    overrides: list[str] | None = None,
    host: Host | None = None,
) -> Path:
    """``oml predict``: embeddings of the config's dataframe (optionally one split) saved to ``out``
    (a ``torch.save`` dict with ``embeddings`` (N, D), ``paths`` and ``labels``, readable with weights_only=True)."""
    from oml_core.data import DatasetQueryGallery, read_dataframe
    from oml_core.inference import inference

    cfg, host = _prepare(config_path, overrides, host)
    df = read_dataframe(cfg.data.dataframe)
    if split is not None:
        df = df[df[SPLIT_COLUMN] == split].reset_index(drop=True)
        if not len(df):
            raise OMLError(f"{cfg.data.dataframe} has no rows with split == {split!r}")
    if cfg.data.modality is not None:
        dataset = host.registries.modalities.create(cfg.data.modality).base_dataset(df, cfg.data.dataset_root)
    else:
        transform = build_transforms(host, cfg.data.transforms_val, cfg.data.im_size, train=False)
        dataset = DatasetQueryGallery(df, dataset_root=cfg.data.dataset_root, transform=transform)
    extractor = host.registries.extractors.create(cfg.extractor)
    if checkpoint is not None:
        load_model_weights(extractor, checkpoint)
    device = torch.device(_device_for_rank(cfg.device))
    embeddings = inference(
        extractor.to(device), dataset, batch_size=cfg.validation.batch_size, num_workers=cfg.data.num_workers, device=device
    )
    out = Path(out)
    if distributed_info()[0] == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"embeddings": embeddings.cpu()}
        if "path" in dataset.df.columns:
            payload["paths"] = [str(p) for p in dataset.df["path"]]
        if LABELS_COLUMN in df.columns:
            payload["labels"] = torch.as_tensor(df[LABELS_COLUMN].to_numpy().copy())
        from oml_core.engine.checkpoint import atomic_save

        atomic_save(payload, out)
    return out
