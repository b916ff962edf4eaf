"""The plugin's extractor: a small convolutional network (replace it with your own model)."""

from __future__ import annotations

import attrs
from torch import Tensor, nn


@attrs.frozen(kw_only=True)
class TemplateCNNConfig:
    """What a config file can set: ``extractor: {type: template_cnn, feat_dim: 64, width: 16}``."""

    feat_dim: int = 64
    width: int = 16
    normalise_features: bool = True


class TemplateCNN(nn.Module):
    """Three strided convolutions, global average pooling and a linear head: ``(B, 3, H, W) -> (B, feat_dim)``.

    An OML extractor is any ``nn.Module`` with an int ``feat_dim`` (``oml_core.protocols.Extractor``).

    Example:
        >>> TemplateCNN(feat_dim=8)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 8])
    """

    def __init__(self, feat_dim: int = 64, width: int = 16, normalise_features: bool = True) -> None:
        super().__init__()
        if feat_dim <= 0 or width <= 0:
            raise ValueError(f"TemplateCNN needs positive feat_dim and width, got feat_dim={feat_dim}, width={width}")
        self.feat_dim = feat_dim
        self.normalise_features = normalise_features
        layers: list[nn.Module] = []
        channels = 3
        for out_channels in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out_channels, 3, stride=2, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU()]
            channels = out_channels
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, feat_dim)

    def forward(self, images: Tensor) -> Tensor:
        embeddings = self.head(self.body(images))
        if self.normalise_features:
            # clamped norm: an all-zero embedding stays finite instead of becoming NaN
            embeddings = embeddings / embeddings.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return embeddings


def create_template_cnn(feat_dim: int = 64, width: int = 16, normalise_features: bool = True) -> TemplateCNN:
    """The factory OML calls with the config's fields: ``registry.create("template_cnn", {"feat_dim": 8})``."""
    return TemplateCNN(feat_dim=feat_dim, width=width, normalise_features=normalise_features)
