"""The contract checks of oml_core.testing on every loss this plugin registers, and the registered configs."""

from __future__ import annotations

import pytest
import torch
from oml_losses import ArcFaceLoss, ContrastiveLoss, TripletLossWithMiner
from oml_miners import AllTripletsMiner, PairsMiner

from oml_core.testing import contract_cases


@pytest.mark.parametrize("case", contract_cases("oml_losses"), ids=str)
def test_contracts(case) -> None:  # noqa: ANN001
    case.run()


def test_every_loss_has_contract_cases() -> None:
    names = {case.spec.name for case in contract_cases("oml_losses")}
    assert names == {"triplet_with_miner", "arcface", "mlp_arcface", "contrastive", "surrogate_precision"}


def test_configs_build_the_expected_components(oml_host) -> None:  # noqa: ANN001
    losses = oml_host.registries.losses
    default = losses.create("triplet_with_miner", {})
    assert isinstance(default, TripletLossWithMiner) and isinstance(default.miner, AllTripletsMiner) and default.margin == 0.1
    soft = losses.create(
        "triplet_with_miner", {"margin": None, "miner": {"type": "n_hard_triplets", "n_positive": 3, "skip_positive": 1}}
    )
    assert soft.margin is None and soft.miner.positive_slice == slice(1, 3)
    contrastive = losses.create("contrastive", {})
    assert (
        isinstance(contrastive, ContrastiveLoss)
        and isinstance(contrastive.miner, PairsMiner)
        and not contrastive.miner.hard_mining
    )
    arcface = losses.create("arcface", {"in_features": 8, "num_classes": 5}, label2category={i: i % 2 for i in range(5)})
    assert (
        isinstance(arcface, ArcFaceLoss)
        and arcface.label2category is not None
        and arcface.label2category.tolist() == [0, 1, 0, 1, 0]
    )
    arcface(torch.randn(3, 8), torch.tensor([0, 1, 4]))


def test_arcface_sizes_come_from_the_pipeline_context_or_fail_clearly(oml_host) -> None:
    from oml_core import OMLError

    loss = oml_host.registries.losses.create_in_context("arcface", {"m": 0.3}, in_features=16, num_classes=7)
    assert (loss.in_features, loss.num_classes) == (16, 7)
    explicit = oml_host.registries.losses.create_in_context(
        "arcface", {"in_features": 8, "num_classes": 3}, in_features=16, num_classes=7
    )
    assert (explicit.in_features, explicit.num_classes) == (8, 3)
    with pytest.raises(OMLError, match="arcface needs in_features and num_classes"):
        oml_host.registries.losses.create("arcface")
