"""Pairwise models: they score a pair of items, a higher score meaning "more different" (a re-estimated distance).

``forward(x1, x2)`` returns raw scores ``(B,)`` for training (logits for ``BCEWithLogitsLoss`` with
``is_negative_pair`` as the target); ``predict(x1, x2)`` returns the scores a re-ranker uses at inference.

Each model says what it compares with ``input_kind``: ``"images"`` (batches ``(B, C, H, W)``) or ``"embeddings"``
(batches ``(B, feat_dim)``), and with ``symmetric`` whether ``predict(x1, x2) == predict(x2, x1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import attrs
import torch
from torch import Tensor, nn

from oml_core.distances import elementwise_dist
from oml_core.errors import OMLError
from oml_core.protocols import Extractor
from oml_core.registry import ExtractorChoice

InputKind = Literal["images", "embeddings"]


def _check_pair(model: str, x1: Tensor, x2: Tensor, ndim: int | None = None) -> None:
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise OMLError(f"{model}: x1 and x2 must be tensors, got {type(x1).__name__} and {type(x2).__name__}")
    if x1.shape != x2.shape:
        raise OMLError(f"{model}: x1 and x2 must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    if ndim is not None and x1.ndim != ndim:
        what = "images (B, C, H, W)" if ndim == 4 else "embeddings (B, feat_dim)"
        raise OMLError(f"{model}: expected a batch of {what}, got shape {tuple(x1.shape)}")


def _load_weights(model: nn.Module, weights: str | Path) -> None:
    from oml_core.weights import load_pretrained

    load_pretrained(model, weights)


def _siamese_head(in_features: int, hidden_dims: Sequence[int], dropout: float) -> nn.Sequential:
    """``Linear -> Sigmoid -> Dropout`` per hidden size, then ``Linear(., 1, bias=False) -> Identity``: the layout
    (and state_dict keys) of OML's ``ConcatSiamese`` head, a torchvision ``MLP`` with its last bias and dropout off."""
    layers: list[nn.Module] = []
    size = in_features
    for hidden in hidden_dims:
        layers += [nn.Linear(size, int(hidden)), nn.Sigmoid(), nn.Dropout(dropout)]
        size = int(hidden)
    layers += [nn.Linear(size, 1, bias=False), nn.Identity()]
    return nn.Sequential(*layers)


# ================================================================================================ ConcatSiamese
class ConcatSiamese(nn.Module):
    """Stacks the two images along the height (``(B, C, 2H, W)``), passes them through ``extractor`` and an MLP
    head to one logit per pair (OML's ``ConcatSiamese``; its checkpoints load as they are).

    Args:
        extractor: any extractor (``feat_dim`` and ``images -> (B, feat_dim)``); it is fine-tuned unless frozen.
        mlp_hidden_dims: hidden sizes of the head (sigmoid activations); the head ends with one logit.
        use_tta: ``predict`` averages both orders of the pair, which makes it symmetric.
        weights: a checkpoint of the whole model (``extractor.*`` and ``head.*`` keys).
        dropout: dropout after each hidden layer of the head (0.5 in OML).
        train_backbone: ``False`` computes the extractor without gradients (see ``freeze``/``unfreeze``).

    Example:
        >>> from oml_core.models import SimpleCNNExtractor
        >>> siamese = ConcatSiamese(extractor=SimpleCNNExtractor(channels=(8,)), mlp_hidden_dims=[16])
        >>> x1, x2 = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
        >>> siamese(x1=x1, x2=x2).shape, siamese.eval().predict(x1, x2).shape
        (torch.Size([3]), torch.Size([3]))
    """

    input_kind: InputKind = "images"

    def __init__(
        self,
        extractor: Extractor,
        mlp_hidden_dims: Sequence[int],
        use_tta: bool = False,
        weights: str | Path | None = None,
        dropout: float = 0.5,
        train_backbone: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(extractor, nn.Module):
            raise OMLError(f"ConcatSiamese needs an nn.Module extractor, got {type(extractor).__name__}")
        if not 0.0 <= dropout < 1.0:
            raise OMLError(f"ConcatSiamese: dropout must be in [0, 1), got {dropout}")
        self.extractor = extractor
        self.mlp_hidden_dims = [int(d) for d in mlp_hidden_dims]
        self.use_tta = use_tta
        self.train_backbone = train_backbone
        self.head = _siamese_head(int(extractor.feat_dim), self.mlp_hidden_dims, dropout)
        if weights is not None:
            _load_weights(self, weights)

    @property
    def symmetric(self) -> bool:
        return self.use_tta

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Logits ``(B,)``: high for a negative pair (train with ``BCEWithLogitsLoss(logits, is_negative.float())``)."""
        _check_pair("ConcatSiamese", x1, x2, ndim=4)
        x = torch.cat([x1, x2], dim=2)
        with torch.set_grad_enabled(self.train_backbone and torch.is_grad_enabled()):
            features = self.extractor(x)
        return self.head(features).reshape(len(x))

    def predict(self, x1: Tensor, x2: Tensor) -> Tensor:
        """Probabilities ``(B,)`` that a pair is negative: the re-estimated distances."""
        scores = torch.sigmoid(self.forward(x1, x2))
        if self.use_tta:
            scores = (scores + torch.sigmoid(self.forward(x2, x1))) / 2
        return scores

    def freeze(self) -> None:
        """Train only the head from now on."""
        self.train_backbone = False

    def unfreeze(self) -> None:
        """Train the extractor too from now on."""
        self.train_backbone = True


# ================================================================================================ LinearSiamese
class LinearSiamese(nn.Module):
    """A learnable linear map of both embeddings, then their L2 distance (plus ``output_bias``): a light re-ranker
    on precomputed embeddings (OML's ``LinearTrivialDistanceSiamese``).

    ``identity_init=True`` starts from the identity map, i.e. from the plain embedding distance.

    Example:
        >>> model = LinearSiamese(feat_dim=4, identity_init=True)
        >>> x1, x2 = torch.zeros(2, 4), torch.ones(2, 4)
        >>> model.predict(x1, x2).tolist()
        [2.0, 2.0]
    """

    input_kind: InputKind = "embeddings"
    symmetric = True

    def __init__(self, feat_dim: int, identity_init: bool = True, output_bias: float = 0.0) -> None:
        super().__init__()
        if feat_dim < 1:
            raise OMLError(f"LinearSiamese: feat_dim must be >= 1, got {feat_dim}")
        self.feat_dim = int(feat_dim)
        self.output_bias = float(output_bias)
        self.proj = nn.Linear(self.feat_dim, self.feat_dim, bias=False)
        if identity_init:
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(self.feat_dim))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        _check_pair("LinearSiamese", x1, x2, ndim=2)
        if x1.shape[1] != self.feat_dim:
            raise OMLError(f"LinearSiamese: expected embeddings of size {self.feat_dim}, got {x1.shape[1]}")
        return elementwise_dist(self.proj(x1), self.proj(x2)) + self.output_bias

    def predict(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.forward(x1, x2)


#: OML's name for ``LinearSiamese``.
LinearTrivialDistanceSiamese = LinearSiamese


# ================================================================================================ TrivialDistanceSiamese
class TrivialDistanceSiamese(nn.Module):
    """The L2 distance between the extractor's embeddings of the two inputs (plus ``output_bias``): the baseline
    re-ranker, which reproduces the retrieval it re-ranks. With ``extractor=None`` the inputs are embeddings.

    Example:
        >>> TrivialDistanceSiamese(extractor=None).predict(torch.zeros(1, 2), torch.tensor([[3.0, 4.0]])).tolist()
        [5.0]
    """

    symmetric = True

    def __init__(self, extractor: Extractor | None = None, output_bias: float = 0.0) -> None:
        super().__init__()
        if extractor is not None and not isinstance(extractor, nn.Module):
            raise OMLError(f"TrivialDistanceSiamese needs an nn.Module extractor (or None), got {type(extractor).__name__}")
        self.extractor = extractor
        self.output_bias = float(output_bias)

    @property
    def input_kind(self) -> InputKind:  # type: ignore[override]
        return "embeddings" if self.extractor is None else "images"

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        _check_pair("TrivialDistanceSiamese", x1, x2)
        if self.extractor is not None:
            # one call for both halves: the same batch-norm statistics and half the Python overhead
            both = self.extractor(torch.cat([x1, x2]))
            x1, x2 = both[: len(x1)], both[len(x1) :]
        return elementwise_dist(x1, x2) + self.output_bias

    def predict(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.forward(x1, x2)


# ================================================================================================ configs
@attrs.frozen(kw_only=True)
class ConcatSiameseConfig:
    """``concat_siamese``: the backbone (any extractor), the head's hidden sizes, TTA, dropout and weights."""

    extractor: ExtractorChoice
    mlp_hidden_dims: tuple[int, ...] = (100,)
    use_tta: bool = False
    weights: str | None = None
    dropout: float = 0.5
    train_backbone: bool = True


@attrs.frozen(kw_only=True)
class LinearSiameseConfig:
    """``linear_siamese``: the embedding size, identity initialisation and a constant added to the distances."""

    feat_dim: int
    identity_init: bool = True
    output_bias: float = 0.0


@attrs.frozen(kw_only=True)
class TrivialDistanceSiameseConfig:
    """``trivial_distance_siamese``: the extractor (none: the inputs are embeddings) and a constant offset."""

    extractor: ExtractorChoice | None = None
    output_bias: float = 0.0


def create_concat_siamese(
    extractor: Any, mlp_hidden_dims: tuple[int, ...], use_tta: bool, weights: str | None, dropout: float, train_backbone: bool
) -> ConcatSiamese:
    return ConcatSiamese(
        extractor, list(mlp_hidden_dims), use_tta=use_tta, weights=weights, dropout=dropout, train_backbone=train_backbone
    )


def create_linear_siamese(feat_dim: int, identity_init: bool, output_bias: float) -> LinearSiamese:
    return LinearSiamese(feat_dim, identity_init=identity_init, output_bias=output_bias)


def create_trivial_distance_siamese(extractor: Any, output_bias: float) -> TrivialDistanceSiamese:
    return TrivialDistanceSiamese(extractor, output_bias=output_bias)


def model_input_kind(model: Any) -> InputKind:
    """``"images"`` or ``"embeddings"``: what ``model`` compares (models without ``input_kind`` take images).

    Example:
        >>> model_input_kind(LinearSiamese(feat_dim=2))
        'embeddings'
    """
    kind = getattr(model, "input_kind", "images")
    if kind not in ("images", "embeddings"):
        raise OMLError(f"{type(model).__name__}.input_kind must be 'images' or 'embeddings', got {kind!r}")
    return cast(InputKind, kind)


__all__ = [
    "ConcatSiamese",
    "ConcatSiameseConfig",
    "LinearSiamese",
    "LinearSiameseConfig",
    "LinearTrivialDistanceSiamese",
    "TrivialDistanceSiamese",
    "TrivialDistanceSiameseConfig",
    "elementwise_dist",
    "model_input_kind",
]
