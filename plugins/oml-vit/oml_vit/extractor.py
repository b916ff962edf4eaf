"""``ViTExtractor``: OML's ViT extractor (DINO / DINOv2 backbones) with safe, verified weight loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
import torch.nn.functional as F
from torch import Tensor, nn

from oml_core.distances import normalise
from oml_core.errors import OMLError
from oml_core.weights import find_entry, load_pretrained
from oml_core.zoo import WeightsRegistry
from oml_vit import pretrained
from oml_vit.arch import ARCHS, VisionTransformer, build_vit

ViTArchName = Literal[
    "vits16", "vits8", "vitb16", "vitb8", "vits14", "vitb14", "vitl14", "vits14_reg", "vitb14_reg", "vitl14_reg"
]


class ViTExtractor(nn.Module):
    """Images ``(B, 3, H, W)`` -> CLS embeddings ``(B, feat_dim)`` of a DINO / DINOv2 Vision Transformer.

    Args:
        weights: a weights name (``"vits16_dino"``, see ``oml zoo list``), a path to a checkpoint (``.pth``,
            ``.ckpt`` or ``.safetensors``; Lightning's ``state_dict`` and prefixes such as ``model.`` are handled),
            or ``None`` for a random initialisation.
        arch: one of ``ARCHS``: ``vits16``, ``vits8``, ``vitb16``, ``vitb8`` (DINO), ``vits14``, ``vitb14``,
            ``vitl14`` and their ``_reg`` variants (DINOv2).
        normalise_features: L2-normalise the output (zero-safe).
        use_multi_scale: average the embeddings of the image at scales 1, 1/sqrt(2) and 1/2 (as DINO's evaluation).
        zoo: the weights registry to look names up in (a host's ``registries.weights``; factories receive it from
            the registries' context); this plugin's own table is always searched after it.

    The backbone is ``self.model``; its state_dict has exactly the keys of the official checkpoints.

    Example:
        >>> extractor = ViTExtractor(None, arch="vits16", normalise_features=True)
        >>> extractor(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 384])
    """

    #: OML's ``ViTExtractor.pretrained_models``: the zoo's weights for this extractor, by name
    pretrained_models = {entry.name: entry for entry in pretrained.WEIGHTS if entry.extractor == "vit"}

    constructors = tuple(ARCHS)

    def __init__(
        self,
        weights: str | Path | None,
        arch: str,
        normalise_features: bool = False,
        use_multi_scale: bool = False,
        *,
        zoo: WeightsRegistry | None = None,
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
        load_pretrained(self.model, weights, arch=arch, zoo=zoo, table=pretrained.WEIGHTS, prepare=self._adopt_pos_embed)

    def _adopt_pos_embed(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        if "pos_embed" in state_dict:
            self.model.adopt_pos_embed_shape(state_dict["pos_embed"])
        return state_dict

    @classmethod
    def from_pretrained(cls, weights: str, *, zoo: WeightsRegistry | None = None, **kwargs: Any) -> ViTExtractor:
        """The extractor for the weights name ``weights``, with the architecture and arguments it was trained with.

        Example:
            >>> extractor = ViTExtractor.from_pretrained("vits16_dino")   # doctest: +SKIP
        """
        entry = find_entry(weights, zoo=zoo, table=pretrained.WEIGHTS)
        if entry is None or entry.extractor != "vit":
            known = ", ".join(e.name for e in pretrained.WEIGHTS if e.extractor == "vit")
            raise OMLError(f"ViTExtractor.from_pretrained: {weights!r} is not a ViT weights name; known: {known}")
        for key, value in {"arch": entry.arch, "normalise_features": False, **entry.init_args}.items():
            kwargs.setdefault(key, value)
        return cls(weights, zoo=zoo, **kwargs)

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


@attrs.frozen(kw_only=True)
class ViTConfig:
    """``vit``: a DINO / DINOv2 Vision Transformer. ``weights``: a weights name, a checkpoint path or null."""

    arch: ViTArchName = "vits16"
    weights: str | None = None
    normalise_features: bool = False
    use_multi_scale: bool = False


def create_vit(
    arch: str, weights: str | None, normalise_features: bool, use_multi_scale: bool, zoo: WeightsRegistry | None = None
) -> ViTExtractor:
    return ViTExtractor(weights, arch=arch, normalise_features=normalise_features, use_multi_scale=use_multi_scale, zoo=zoo)


__all__ = ["ViTConfig", "ViTExtractor", "create_vit"]
