"""OML losses with OML's names and call shapes::

from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner

criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)
loss = criterion(embeddings, labels)
print(criterion.last_logs)  # {'active_tri': ..., 'pos_dist': ..., 'neg_dist': ...}
"""

from oml_losses._common import LossError, get_reduced
from oml_losses.arcface import ArcFaceLoss, ArcFaceLossConfig, ArcFaceLossWithMLP, ArcFaceLossWithMLPConfig, label_smoothing
from oml_losses.contrastive import ContrastiveLoss, ContrastiveLossConfig
from oml_losses.surrogate import SurrogatePrecision, SurrogatePrecisionConfig, surrogate_precision
from oml_losses.triplet import (
    TripletLoss,
    TripletLossConfig,
    TripletLossPlain,
    TripletLossWithMiner,
    TripletLossWithMinerConfig,
    all_triplets_loss,
    elementwise_dist,
    get_tri_ids_in_plain,
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
