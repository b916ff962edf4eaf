"""The ``oml_siamese`` plugin: the pairwise models, the pairwise re-ranking postprocessors and the
``oml train-postprocessor`` command."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

import attrs

from oml_core import hookimpl
from oml_core.registry import PairwiseModelChoice, TransformChoice

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.registry import Registry
    from oml_siamese.postprocessors import PairwiseEmbeddingsPostprocessor, PairwiseImagesPostprocessor


def _positive(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


def _not_negative(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class PairwiseImagesConfig:
    """``pairwise_images``: re-score each query's ``top_n`` with a pairwise model on images, read from the items'
    paths and resized to ``im_size`` (or passed through ``transforms`` when given)."""

    top_n: int = attrs.field(default=5, validator=_positive)
    pairwise_model: PairwiseModelChoice
    im_size: int = attrs.field(default=224, validator=_positive)
    transforms: tuple[TransformChoice, ...] = ()
    batch_size: int = attrs.field(default=128, validator=_positive)
    num_workers: int = attrs.field(default=0, validator=_not_negative)
    use_fp16: bool = False


@attrs.frozen(kw_only=True)
class PairwiseEmbeddingsConfig:
    """``pairwise_embeddings``: re-score each query's ``top_n`` with a pairwise model on the items' embeddings."""

    top_n: int = attrs.field(default=5, validator=_positive)
    pairwise_model: PairwiseModelChoice
    batch_size: int = attrs.field(default=1024, validator=_positive)
    embeddings_key: str = "embeddings"


# ================================================================================================ registration
@hookimpl
def oml_register_pairwise_models(registry: Registry[Any]) -> None:
    from oml_siamese.models import (
        ConcatSiameseConfig,
        LinearSiameseConfig,
        TrivialDistanceSiameseConfig,
        create_concat_siamese,
        create_linear_siamese,
        create_trivial_distance_siamese,
    )

    registry.add(
        "concat_siamese",
        config=ConcatSiameseConfig,
        factory=create_concat_siamese,
        summary="both images stacked and passed through an extractor, then an MLP head to one logit (OML's ConcatSiamese)",
        example={"extractor": {"type": "simple_cnn", "channels": [8, 16]}, "mlp_hidden_dims": [16], "use_tta": True},
    )
    registry.add(
        "linear_siamese",
        config=LinearSiameseConfig,
        factory=create_linear_siamese,
        summary="a learnable linear map of both embeddings, then their L2 distance (OML's LinearTrivialDistanceSiamese)",
        example={"feat_dim": 8, "identity_init": True},
    )
    registry.add(
        "trivial_distance_siamese",
        config=TrivialDistanceSiameseConfig,
        factory=create_trivial_distance_siamese,
        summary="the L2 distance of the extractor's embeddings (or of the inputs, without extractor): the baseline",
        example={"extractor": {"type": "simple_cnn", "channels": [8]}},
    )


def _create_pairwise_images(
    top_n: int,
    pairwise_model: Any,
    im_size: int,
    transforms: tuple[Any, ...],
    batch_size: int,
    num_workers: int,
    use_fp16: bool,
) -> PairwiseImagesPostprocessor:
    from oml_core.data.transforms import Compose, get_normalisation_resize_torch
    from oml_siamese.postprocessors import PairwiseImagesPostprocessor

    # the registry builds the chosen transforms before calling this factory
    transform = Compose(list(transforms)) if transforms else get_normalisation_resize_torch(im_size)
    return PairwiseImagesPostprocessor(
        top_n, pairwise_model, transform, num_workers=num_workers, batch_size=batch_size, use_fp16=use_fp16
    )


def _create_pairwise_embeddings(
    top_n: int, pairwise_model: Any, batch_size: int, embeddings_key: str
) -> PairwiseEmbeddingsPostprocessor:
    from oml_siamese.postprocessors import PairwiseEmbeddingsPostprocessor

    return PairwiseEmbeddingsPostprocessor(top_n, pairwise_model, batch_size=batch_size, embeddings_key=embeddings_key)


@hookimpl
def oml_register_postprocessors(registry: Registry[Any]) -> None:
    registry.add(
        "pairwise_images",
        config=PairwiseImagesConfig,
        factory=_create_pairwise_images,
        summary="re-rank each query's top_n with a pairwise model on images (e.g. concat_siamese), read from paths",
        example={
            "top_n": 3,
            "im_size": 32,
            "pairwise_model": {
                "type": "concat_siamese",
                "extractor": {"type": "simple_cnn", "channels": [8]},
                "mlp_hidden_dims": [8],
            },
        },
    )
    registry.add(
        "pairwise_embeddings",
        config=PairwiseEmbeddingsConfig,
        factory=_create_pairwise_embeddings,
        summary="re-rank each query's top_n with a pairwise model on embeddings (e.g. linear_siamese)",
        example={"top_n": 3, "pairwise_model": {"type": "linear_siamese", "feat_dim": 8}},
    )


# ================================================================================================ oml train-postprocessor
def _configure_train_postprocessor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file (see configs/train_postprocessor_mock.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. --set epochs=3"
    )
    parser.add_argument("--check", action="store_true", help="only validate the config file and report every problem")


def _train_postprocessor(args: argparse.Namespace, host: Host) -> int:
    from oml_siamese.training import load_config, train_postprocessor

    if args.check:
        load_config(host, args.config, args.set)
        print(f"{args.config}: OK (TrainPostprocessorConfig)")
        return 0
    result = train_postprocessor(args.config, overrides=args.set, host=host)
    summary = {
        "run_dir": str(result.run_dir),
        "status": result.status,
        "embeddings": result.metrics_embeddings,
        "before": result.metrics_before,
        "after": result.metrics_after,
    }
    print(json.dumps(summary, indent=2))
    return 0 if result.status in ("completed", "stopped") else 130


@hookimpl
def oml_register_pipelines(registry: Registry[Any]) -> None:
    from oml_siamese.training import TrainPostprocessorConfig, train_postprocessor

    registry.add(
        "train_postprocessor",
        config=TrainPostprocessorConfig,
        factory=train_postprocessor,
        summary="train a pairwise re-ranker on top of a frozen extractor (oml train-postprocessor)",
    )


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "train-postprocessor",
        help="train a pairwise re-ranker (e.g. ConcatSiamese) on top of a frozen extractor, validating CMC before/after",
        configure=_configure_train_postprocessor,
        run=_train_postprocessor,
    )
