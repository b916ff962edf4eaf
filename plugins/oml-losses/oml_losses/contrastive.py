"""Contrastive loss on mined pairs: pull positive pairs within ``pos_margin``, push negatives beyond ``neg_margin``."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from oml_miners import PairsMiner, PairsMinerConfig, as_labels, can_form_triplets
from torch import Tensor, nn

from oml_core.distances import elementwise_dist, pairwise_dist
from oml_core.protocols import PairMiner
from oml_core.registry import MinerChoice
from oml_losses._common import LossError, Reduction, check_reduction, get_reduced, zero_loss

__all__ = ["ContrastiveLoss", "ContrastiveLossConfig"]


@attrs.frozen(kw_only=True)
class ContrastiveLossConfig:
    """``pos_margin``: positive pairs closer than this cost nothing; ``neg_margin``: negative pairs farther than this
    cost nothing; ``miner``: a pairs miner (default: all pairs)."""

    pos_margin: float = 0.0
    neg_margin: float = 1.0
    miner: MinerChoice = MinerChoice("pairs", PairsMinerConfig(hard_mining=False))  # type: ignore[call-arg]
    reduction: Reduction = "mean"
    need_logs: bool = False


class ContrastiveLoss(nn.Module):
    """``relu(d - pos_margin)`` on positive pairs and ``relu(neg_margin - d)`` on negative pairs (Euclidean ``d``),
    pairs from ``miner.sample(features, labels) -> Pairs`` (default ``PairsMiner(hard_mining=False)``: every pair).

    ``reduction="mean"`` averages the positive and the negative pairs separately and adds the two means, so the
    balance does not depend on how many more negative pairs a batch has; ``"sum"`` adds every pair's loss;
    ``"none"`` returns them in the miner's order. A batch without a triplet gives a zero loss with a gradient.
    ``last_logs`` (``need_logs=True``): ``pos_dist``, ``neg_dist``, ``active_pos``, ``active_neg``.

    Example:
        >>> loss = ContrastiveLoss(pos_margin=0.0, neg_margin=2.0)
        >>> float(loss(torch.tensor([[0.0], [1.0], [1.5]]), torch.tensor([0, 0, 1])))  # 1 + mean(2 - 1.5, 2 - 0.5)
        2.0
    """

    criterion_name = "contrastive"

    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        miner: PairMiner | None = None,
        reduction: Reduction = "mean",
        need_logs: bool = False,
    ) -> None:
        super().__init__()
        if pos_margin < 0 or neg_margin <= pos_margin:
            raise LossError(
                f"ContrastiveLoss(pos_margin={pos_margin}, neg_margin={neg_margin}): need 0 <= pos_margin < neg_margin"
            )
        check_reduction(reduction, "ContrastiveLoss")
        self.pos_margin, self.neg_margin = pos_margin, neg_margin
        self.miner = miner if miner is not None else PairsMiner(hard_mining=False)
        self.reduction = reduction
        self.need_logs = need_logs
        self._last_logs: dict[str, float] = {}

    def forward(self, features: Tensor, labels: Tensor | Sequence[int]) -> Tensor:
        if features.ndim != 2:
            raise LossError(f"ContrastiveLoss expects embeddings of shape (batch, dim), got {tuple(features.shape)}")
        labels_t = as_labels(labels, features.device)
        if len(labels_t) != len(features):
            raise LossError(f"ContrastiveLoss got {len(features)} embeddings but {len(labels_t)} labels")
        if not can_form_triplets(labels_t):
            self._last_logs = {}
            return zero_loss(features, self.reduction)
        ids1, ids2, is_negative = self.miner.sample(features, labels_t)
        is_negative = is_negative.to(features.device)
        if len(ids1) > 2 * len(features):  # many pairs: index one distance matrix rather than gather (P, D) rows
            distances = pairwise_dist(features, features)[ids1, ids2]
        else:
            distances = elementwise_dist(features[ids1], features[ids2])
        values = torch.where(is_negative, torch.relu(self.neg_margin - distances), torch.relu(distances - self.pos_margin))
        if self.need_logs:
            d, v = distances.detach(), values.detach()
            self._last_logs = {
                "pos_dist": float(d[~is_negative].mean()) if bool((~is_negative).any()) else 0.0,
                "neg_dist": float(d[is_negative].mean()) if bool(is_negative.any()) else 0.0,
                "active_pos": float((v[~is_negative] > 0).float().mean()) if bool((~is_negative).any()) else 0.0,
                "active_neg": float((v[is_negative] > 0).float().mean()) if bool(is_negative.any()) else 0.0,
            }
        if self.reduction != "mean":
            return get_reduced(values, self.reduction)
        loss = zero_loss(features, "mean")
        for part in (~is_negative, is_negative):
            if bool(part.any()):
                loss = loss + values[part].mean()
        return loss

    @property
    def last_logs(self) -> dict[str, float]:
        return self._last_logs

    def extra_repr(self) -> str:
        return f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, miner={self.miner!r}"
