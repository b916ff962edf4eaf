"""OML miners: choose triplets or pairs inside a batch (OML's names and call shapes).

Every miner has ``sample(features (B, D), labels (B,))`` returning ``oml_core.protocols.Triplets`` (or ``Pairs``)
of indices, which unpack like OML's tuples::

    from oml_miners import AllTripletsMiner, HardTripletsMiner, PairsMiner
    anchors, positives, negatives = HardTripletsMiner().sample(features, labels)
    ids1, ids2, is_negative_pair = PairsMiner(hard_mining=True).sample(features=embeddings, labels=labels)
"""

from oml_miners._common import (
    MiningError,
    PooledTriplets,
    as_labels,
    can_form_triplets,
    pairwise_dist,
    positive_negative_masks,
    true_columns,
)
from oml_miners.bank import MinerWithBank
from oml_miners.cluster import HardClusterMiner
from oml_miners.inbatch import (
    AllTripletsMiner,
    AllTripletsMinerConfig,
    HardTripletsMiner,
    NHardTripletsMiner,
    NHardTripletsMinerConfig,
    count_all_triplets,
    get_available_triplets,
)
from oml_miners.memory import TripletMinerWithMemory, TripletMinerWithMemoryConfig
from oml_miners.pairs import PairsMiner, PairsMinerConfig

__all__ = [
    "AllTripletsMiner",
    "AllTripletsMinerConfig",
    "HardClusterMiner",
    "HardTripletsMiner",
    "MinerWithBank",
    "MiningError",
    "NHardTripletsMiner",
    "NHardTripletsMinerConfig",
    "PairsMiner",
    "PairsMinerConfig",
    "PooledTriplets",
    "TripletMinerWithMemory",
    "TripletMinerWithMemoryConfig",
    "as_labels",
    "can_form_triplets",
    "count_all_triplets",
    "get_available_triplets",
    "pairwise_dist",
    "positive_negative_masks",
    "true_columns",
]
