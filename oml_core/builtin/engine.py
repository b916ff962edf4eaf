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


def _train(args: argparse.Namespace, host: Host) -> int:
    from oml_core.pipelines.train import train

    result = train(args.config, overrides=args.set, resume=args.resume, host=host)
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
    _common(parser)
    parser.add_argument(
        "--checkpoint", default=None, help="engine checkpoint or state_dict file (default: the extractor's own weights)"
    )


def _validate(args: argparse.Namespace, host: Host) -> int:
    from oml_core.engine import flatten_metrics
    from oml_core.pipelines.train import validate

    metrics = validate(args.config, checkpoint=args.checkpoint, overrides=args.set, host=host)
    if _rank() == 0:
        print(json.dumps(flatten_metrics(metrics), indent=2))
    return 0


def _configure_predict(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--checkpoint", default=None, help="engine checkpoint or state_dict file")
    parser.add_argument("--out", required=True, help="output file (torch.save dict: embeddings, paths, labels)")
    parser.add_argument("--split", default=None, choices=["train", "validation"], help="only the rows of this split")


def _predict(args: argparse.Namespace, host: Host) -> int:
    from oml_core.pipelines.train import predict

    out = predict(args.config, checkpoint=args.checkpoint, out=args.out, split=args.split, overrides=args.set, host=host)
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
