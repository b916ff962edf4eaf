"""OML losses with OML's names and call shapes::

from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner

criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)
loss = criterion(embeddings, labels)
print(criterion.last_logs)  # {'active_tri': ..., 'pos_dist': ..., 'neg_dist': ...}
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LossError": "oml_losses._common",
        "get_reduced": "oml_losses._common",
        "ArcFaceLoss": "oml_losses.arcface",
        "ArcFaceLossConfig": "oml_losses.arcface",
        "ArcFaceLossWithMLP": "oml_losses.arcface",
        "ArcFaceLossWithMLPConfig": "oml_losses.arcface",
        "label_smoothing": "oml_losses.arcface",
        "ContrastiveLoss": "oml_losses.contrastive",
        "ContrastiveLossConfig": "oml_losses.contrastive",
        "SurrogatePrecision": "oml_losses.surrogate",
        "SurrogatePrecisionConfig": "oml_losses.surrogate",
        "surrogate_precision": "oml_losses.surrogate",
        "TripletLoss": "oml_losses.triplet",
        "TripletLossConfig": "oml_losses.triplet",
        "TripletLossPlain": "oml_losses.triplet",
        "TripletLossWithMiner": "oml_losses.triplet",
        "TripletLossWithMinerConfig": "oml_losses.triplet",
        "all_triplets_loss": "oml_losses.triplet",
        "elementwise_dist": "oml_losses.triplet",
        "get_tri_ids_in_plain": "oml_losses.triplet",
    },
)

__all__ = [
    "ArcFaceLoss",
    "ArcFaceLossConfig",
    "ArcFaceLossWithMLP",
    "ArcFaceLossWithMLPConfig",
    "ContrastiveLoss",
    "ContrastiveLossConfig",
    "LossError",
    "SurrogatePrecision",
    "SurrogatePrecisionConfig",
    "TripletLoss",
    "TripletLossConfig",
    "TripletLossPlain",
    "TripletLossWithMiner",
    "TripletLossWithMinerConfig",
    "all_triplets_loss",
    "elementwise_dist",
    "get_reduced",
    "get_tri_ids_in_plain",
    "label_smoothing",
    "surrogate_precision",
]
