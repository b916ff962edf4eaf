"""Registers the miners (entry point ``oml_miners`` in group ``oml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oml_core import NoConfig, hookimpl

if TYPE_CHECKING:
    from oml_miners.inbatch import AllTripletsMiner, NHardTripletsMiner
    from oml_miners.memory import TripletMinerWithMemory


def _all_triplets(max_output_triplets: int | None, seed: int | None) -> AllTripletsMiner:
    from oml_miners.inbatch import AllTripletsMiner

    return AllTripletsMiner(max_output_triplets, seed=seed)


def _n_hard(n_positive: int, n_negative: int, skip_positive: int, skip_negative: int) -> NHardTripletsMiner:
    from oml_miners.inbatch import NHardTripletsMiner

    return NHardTripletsMiner(n_positive=(skip_positive + 1, n_positive), n_negative=(skip_negative + 1, n_negative))


def _memory(bank_size_in_batches: int, tri_expand_k: int, seed: int | None) -> TripletMinerWithMemory:
    from oml_miners.memory import TripletMinerWithMemory

    return TripletMinerWithMemory(bank_size_in_batches, tri_expand_k, seed=seed)


@hookimpl
def oml_register_miners(registry: Any) -> None:
    from oml_miners.cluster import HardClusterMiner
    from oml_miners.inbatch import AllTripletsMinerConfig, HardTripletsMiner, NHardTripletsMinerConfig
    from oml_miners.memory import TripletMinerWithMemoryConfig
    from oml_miners.pairs import PairsMiner, PairsMinerConfig

    registry.add(
        "all_triplets",
        config=AllTripletsMinerConfig,
        factory=_all_triplets,
        summary="every (anchor, positive, negative) triplet of the batch, or a random subset",
        example={},
    )
    registry.add(
        "hard_triplets",
        config=NoConfig,
        factory=HardTripletsMiner,
        summary="per anchor, the farthest positive and the closest negative",
    )
    registry.add(
        "n_hard_triplets",
        config=NHardTripletsMinerConfig,
        factory=_n_hard,
        summary="per anchor, the n hardest positives x the n hardest negatives (optionally skipping the very hardest)",
        example={"n_positive": 2, "n_negative": 2},
    )
    registry.add(
        "hard_cluster",
        config=NoConfig,
        factory=HardClusterMiner,
        summary="per label, its mean, its instance farthest from the mean and the closest other mean",
    )
    registry.add(
        "triplets_with_memory",
        config=TripletMinerWithMemoryConfig,
        factory=_memory,
        summary="all batch triplets plus triplets reaching into a memory bank of past batches (MoCo-style queue)",
        example={"bank_size_in_batches": 2, "tri_expand_k": 3, "seed": 0},
    )
    registry.add(
        "pairs",
        config=PairsMinerConfig,
        factory=PairsMiner,
        summary="positive and negative pairs of the hardest (or all) triplets, for pairwise models",
        example={"hard_mining": True},
    )
