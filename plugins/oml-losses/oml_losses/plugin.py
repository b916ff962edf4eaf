"""Registers the losses (entry point ``oml_losses`` in group ``oml``). Every registered loss is a
``protocols.Criterion``: ``criterion(embeddings, labels) -> scalar``. ``TripletLoss`` and ``TripletLossPlain`` take
triplets instead, so they are importable from ``oml_losses`` but not registered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from oml_core import OMLError, hookimpl

if TYPE_CHECKING:
    from oml_losses.arcface import ArcFaceLoss, ArcFaceLossWithMLP


def _require_sizes(name: str, fields: Mapping[str, Any]) -> None:
    missing = [key for key in ("in_features", "num_classes") if fields.get(key) is None]
    if missing:
        raise OMLError(
            f"{name} needs {' and '.join(missing)}: set them in its config, or let oml train fill them in "
            "(in_features = the extractor's feat_dim, num_classes = max(label) + 1 of the training data)"
        )


def _arcface(label2category: Mapping[Any, Any] | None = None, **fields: Any) -> ArcFaceLoss:
    from oml_losses.arcface import ArcFaceLoss

    _require_sizes("arcface", fields)
    return ArcFaceLoss(label2category=label2category, **fields)


def _mlp_arcface(
    mlp_features: tuple[int, ...], label2category: Mapping[Any, Any] | None = None, **fields: Any
) -> ArcFaceLossWithMLP:
    from oml_losses.arcface import ArcFaceLossWithMLP

    _require_sizes("mlp_arcface", fields)
    return ArcFaceLossWithMLP(mlp_features=list(mlp_features), label2category=label2category, **fields)


@hookimpl
def oml_register_losses(registry: Any) -> None:
    from oml_losses.arcface import ArcFaceLossConfig, ArcFaceLossWithMLPConfig
    from oml_losses.contrastive import ContrastiveLoss, ContrastiveLossConfig
    from oml_losses.surrogate import SurrogatePrecision, SurrogatePrecisionConfig
    from oml_losses.triplet import TripletLossWithMiner, TripletLossWithMinerConfig

    registry.add(
        "triplet_with_miner",
        config=TripletLossWithMinerConfig,
        factory=TripletLossWithMiner,
        summary="triplet margin (or soft-margin) loss over the triplets a miner picks; all triplets by default",
        example={"margin": 0.1, "miner": {"type": "hard_triplets"}, "need_logs": True},
    )
    registry.add(
        "arcface",
        config=ArcFaceLossConfig,
        factory=_arcface,
        summary="ArcFace additive angular margin loss with learnable class centres (optional label smoothing)",
        example={"in_features": 8, "num_classes": 4, "m": 0.4, "s": 30.0},
    )
    registry.add(
        "mlp_arcface",
        config=ArcFaceLossWithMLPConfig,
        factory=_mlp_arcface,
        summary="ArcFace behind a trainable MLP projector",
        example={"in_features": 8, "num_classes": 4, "mlp_features": [16, 8]},
    )
    registry.add(
        "contrastive",
        config=ContrastiveLossConfig,
        factory=ContrastiveLoss,
        summary="contrastive loss on mined pairs: positives within pos_margin, negatives beyond neg_margin",
        example={"pos_margin": 0.0, "neg_margin": 1.0},
    )
    registry.add(
        "surrogate_precision",
        config=SurrogatePrecisionConfig,
        factory=SurrogatePrecision,
        summary="1 - a differentiable approximation of Precision@k over the batch",
        example={"k": 2},
    )
