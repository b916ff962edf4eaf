"""Model building blocks shared by the extractor plugins: zero-safe L2 normalisation, GeM pooling, the MLP head
that OML's ``ExtractorWithMLP`` puts on top of any extractor, and a tiny CNN for smoke tests and demos.

Example:
    >>> import torch
    >>> extractor = ExtractorWithMLP(SimpleCNNExtractor(channels=(8, 16)), mlp_features=[32, 8])
    >>> extractor(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import Tensor, nn

from oml_core.distances import normalise
from oml_core.errors import OMLError
from oml_core.protocols import Extractor

if TYPE_CHECKING:
    from oml_core.host import Host
    from oml_core.zoo import WeightsRegistry


class GeM(nn.Module):
    """Generalised-mean pooling over the spatial dims: ``(mean(clamp(x, eps) ** p)) ** (1 / p)``, ``(B, C, H, W) ->
    (B, C, 1, 1)`` like ``nn.AdaptiveAvgPool2d(1)``. ``p = 1`` is average pooling, large ``p`` tends to max pooling.

    ``p`` is a plain float (not a parameter), so a model using GeM keeps the state_dict of its average-pooled twin.

    Example:
        >>> GeM(p=3.0)(torch.ones(1, 2, 4, 4)).flatten().tolist()
        [1.0, 1.0]
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise OMLError(f"GeM pooling needs p > 0, got p={p}")
        self.p = float(p)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp_min(self.eps).pow(self.p).mean(dim=(-2, -1), keepdim=True).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}"


def mlp(in_features: int, features: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout`` for each hidden size, then ``Linear -> Dropout``: the layout (and so the
    state_dict keys ``0.weight``, ``3.weight``...) of ``torchvision.ops.MLP``, which OML's checkpoints use.

    Example:
        >>> [type(m).__name__ for m in mlp(4, [8, 2])]
        ['Linear', 'ReLU', 'Dropout', 'Linear', 'Dropout']
    """
    if not features:
        raise OMLError("an MLP head needs at least one layer size, e.g. mlp_features=[384]")
    layers: list[nn.Module] = []
    size = in_features
    for hidden in features[:-1]:
        layers += [nn.Linear(size, hidden), nn.ReLU(), nn.Dropout(dropout)]
        size = hidden
    layers += [nn.Linear(size, features[-1]), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class ExtractorWithMLP(nn.Module):
    """Any extractor followed by an MLP projection head (OML's ``ExtractorWithMLP``).

    ``train_backbone=False`` computes the backbone without gradients, so only the head learns; ``freeze()`` and
    ``unfreeze()`` switch it. ``weights`` (a path or a weights name) loads a checkpoint of the whole model
    (keys ``extractor.*`` and ``projection.*``, wrapper prefixes such as Lightning's ``model.`` are stripped).

    Example:
        >>> head = ExtractorWithMLP(SimpleCNNExtractor(channels=(8,)), mlp_features=[16])
        >>> head.feat_dim
        16
    """

    def __init__(
        self,
        extractor: Extractor,
        mlp_features: Sequence[int],
        weights: str | Path | None = None,
        train_backbone: bool = False,
        *,
        zoo: WeightsRegistry | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(extractor, nn.Module):
            raise OMLError(f"ExtractorWithMLP needs an nn.Module extractor, got {type(extractor).__name__}")
        self.extractor = extractor
        self.mlp_features = [int(f) for f in mlp_features]
        self.train_backbone = train_backbone
        self.projection = mlp(int(extractor.feat_dim), self.mlp_features)
        if weights is not None:
            from oml_core.weights import load_pretrained

            load_pretrained(self, weights, zoo=zoo)

    @classmethod
    def from_pretrained(cls, weights: str, *, host: Host | None = None, **overrides: Any) -> ExtractorWithMLP:
        """The extractor of zoo entry ``weights`` (e.g. ``"vits16_224_mlp_384_inshop"``), built as its plugin
        registered it; without ``host``, one with the installed plugins is created for the call.

        Example:
            >>> model = ExtractorWithMLP.from_pretrained("vits16_224_mlp_384_inshop")   # doctest: +SKIP
        """
        from oml_core.zoo import create_pretrained

        model = create_pretrained(weights, host=host, **overrides)
        if not isinstance(model, cls):
            raise OMLError(f"weights {weights!r} are not for an ExtractorWithMLP (they build a {type(model).__name__})")
        return model

    def forward(self, x: Tensor) -> Tensor:
        with torch.set_grad_enabled(self.train_backbone and torch.is_grad_enabled()):
            features = self.extractor(x)
        return self.projection(features)

    @property
    def feat_dim(self) -> int:
        return self.mlp_features[-1]

    def freeze(self) -> None:
        """Train only the head from now on."""
        self.train_backbone = False

    def unfreeze(self) -> None:
        """Train the backbone too from now on."""
        self.train_backbone = True


class SimpleCNNExtractor(nn.Module):
    """A few ``conv3x3 (stride 2) -> BatchNorm -> ReLU`` stages and global average pooling: a tiny, fast extractor
    for smoke tests, demos and CPU-only examples (``feat_dim = channels[-1]``).

    Example:
        >>> SimpleCNNExtractor(channels=(8, 16))(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 16])
    """

    def __init__(self, channels: Sequence[int] = (16, 32), normalise_features: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        if not channels:
            raise OMLError("SimpleCNNExtractor needs at least one stage, e.g. channels=(16, 32)")
        stages: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            stages += [nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            previous = width
        self.body = nn.Sequential(*stages)
        self.normalise_features = normalise_features
        self._feat_dim = int(channels[-1])

    def forward(self, x: Tensor) -> Tensor:
        features = self.body(x).mean(dim=(-2, -1))
        return normalise(features) if self.normalise_features else features

    @property
    def feat_dim(self) -> int:
        return self._feat_dim


@attrs.frozen(kw_only=True)
class SimpleCNNConfig:
    """``simple_cnn``: channels of each stride-2 stage (the last one is ``feat_dim``)."""

    channels: tuple[int, ...] = (16, 32)
    normalise_features: bool = False


__all__ = ["ExtractorWithMLP", "GeM", "SimpleCNNConfig", "SimpleCNNExtractor", "mlp", "normalise"]
