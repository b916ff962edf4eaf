"""Triplet losses: on given triplets, on stacked triplets, and with a miner (OML's names and call shapes).

``TripletLossWithMiner`` with the default ``AllTripletsMiner`` never lists the triplets: a batch of 1024 has
millions of them and OML's gathered ``(T, D)`` features need tens of gigabytes. The loss is a sum over
``(anchor, positive, negative)`` of a function of ``d(a, p) - d(a, n)``, so it is computed from the ``(B, B)``
distance matrix, anchor block by anchor block, with the gradient w.r.t. that matrix accumulated in the same pass
(``all_triplets_loss``): memory is ``O(B^2 + block)`` whatever the number of triplets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from oml_miners import AllTripletsMiner, TripletMinerWithMemory, as_labels, can_form_triplets, true_columns
from torch import Tensor, nn

from oml_core.distances import elementwise_dist, pairwise_dist
from oml_core.protocols import TripletMiner
from oml_core.registry import MinerChoice
from oml_losses._common import LossError, Reduction, check_margin, check_reduction, get_reduced, triplet_values, zero_loss

__all__ = [
    "TripletLoss",
    "TripletLossConfig",
    "TripletLossPlain",
    "TripletLossWithMiner",
    "TripletLossWithMinerConfig",
    "all_triplets_loss",
    "elementwise_dist",
    "get_tri_ids_in_plain",
]

#: Elements of one ``(anchors, positives, batch)`` block of the all-triplets loss (x ~16 bytes of temporaries each).
DEFAULT_BLOCK_ELEMENTS = 1 << 22


def _triplet_logs(values: Tensor, positive_dist: Tensor, negative_dist: Tensor, margin: float | None) -> dict[str, float]:
    if len(values) == 0:
        return {"active_tri": 0.0, "pos_dist": 0.0, "neg_dist": 0.0}
    return {
        "active_tri": float((values.detach() > 0).float().mean()),
        "pos_dist": float(positive_dist.detach().mean()),
        "neg_dist": float(negative_dist.detach().mean()),
    }


@attrs.frozen(kw_only=True)
class TripletLossConfig:
    """``margin``: of ``relu(margin + d(a, p) - d(a, n))``, ``null`` for the soft-margin ``log(1 + exp(d(a, p) - d(a, n)))``."""

    margin: float | None = 0.1
    reduction: Reduction = "mean"
    need_logs: bool = False


class TripletLoss(nn.Module):
    """Triplet margin loss on given anchor, positive and negative features (``margin=None``: soft-margin).

    ``last_logs`` (with ``need_logs=True``): ``active_tri`` (fraction of triplets with a non-zero loss), ``pos_dist``
    and ``neg_dist`` (mean anchor-positive / anchor-negative distances).

    Example:
        >>> loss = TripletLoss(margin=0.5)
        >>> a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.2]])
        >>> round(float(loss(a, p, n)), 4)  # 0.5 + 1 - 1.2
        0.3
    """

    criterion_name = "triplet"

    def __init__(self, margin: float | None, reduction: Reduction = "mean", need_logs: bool = False) -> None:
        super().__init__()
        check_margin(margin, "TripletLoss")
        check_reduction(reduction, "TripletLoss")
        self.margin = margin
        self.reduction = reduction
        self.need_logs = need_logs
        self._last_logs: dict[str, float] = {}

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        if not anchor.shape == positive.shape == negative.shape or anchor.ndim != 2:
            raise LossError(
                f"TripletLoss expects anchor, positive and negative features of one shape (N, D), got "
                f"{tuple(anchor.shape)}, {tuple(positive.shape)} and {tuple(negative.shape)}"
            )
        positive_dist = elementwise_dist(anchor, positive)
        negative_dist = elementwise_dist(anchor, negative)
        values = triplet_values(positive_dist, negative_dist, self.margin)
        if self.need_logs:
            self._last_logs = _triplet_logs(values, positive_dist, negative_dist, self.margin)
        if len(values) == 0:
            return zero_loss(anchor, self.reduction)
        return get_reduced(values, self.reduction)

    @property
    def last_logs(self) -> dict[str, float]:
        """Statistics of the last batch (filled when ``need_logs=True``)."""
        return self._last_logs

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"


def get_tri_ids_in_plain(n: int) -> tuple[list[int], list[int], list[int]]:
    """Anchor, positive and negative positions of ``n / 3`` triplets stacked as ``a, p, n, a, p, n, ...``.

    Example:
        >>> get_tri_ids_in_plain(6)
        ([0, 3], [1, 4], [2, 5])
    """
    if n % 3:
        raise LossError(f"stacked triplets need a multiple of 3 rows, got {n}")
    return list(range(0, n, 3)), list(range(1, n, 3)), list(range(2, n, 3))


class TripletLossPlain(nn.Module):
    """``TripletLoss`` on features stacked as ``anchor, positive, negative, anchor, positive, negative, ...``.

    Example:
        >>> TripletLossPlain(margin=None)(torch.zeros(6, 4)).item() == torch.log(torch.tensor(2.0)).item()
        True
    """

    criterion_name = "triplet"

    def __init__(self, margin: float | None, reduction: Reduction = "mean", need_logs: bool = False) -> None:
        super().__init__()
        self.criterion = TripletLoss(margin=margin, reduction=reduction, need_logs=need_logs)

    def forward(self, features: Tensor) -> Tensor:
        a, p, n = get_tri_ids_in_plain(len(features))
        return self.criterion(features[a], features[p], features[n])

    @property
    def last_logs(self) -> dict[str, float]:
        return self.criterion.last_logs


class _IndexedTripletLoss(torch.autograd.Function):
    """Per-triplet loss of ``pool[anchors], pool[positives], pool[negatives]`` with a hand-written backward
    (``index_add`` of the unit difference vectors): the hot path of hard mining, about twice as fast on CPU as
    autograd through gathers and norms. Also returns the two distances (no gradient) for the logs."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pool: Tensor, anchors: Tensor, positives: Tensor, negatives: Tensor, margin: float | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        anchor_rows = pool.index_select(0, anchors)
        to_positive = anchor_rows - pool.index_select(0, positives)
        to_negative = anchor_rows - pool.index_select(0, negatives)
        positive_dist = torch.linalg.vector_norm(to_positive, dim=1)
        negative_dist = torch.linalg.vector_norm(to_negative, dim=1)
        values = triplet_values(positive_dist, negative_dist, margin)
        if margin is None:
            slope = torch.sigmoid(positive_dist - negative_dist)
        else:
            slope = (values > 0).to(pool.dtype)
        # d|a - p| / da = (a - p) / |a - p|, and 0 where a = p
        unit_positive = to_positive / torch.where(positive_dist > 0, positive_dist, 1.0)[:, None]
        unit_negative = to_negative / torch.where(negative_dist > 0, negative_dist, 1.0)[:, None]
        ctx.save_for_backward(anchors, positives, negatives, unit_positive, unit_negative, slope)
        ctx.pool_shape = pool.shape
        ctx.mark_non_differentiable(positive_dist, negative_dist)
        return values, positive_dist, negative_dist

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_values: Tensor, _grad_pos: Tensor, _grad_neg: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        anchors, positives, negatives, unit_positive, unit_negative, slope = ctx.saved_tensors
        weight = (grad_values * slope)[:, None]
        from_positive, from_negative = unit_positive * weight, unit_negative * weight
        grad = torch.zeros(ctx.pool_shape, dtype=unit_positive.dtype, device=unit_positive.device)
        grad.index_add_(0, anchors, from_positive - from_negative)
        grad.index_add_(0, positives, from_positive, alpha=-1)
        grad.index_add_(0, negatives, from_negative)
        return grad, None, None, None, None


class _AllTripletsLoss(torch.autograd.Function):
    """Sum of the triplet loss over every ``(a, p, n)`` with ``pos_valid[a, k]`` (``p = pos_idx[a, k]``) and
    ``negative[a, n]``, and the number of active triplets; the gradient w.r.t. the distances is accumulated in the
    forward pass, block by block, so no per-triplet tensor outlives its block."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        distances: Tensor,
        pos_idx: Tensor,
        pos_valid: Tensor,
        negative: Tensor,
        margin: float | None,
        block_elements: int,
    ) -> tuple[Tensor, Tensor]:
        batch, width = distances.shape[0], pos_idx.shape[1]
        rows = max(1, block_elements // max(1, width * distances.shape[1]))
        need_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(distances) if need_grad else None
        total = torch.zeros((), dtype=torch.float64, device=distances.device)
        active = torch.zeros((), dtype=torch.long, device=distances.device)
        for start in range(0, batch, rows):
            stop = min(batch, start + rows)
            d = distances[start:stop]
            ids = pos_idx[start:stop]
            z = d.gather(1, ids)[:, :, None] - d[:, None, :]  # (b, P, B): d(a, p) - d(a, n)
            valid = pos_valid[start:stop, :, None] & negative[start:stop, None, :]
            if margin is None:
                values = torch.nn.functional.softplus(z)
                slope = torch.sigmoid(z)
                active += valid.sum()
            else:
                z += margin
                values = torch.relu(z)
                hot = (z > 0) & valid
                slope = hot.to(distances.dtype)
                active += hot.sum()
            total += torch.where(valid, values, 0.0).sum(dtype=torch.float64)
            if grad is not None:
                if margin is None:
                    slope = torch.where(valid, slope, 0.0)
                block_grad = grad[start:stop]
                block_grad.scatter_add_(1, ids, slope.sum(2))
                block_grad -= slope.sum(1)
        ctx.save_for_backward(grad if grad is not None else torch.empty(0))
        ctx.mark_non_differentiable(active)
        return total.to(distances.dtype), active

    @staticmethod
    def backward(ctx: Any, grad_total: Tensor, _grad_active: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_total, None, None, None, None, None


def all_triplets_loss(
    features: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float | None,
    reduction: str = "mean",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> tuple[Tensor, dict[str, float]]:
    """Triplet loss over every triplet ``positive[a, p] & negative[a, n]``, from the distance matrix, in blocks;
    returns the reduced loss (``"mean"`` or ``"sum"``) and the logs (``active_tri``, ``pos_dist``, ``neg_dist``).

    Example:
        >>> from oml_miners import positive_negative_masks
        >>> pos, neg = positive_negative_masks(torch.tensor([0, 0, 1]))
        >>> loss, logs = all_triplets_loss(torch.tensor([[0.0], [1.0], [3.0]]), pos, neg, margin=None)
        >>> round(float(loss), 4), logs["pos_dist"], logs["neg_dist"]  # mean of softplus(1 - 3), softplus(1 - 2)
        (0.2201, 1.0, 2.5)
    """
    if reduction not in ("mean", "sum"):
        raise LossError(f"all_triplets_loss computes a mean or a sum, not reduction={reduction!r}")
    distances = pairwise_dist(features, features)
    n_pos, n_neg = positive.sum(1), negative.sum(1)
    n_triplets = int((n_pos * n_neg).sum())
    if n_triplets == 0:
        return zero_loss(features, reduction), {"active_tri": 0.0, "pos_dist": 0.0, "neg_dist": 0.0}
    width = int(n_pos.max())
    pos_idx = true_columns(positive, width)  # each anchor's positives, padded with (masked) zeros
    pos_valid = torch.arange(width, device=features.device) < n_pos[:, None]
    total, active = _AllTripletsLoss.apply(distances, pos_idx, pos_valid, negative, margin, block_elements)
    loss = total / n_triplets if reduction == "mean" else total
    with torch.no_grad():
        d = distances.detach().double()
        logs = {
            "active_tri": float(active) / n_triplets,
            "pos_dist": float(((d * positive).sum(1) * n_neg).sum() / n_triplets),
            "neg_dist": float(((d * negative).sum(1) * n_pos).sum() / n_triplets),
        }
    return loss, logs


@attrs.frozen(kw_only=True)
class TripletLossWithMinerConfig:
    """``margin`` (``null``: soft-margin), the ``miner`` that picks the triplets (default: all of them)."""

    margin: float | None = 0.1
    miner: MinerChoice = MinerChoice("all_triplets")  # type: ignore[call-arg]
    reduction: Reduction = "mean"
    need_logs: bool = False


class TripletLossWithMiner(nn.Module):
    """A miner picks triplets in the batch, then the triplet loss is averaged over them: ``criterion(embeddings,
    labels)`` as OML. A batch that cannot form a triplet (one label, or only single instances) gives a zero loss
    that still backpropagates, so one odd batch does not stop a run.

    ``last_logs`` (with ``need_logs=True``): ``active_tri``, ``pos_dist``, ``neg_dist`` as OML; with
    ``TripletMinerWithMemory`` also ``orig_active_tri``/``bank_active_tri`` and the distances of the batch's own and
    of the bank triplets. A stateful miner (a memory bank) is saved in this module's ``state_dict``.

    Example:
        >>> criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)
        >>> embeddings = torch.randn(8, 16, requires_grad=True)
        >>> criterion(embeddings, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).backward()
        >>> sorted(criterion.last_logs)
        ['active_tri', 'neg_dist', 'pos_dist']
    """

    criterion_name = "triplet"

    def __init__(
        self,
        margin: float | None,
        miner: TripletMiner | None = None,
        reduction: Reduction = "mean",
        need_logs: bool = False,
        *,
        block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    ) -> None:
        super().__init__()
        check_margin(margin, "TripletLossWithMiner")
        check_reduction(reduction, "TripletLossWithMiner")
        if miner is not None and not callable(getattr(miner, "sample", None)):
            raise LossError(f"TripletLossWithMiner(miner={miner!r}): a miner needs a sample(features, labels) method")
        self.margin = margin
        self.miner = miner if miner is not None else AllTripletsMiner()
        self.reduction = reduction
        self.need_logs = need_logs
        self.block_elements = block_elements
        self._last_logs: dict[str, float] = {}

    def forward(self, features: Tensor, labels: Tensor | Sequence[int]) -> Tensor:
        if features.ndim != 2:
            raise LossError(f"TripletLossWithMiner expects embeddings of shape (batch, dim), got {tuple(features.shape)}")
        labels_t = as_labels(labels, features.device)
        if len(labels_t) != len(features):
            raise LossError(f"TripletLossWithMiner got {len(features)} embeddings but {len(labels_t)} labels")
        if not can_form_triplets(labels_t):
            if self.need_logs:
                self._last_logs = {"active_tri": 0.0, "pos_dist": 0.0, "neg_dist": 0.0}
            return zero_loss(features, self.reduction)

        masks = getattr(self.miner, "all_triplets_masks", None)
        if callable(masks) and self.reduction != "none":
            positive_negative = masks(labels_t)
            if positive_negative is not None:
                positive, negative = positive_negative
                loss, logs = all_triplets_loss(features, positive, negative, self.margin, self.reduction, self.block_elements)
                if self.need_logs:
                    self._last_logs = logs
                return loss

        triplets = self.miner.sample(features, labels_t)
        anchors, positives, negatives = triplets
        pool = getattr(triplets, "pool_features", features)
        if len(anchors) > 2 * len(pool):  # many triplets: index one distance matrix rather than gather (T, D) rows
            distances = pairwise_dist(pool, pool)
            positive_dist, negative_dist = distances[anchors, positives], distances[anchors, negatives]
            values = triplet_values(positive_dist, negative_dist, self.margin)
        else:
            values, positive_dist, negative_dist = _IndexedTripletLoss.apply(pool, anchors, positives, negatives, self.margin)
        if self.need_logs:
            self._last_logs = _triplet_logs(values, positive_dist, negative_dist, self.margin)
            if isinstance(self.miner, TripletMinerWithMemory):
                self._last_logs.update(self._bank_logs(values, positive_dist, negative_dist, triplets, len(features)))
        if len(values) == 0:
            return zero_loss(features, self.reduction)
        return get_reduced(values, self.reduction)

    @staticmethod
    def _bank_logs(values: Tensor, pos: Tensor, neg: Tensor, triplets: Any, batch_size: int) -> dict[str, float]:
        anchors, positives, negatives = triplets
        original = (anchors < batch_size) & (positives < batch_size) & (negatives < batch_size)
        logs: dict[str, float] = {}
        for name, part in (("orig", original), ("bank", ~original)):
            if bool(part.any()):
                logs[f"{name}_active_tri"] = float((values.detach()[part] > 0).float().mean())
                logs[f"pos_dist_{name}"] = float(pos.detach()[part].mean())
                logs[f"neg_dist_{name}"] = float(neg.detach()[part].mean())
        return logs

    @property
    def last_logs(self) -> dict[str, float]:
        """Statistics of the last batch (filled when ``need_logs=True``)."""
        return self._last_logs

    # a stateful miner (memory bank) travels with the criterion's state_dict, so the engine's checkpoints resume it
    def get_extra_state(self) -> dict[str, Any]:
        state_dict = getattr(self.miner, "state_dict", None)
        if isinstance(self.miner, nn.Module) or not callable(state_dict):
            return {}
        return {"miner": state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("miner") is not None:
            load = getattr(self.miner, "load_state_dict", None)
            if not callable(load):
                raise LossError(f"the checkpoint holds a miner state but {self.miner!r} cannot load one")
            load(state["miner"])

    def extra_repr(self) -> str:
        return f"margin={self.margin}, miner={self.miner!r}, reduction={self.reduction!r}"
