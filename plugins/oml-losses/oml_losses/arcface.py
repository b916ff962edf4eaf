"""ArcFace (additive angular margin) loss, with optional label smoothing and an MLP projector (OML's names)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from oml_miners import as_labels
from torch import Tensor, nn

from oml_core.distances import normalise
from oml_losses._common import LossError, Reduction, check_reduction

__all__ = ["ArcFaceLoss", "ArcFaceLossConfig", "ArcFaceLossWithMLP", "ArcFaceLossWithMLPConfig", "label_smoothing"]


def label_smoothing(y: Tensor, num_classes: int, epsilon: float = 0.2, categories: Tensor | None = None) -> Tensor:
    """Soft targets: ``1 - epsilon`` on the label plus ``epsilon`` spread over all classes, or, given
    ``categories[label]``, only over the classes of the label's category.

    Example:
        >>> label_smoothing(torch.tensor([0]), num_classes=4, epsilon=0.4).tolist()
        [[0.7000000476837158, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612]]
    """
    if not 0 <= epsilon < 1:
        raise LossError(f"label smoothing needs 0 <= epsilon < 1, got {epsilon}")
    ohe = F.one_hot(y, num_classes).float() * (1 - epsilon)
    if categories is None:
        return ohe + epsilon / num_classes
    same_category = categories[y][:, None] == categories[None, :]
    return ohe + torch.where(same_category, epsilon / same_category.sum(1, keepdim=True), 0.0)


@attrs.frozen(kw_only=True)
class ArcFaceLossConfig:
    """``in_features``: embedding size; ``num_classes``: labels are ``0 .. num_classes - 1``; ``m``: angular margin
    (0.3-0.5); ``s``: logit scale (30-64); ``smoothing_epsilon``: label smoothing (0: none)."""

    in_features: int | None = None  # None: oml train fills in the extractor's feat_dim
    num_classes: int | None = None  # None: oml train fills in max(label) + 1 of the training data
    m: float = 0.5
    s: float = 64.0
    smoothing_epsilon: float = 0.0
    reduction: Reduction = "mean"


class ArcFaceLoss(nn.Module):
    """ArcFace (https://arxiv.org/abs/1801.07698): cross-entropy on ``s * cos(theta + m)`` for the true class and
    ``s * cos(theta)`` for the others, where ``theta`` is the angle between the embedding and a learnable class
    centre (``weight``, shape ``(num_classes, in_features)``; it is in ``state_dict`` and must be given to the
    optimizer). Past ``theta = pi - m`` the margin is replaced by OML's linear fallback ``cos - sin(m) m``.

    ``label2category`` (label -> category) restricts label smoothing to the label's category. ``last_logs`` holds
    the batch ``accuracy`` of the (margin-free) class prediction.

    Example:
        >>> criterion = ArcFaceLoss(in_features=8, num_classes=3, m=0.5, s=30)
        >>> loss = criterion(torch.randn(4, 8), torch.tensor([0, 1, 2, 0]))
        >>> loss.shape, len(criterion.state_dict()["weight"])
        (torch.Size([]), 3)
    """

    criterion_name = "arcface"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        m: float = 0.5,
        s: float = 64,
        smoothing_epsilon: float = 0,
        label2category: Mapping[Any, Any] | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 1:
            raise LossError(f"ArcFaceLoss(in_features={in_features}, num_classes={num_classes}): both must be positive")
        if not 0 <= smoothing_epsilon < 1:
            raise LossError(f"ArcFaceLoss(smoothing_epsilon={smoothing_epsilon}): must be in [0, 1)")
        check_reduction(reduction, "ArcFaceLoss")
        self.in_features, self.num_classes = in_features, num_classes
        self.m, self.rescale, self.smoothing_epsilon, self.reduction = m, s, smoothing_epsilon, reduction
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th, self.mm = -self.cos_m, self.sin_m * m
        self.label2category: Tensor | None
        self.register_buffer("label2category", self._categories(label2category), persistent=False)
        self._last_logs: dict[str, float] = {}

    def _categories(self, label2category: Mapping[Any, Any] | None) -> Tensor | None:
        if label2category is None:
            return None
        missing = [label for label in range(self.num_classes) if label not in label2category]
        if missing:
            raise LossError(
                f"ArcFaceLoss: label2category has no category for labels {missing[:10]} (of 0..{self.num_classes - 1})"
            )
        names = sorted({label2category[label] for label in range(self.num_classes)}, key=str)
        index = {name: i for i, name in enumerate(names)}
        return torch.tensor([index[label2category[label]] for label in range(self.num_classes)])

    def fc(self, x: Tensor) -> Tensor:
        """Cosines between the embeddings and the class centres, ``(B, num_classes)``."""
        return F.linear(normalise(x), normalise(self.weight))

    def forward(self, x: Tensor, y: Tensor | Sequence[int]) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise LossError(f"ArcFaceLoss(in_features={self.in_features}) got embeddings of shape {tuple(x.shape)}")
        labels = as_labels(y, x.device)
        if len(labels) != len(x):
            raise LossError(f"ArcFaceLoss got {len(x)} embeddings but {len(labels)} labels")
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if len(bad):
            raise LossError(
                f"ArcFaceLoss(num_classes={self.num_classes}) got label {int(bad[0])}; labels must be 0 .. "
                f"{self.num_classes - 1} (re-index them, or raise num_classes)"
            )
        cos = self.fc(x)
        with torch.no_grad():
            self._last_logs = {"accuracy": float((cos.argmax(1) == labels).float().mean()) if len(labels) else 0.0}
        # clamp keeps sqrt's gradient finite when an embedding sits exactly on a class centre
        sin = torch.sqrt((1.0 - cos.pow(2)).clamp_min(1e-12))
        cos_w_margin = torch.where(cos > self.th, cos * self.cos_m - sin * self.sin_m, cos - self.mm)
        ohe = F.one_hot(labels, self.num_classes).bool()
        logits = torch.where(ohe, cos_w_margin, cos) * self.rescale
        target: Tensor = labels
        if self.smoothing_epsilon:
            target = label_smoothing(labels, self.num_classes, self.smoothing_epsilon, self.label2category)
        return F.cross_entropy(logits, target, reduction=self.reduction)

    @property
    def last_logs(self) -> dict[str, float]:
        return self._last_logs

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, m={self.m}, s={self.rescale}"


@attrs.frozen(kw_only=True)
class ArcFaceLossWithMLPConfig:
    """``mlp_features``: sizes of the projector's layers (ReLU between them); ArcFace acts on the last one."""

    in_features: int | None = None  # None: oml train fills in the extractor's feat_dim
    num_classes: int | None = None  # None: oml train fills in max(label) + 1 of the training data
    mlp_features: tuple[int, ...]
    m: float = 0.5
    s: float = 64.0
    smoothing_epsilon: float = 0.0
    reduction: Reduction = "mean"


def _mlp(in_features: int, sizes: Sequence[int]) -> nn.Sequential:
    # torchvision.ops.MLP(in_features, sizes) as OML uses it: Linear + ReLU per hidden layer, a bare last Linear
    layers: list[nn.Module] = []
    previous = in_features
    for i, size in enumerate(sizes):
        layers.append(nn.Linear(previous, size))
        if i < len(sizes) - 1:
            layers.append(nn.ReLU())
        previous = size
    return nn.Sequential(*layers)


class ArcFaceLossWithMLP(nn.Module):
    """``ArcFaceLoss`` behind a trainable MLP projector (only used in training; keep the MLP in the model if you
    want it at inference).

    Example:
        >>> criterion = ArcFaceLossWithMLP(in_features=8, num_classes=3, mlp_features=[16, 4])
        >>> criterion(torch.randn(5, 8), torch.tensor([0, 1, 2, 1, 0])).ndim
        0
    """

    criterion_name = "arcface"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        mlp_features: Sequence[int],
        m: float = 0.5,
        s: float = 64,
        smoothing_epsilon: float = 0,
        label2category: Mapping[Any, Any] | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if not mlp_features or any(size < 1 for size in mlp_features):
            raise LossError(f"ArcFaceLossWithMLP(mlp_features={list(mlp_features)}): give at least one positive layer size")
        self.mlp = _mlp(in_features, mlp_features)
        self.arcface = ArcFaceLoss(
            mlp_features[-1],
            num_classes=num_classes,
            m=m,
            s=s,
            smoothing_epsilon=smoothing_epsilon,
            label2category=label2category,
            reduction=reduction,
        )
        self.in_features = in_features

    def forward(self, x: Tensor, y: Tensor | Sequence[int]) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise LossError(f"ArcFaceLossWithMLP(in_features={self.in_features}) got embeddings of shape {tuple(x.shape)}")
        return self.arcface(self.mlp(x), y)

    @property
    def last_logs(self) -> dict[str, float]:
        return self.arcface.last_logs
