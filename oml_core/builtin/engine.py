"""Built-in plugin: the CSV and TensorBoard loggers, and the ``oml train`` / ``validate`` / ``predict`` commands."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from oml_core._markers import hookimpl

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.registry import Registry


@hookimpl
def oml_register_loggers(registry: Registry[Any]) -> None:
    from oml_core.engine.loggers import CSVLogger, CSVLoggerConfig, TensorBoardLogger, TensorBoardLoggerConfig

    registry.add("csv", config=CSVLoggerConfig, factory=CSVLogger, summary="metrics.csv (step, name, value) in the run directory")
    registry.add(
        "tensorboard",
        config=TensorBoardLoggerConfig,
        factory=TensorBoardLogger,
        summary="TensorBoard event files (no tensorboard install needed to write them)",
    )


@hookimpl
def oml_register_optimizers(registry: Registry[Any]) -> None:
    from oml_core.engine import optimizers as o

    registry.add("adam", config=o.AdamConfig, factory=o.build_adam, summary="torch.optim.Adam with parameter groups")
    registry.add("adamw", config=o.AdamWConfig, factory=o.build_adamw, summary="torch.optim.AdamW (decoupled weight decay)")
    registry.add("sgd", config=o.SGDConfig, factory=o.build_sgd, summary="torch.optim.SGD with momentum (nesterov optional)")


@hookimpl
def oml_register_schedulers(registry: Registry[Any]) -> None:
    from oml_core.engine import schedulers as s

    registry.add("cosine", config=s.CosineConfig, factory=s.build_cosine, summary="cosine decay, optional linear warm-up")
    registry.add("one_cycle", config=s.OneCycleConfig, factory=s.build_one_cycle, summary="one-cycle (up, then down), per step")
    registry.add("step", config=s.StepConfig, factory=s.build_step, summary="LR x gamma every step_size epochs or steps")
    registry.add("multistep", config=s.MultiStepConfig, factory=s.build_multistep, summary="LR x gamma at each milestone")
    registry.add("plateau", config=s.PlateauConfig, factory=s.build_plateau, summary="LR x factor when a metric stalls")


@hookimpl
def oml_register_callbacks(registry: Registry[Any]) -> None:
    from oml_core.engine.builtins import ProgressBar
    from oml_core.engine.checkpointing import Checkpointing, CheckpointingConfig, EarlyStopping, EarlyStoppingConfig

    summary = "last.pt every N epochs/steps, best.pt by a monitored metric"
    registry.add("checkpointing", config=CheckpointingConfig, factory=Checkpointing, summary=summary)
    registry.add("early_stopping", config=EarlyStoppingConfig, factory=EarlyStopping, summary="stop when a metric stalls")
    registry.add("progress_bar", factory=ProgressBar, summary="a tqdm bar per epoch with the running loss")


def _rank() -> int:
    from oml_core.engine.distributed import distributed_info

    return distributed_info()[0]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file (see configs/)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. --set epochs=3"
    )


def _configure_train(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--resume", default=None, metavar="RUN_DIR|CHECKPOINT", help="continue a run from its last checkpoint")
    parser.add_argument(
        "--check-images", action="store_true", help="open every image before training and report all unreadable ones at once"
    )


def _train(args: argparse.Namespace, host: Host) -> int:
    from oml_core.pipelines.train import train

    result = train(args.config, overrides=args.set, resume=args.resume, host=host, check_images=args.check_images)
    if _rank() == 0:
        print(
            json.dumps(
                {
                    "run_dir": str(result.run_dir),
                    "status": result.status,
                    "before": result.metrics_before,
                    "after": result.metrics_after,
                },
                indent=2,
            )
        )
    return 0 if result.status in ("completed", "stopped") else 130


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    _config_or_run(parser)
    parser.add_argument(
        "--checkpoint", default=None, help="engine checkpoint or state_dict file (default: the extractor's own weights)"
    )


def _config_or_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None, help="YAML config file (see configs/); not with --run")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. --set epochs=3"
    )
    parser.add_argument("--run", default=None, metavar="RUN_DIR", help="a run of `oml train`: its config and best weights")


def _config_and_checkpoint(args: argparse.Namespace, host: Host, command: str) -> tuple[str, str | None]:
    """The config file and checkpoint of ``--run`` (its config.yaml and best weights), or those given."""
    from oml_core.errors import OMLError

    if args.run is None:
        if args.config is None:
            raise OMLError(f"oml {command}: give a config file, or --run RUN_DIR (a run of `oml train`)")
        return str(args.config), args.checkpoint
    from oml_core.runs import CONFIG_FILE, load_run

    if args.config is not None:
        raise OMLError(f"oml {command}: give a config file or --run, not both (--run uses {args.run}/{CONFIG_FILE})")
    run = load_run(args.run, host=host, checkpoint=args.checkpoint)
    return str(run.run_dir / CONFIG_FILE), str(run.checkpoint)


def _validate(args: argparse.Namespace, host: Host) -> int:
    from oml_core.engine import flatten_metrics
    from oml_core.pipelines.train import validate

    config, checkpoint = _config_and_checkpoint(args, host, "validate")
    metrics = validate(config, checkpoint=checkpoint, overrides=args.set, host=host)
    if _rank() == 0:
        print(json.dumps(flatten_metrics(metrics), indent=2))
    return 0


def _configure_predict(parser: argparse.ArgumentParser) -> None:
    _config_or_run(parser)
    parser.add_argument("--checkpoint", default=None, help="engine checkpoint or state_dict file")
    parser.add_argument("--out", required=True, help="output file (torch.save dict: embeddings, paths, labels)")
    parser.add_argument("--split", default=None, choices=["train", "validation"], help="only the rows of this split")


def _predict(args: argparse.Namespace, host: Host) -> int:
    from oml_core.pipelines.train import predict

    config, checkpoint = _config_and_checkpoint(args, host, "predict")
    out = predict(config, checkpoint=checkpoint, out=args.out, split=args.split, overrides=args.set, host=host)
    print(f"embeddings written to {out}")
    return 0


@hookimpl
def oml_register_pipelines(registry: Registry[Any]) -> None:
    from oml_core.pipelines.configs import TrainConfig
    from oml_core.pipelines.train import train

    registry.add("train", config=TrainConfig, factory=train, summary="train an extractor with a metric-learning loss (oml train)")


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add("train", help="train a model from a config file", configure=_configure_train, run=_train)
    commands.add(
        "validate", help="retrieval metrics of a checkpoint on the validation split", configure=_configure_validate, run=_validate
    )
    commands.add(
        "predict", help="embeddings of a dataframe's images, saved to a file", configure=_configure_predict, run=_predict
    )
