"""OML miners: choose triplets or pairs inside a batch (OML's names and call shapes).

Every miner has ``sample(features (B, D), labels (B,))`` returning ``oml_core.protocols.Triplets`` (or ``Pairs``)
of indices, which unpack like OML's tuples::

    from oml_miners import AllTripletsMiner, HardTripletsMiner, PairsMiner
    anchors, positives, negatives = HardTripletsMiner().sample(features, labels)
    ids1, ids2, is_negative_pair = PairsMiner(hard_mining=True).sample(features=embeddings, labels=labels)
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "MiningError": "oml_miners._common",
        "PooledTriplets": "oml_miners._common",
        "as_labels": "oml_miners._common",
        "can_form_triplets": "oml_miners._common",
        "pairwise_dist": "oml_miners._common",
        "positive_negative_masks": "oml_miners._common",
        "true_columns": "oml_miners._common",
        "HardClusterMiner": "oml_miners.cluster",
        "AllTripletsMiner": "oml_miners.inbatch",
        "AllTripletsMinerConfig": "oml_miners.inbatch",
        "HardTripletsMiner": "oml_miners.inbatch",
        "NHardTripletsMiner": "oml_miners.inbatch",
        "NHardTripletsMinerConfig": "oml_miners.inbatch",
        "count_all_triplets": "oml_miners.inbatch",
        "get_available_triplets": "oml_miners.inbatch",
        "TripletMinerWithMemory": "oml_miners.memory",
        "TripletMinerWithMemoryConfig": "oml_miners.memory",
        "PairsMiner": "oml_miners.pairs",
        "PairsMinerConfig": "oml_miners.pairs",
        "MinerWithBank": "oml_miners.bank",
    },
)

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
