"""``ViTExtractor``: OML's ViT extractor (DINO / DINOv2 backbones) with safe, verified weight loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
import torch.nn.functional as F
from torch import Tensor, nn

from oml_core.errors import OMLError
from oml_core.models import normalise
from oml_core.weights import (
    PretrainedModels,
    WeightsZoo,
    default_zoo,
    find_zoo,
    load_checkpoint,
    load_weights_into,
    plugin_zoo,
    resolve_weights,
    strip_prefix,
)
from oml_vit.arch import ARCHS, VisionTransformer, build_vit

ViTArchName = Literal[
    "vits16", "vits8", "vitb16", "vitb8", "vits14", "vitb14", "vitl14", "vits14_reg", "vitb14_reg", "vitl14_reg"
]


class ViTExtractor(nn.Module):
    """Images ``(B, 3, H, W)`` -> CLS embeddings ``(B, feat_dim)`` of a DINO / DINOv2 Vision Transformer.

    Args:
        weights: a weights name (``"vits16_dino"``, see ``oml plugins``), a path to a checkpoint (``.pth``,
            ``.ckpt`` or ``.safetensors``; Lightning's ``state_dict`` and prefixes such as ``model.`` are handled),
            or ``None`` for a random initialisation.
        arch: one of ``ARCHS``: ``vits16``, ``vits8``, ``vitb16``, ``vitb8`` (DINO), ``vits14``, ``vitb14``,
            ``vitl14`` and their ``_reg`` variants (DINOv2).
        normalise_features: L2-normalise the output (zero-safe).
        use_multi_scale: average the embeddings of the image at scales 1, 1/sqrt(2) and 1/2 (as DINO's evaluation).

    The backbone is ``self.model``; its state_dict has exactly the keys of the official checkpoints.

    Example:
        >>> extractor = ViTExtractor(None, arch="vits16", normalise_features=True)
        >>> extractor(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 384])
    """

    #: OML's ``ViTExtractor.pretrained_models``: the zoo's weights for this extractor, by name
    pretrained_models = PretrainedModels("vit")

    constructors = tuple(ARCHS)

    def __init__(
        self,
        weights: str | Path | None,
        arch: str,
        normalise_features: bool = False,
        use_multi_scale: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise OMLError(f"ViTExtractor: unknown arch {arch!r}; available: {', '.join(ARCHS)}")
        self.arch = arch
        self.normalise_features = normalise_features
        self.mscale = use_multi_scale
        self.model: VisionTransformer = build_vit(arch)
        if weights is None:
            return
        path, entry = resolve_weights(weights, zoo=_zoo_for(weights))
        if entry is not None and entry.arch != arch:
            raise OMLError(f"weights {entry.name!r} are for arch {entry.arch!r}, not {arch!r}: use arch={entry.arch!r}")
        self.load_backbone_weights(load_checkpoint(path), source=f"{weights} ({path})" if entry else str(path))

    def load_backbone_weights(self, state_dict: dict[str, Tensor], *, source: str = "state_dict") -> None:
        """Load an official (or fine-tuned) backbone state_dict strictly; wrapper prefixes are stripped."""
        state_dict, _ = strip_prefix(state_dict, self.model.state_dict())
        if "pos_embed" in state_dict:
            self.model.adopt_pos_embed_shape(state_dict["pos_embed"])
        load_weights_into(self.model, state_dict, source=source)

    @classmethod
    def from_pretrained(cls, weights: str, **kwargs: Any) -> ViTExtractor:
        """The extractor for the weights name ``weights``, with the architecture it was trained with.

        Example:
            >>> extractor = ViTExtractor.from_pretrained("vits16_dino")   # doctest: +SKIP
        """
        zoo = _zoo_for(weights) or find_zoo(weights) or default_zoo()
        entry = zoo.get(weights)
        kwargs.setdefault("arch", entry.arch)
        kwargs.setdefault("normalise_features", False)
        return cls(weights, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        features = self._multi_scale(x) if self.mscale else self.model(x)
        return normalise(features) if self.normalise_features else features

    def _multi_scale(self, images: Tensor) -> Tensor:
        total = self.model(images)
        for scale in (1 / 2**0.5, 1 / 2):
            total = total + self.model(F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False))
        return total / 3

    @property
    def feat_dim(self) -> int:
        return self.model.embed_dim


def _zoo_for(weights: str | Path) -> WeightsZoo | None:
    """This plugin's own zoo when it knows ``weights`` (no host needed), else None (the installed plugins' zoo)."""
    from oml_vit.plugin import oml_register_weights

    return plugin_zoo("oml_vit", oml_register_weights, weights)


@attrs.frozen(kw_only=True)
class ViTConfig:
    """``vit``: a DINO / DINOv2 Vision Transformer. ``weights``: a weights name, a checkpoint path or null."""

    arch: ViTArchName = "vits16"
    weights: str | None = None
    normalise_features: bool = False
    use_multi_scale: bool = False


def create_vit(arch: str, weights: str | None, normalise_features: bool, use_multi_scale: bool) -> ViTExtractor:
    return ViTExtractor(weights, arch=arch, normalise_features=normalise_features, use_multi_scale=use_multi_scale)


__all__ = ["ViTConfig", "ViTExtractor", "create_vit"]
