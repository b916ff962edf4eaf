"""``ViTCLIPExtractor`` and ``ViTUnicomExtractor``: OML's CLIP-family image extractors, with OML's names and call
shapes, loading the published files strictly through the shared loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from oml_clip import pretrained
from oml_clip.arch import CLIP_ARCHS, UNICOM_ARCHS, ClipVisual, UnicomVisual, build_clip_visual, build_unicom_visual
from oml_core.distances import normalise
from oml_core.errors import OMLError
from oml_core.weights import find_entry, load_pretrained
from oml_core.zoo import WeightsRegistry

ClipArchName = Literal["vitb16_224", "vitb32_224", "vitl14_224", "vitl14_336"]
UnicomArchName = Literal["vitb32_unicom", "vitb16_unicom", "vitl14_unicom", "vitl14_336px_unicom"]


def _from_pretrained(cls: Any, extractor: str, weights: str, zoo: WeightsRegistry | None, kwargs: dict[str, Any]) -> Any:
    entry = find_entry(weights, zoo=zoo, table=pretrained.WEIGHTS)
    if entry is None or entry.extractor != extractor:
        known = ", ".join(e.name for e in pretrained.WEIGHTS if e.extractor == extractor)
        raise OMLError(f"{cls.__name__}.from_pretrained: {weights!r} is not a {extractor} weights name; known: {known}")
    for key, value in {"arch": entry.arch, **entry.init_args}.items():
        kwargs.setdefault(key, value)
    return cls(weights, zoo=zoo, **kwargs)


class ViTCLIPExtractor(nn.Module):
    """Images ``(B, 3, S, S)`` -> CLIP image embeddings ``(B, output_dim)`` (OpenAI's CLIP or ruCLIP image tower).

    Args:
        weights: a weights name (``openai_vitb16_224``, ``sber_vitb32_224``... see ``oml zoo list``), a checkpoint
            path (OpenAI's TorchScript ``.pt``, a whole CLIP state_dict whose ``visual.*`` part is taken, or the
            tower's own state_dict), or ``None``.
        arch: ``vitb16_224``, ``vitb32_224``, ``vitl14_224`` or ``vitl14_336`` (the suffix is the input size).
        normalise_features: L2-normalise the output (zero-safe).

    Example:
        >>> ViTCLIPExtractor(None, arch="vitb32_224").feat_dim
        512
    """

    constructors = tuple(CLIP_ARCHS)

    def __init__(
        self, weights: str | Path | None, arch: str, normalise_features: bool = True, *, zoo: WeightsRegistry | None = None
    ) -> None:
        super().__init__()
        if arch not in CLIP_ARCHS:
            raise OMLError(f"ViTCLIPExtractor: unknown arch {arch!r}; available: {', '.join(CLIP_ARCHS)}")
        self.arch = arch
        self.normalise_features = normalise_features
        self.visual: ClipVisual = build_clip_visual(arch)
        self.input_size = self.visual.image_size
        if weights is not None:
            load_pretrained(self.visual, weights, arch=arch, zoo=zoo, table=pretrained.WEIGHTS)

    @classmethod
    def from_pretrained(cls, weights: str, *, zoo: WeightsRegistry | None = None, **kwargs: Any) -> ViTCLIPExtractor:
        """The extractor of CLIP weights ``weights`` with OML's arguments.

        Example:
            >>> extractor = ViTCLIPExtractor.from_pretrained("openai_vitb32_224")   # doctest: +SKIP
        """
        return _from_pretrained(cls, "vit_clip", weights, zoo, kwargs)  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise OMLError(
                f"ViTCLIPExtractor({self.arch}) takes {self.input_size}x{self.input_size} images (its position table "
                f"has a fixed size), got {tuple(x.shape[-2:])}: resize them, e.g. with the norm_resize_albu_clip transform"
            )
        features = self.visual(x)
        return normalise(features) if self.normalise_features else features

    @property
    def feat_dim(self) -> int:
        return self.visual.output_dim


class ViTUnicomExtractor(nn.Module):
    """Images ``(B, 3, S, S)`` -> Unicom embeddings (OML's ``ViTUnicomExtractor``).

    Args:
        weights: a weights name (``vitb32_unicom``... as in OML, the names of the architectures), a checkpoint path,
            or ``None``.
        arch: ``vitb32_unicom``, ``vitb16_unicom``, ``vitl14_unicom`` or ``vitl14_336px_unicom``.
        normalise_features: L2-normalise the output (zero-safe).
        use_gradient_ckpt: recompute the blocks in the backward pass while training (saves memory).

    Example:
        >>> ViTUnicomExtractor(None, arch="vitb32_unicom", normalise_features=True).feat_dim
        512
    """

    constructors = tuple(UNICOM_ARCHS)

    def __init__(
        self,
        weights: str | Path | None,
        arch: str,
        normalise_features: bool = True,
        use_gradient_ckpt: bool = True,
        *,
        zoo: WeightsRegistry | None = None,
    ) -> None:
        super().__init__()
        if arch not in UNICOM_ARCHS:
            raise OMLError(f"ViTUnicomExtractor: unknown arch {arch!r}; available: {', '.join(UNICOM_ARCHS)}")
        self.arch = arch
        self.normalise_features = normalise_features
        self.use_gradient_ckpt = use_gradient_ckpt
        self.model: UnicomVisual = build_unicom_visual(arch)
        self.input_size = self.model.image_size
        if weights is not None:
            load_pretrained(self.model, weights, arch=arch, zoo=zoo, table=pretrained.WEIGHTS)

    @classmethod
    def from_pretrained(cls, weights: str, *, zoo: WeightsRegistry | None = None, **kwargs: Any) -> ViTUnicomExtractor:
        """The extractor of Unicom weights ``weights`` with OML's arguments.

        Example:
            >>> extractor = ViTUnicomExtractor.from_pretrained("vitb32_unicom")   # doctest: +SKIP
        """
        return _from_pretrained(cls, "vit_unicom", weights, zoo, kwargs)  # type: ignore[no-any-return]

    def forward(self, x: Tensor) -> Tensor:
        if self.use_gradient_ckpt and self.training and torch.is_grad_enabled():
            model = self.model
            tokens = model.patch_embed(x) + model.pos_embed
            for block in model.blocks:
                tokens = checkpoint(block, tokens, use_reentrant=False)
            tokens = model.norm(tokens.float())
            features = model.feature(tokens.reshape(tokens.shape[0], -1))
        else:
            features = self.model(x)
        return normalise(features) if self.normalise_features else features

    @property
    def feat_dim(self) -> int:
        return self.model.output_dim


@attrs.frozen(kw_only=True)
class ViTCLIPConfig:
    """``vit_clip``: a CLIP image tower. ``weights``: a weights name (``openai_vitb16_224``...), a path or null."""

    arch: ClipArchName = "vitb32_224"
    weights: str | None = None
    normalise_features: bool = False


@attrs.frozen(kw_only=True)
class ViTUnicomConfig:
    """``vit_unicom``: a Unicom ViT. ``weights``: a weights name (``vitb32_unicom``...), a path or null."""

    arch: UnicomArchName = "vitb32_unicom"
    weights: str | None = None
    normalise_features: bool = True
    use_gradient_ckpt: bool = False


def create_vit_clip(
    arch: str, weights: str | None, normalise_features: bool, zoo: WeightsRegistry | None = None
) -> ViTCLIPExtractor:
    return ViTCLIPExtractor(weights, arch=arch, normalise_features=normalise_features, zoo=zoo)


def create_vit_unicom(
    arch: str, weights: str | None, normalise_features: bool, use_gradient_ckpt: bool, zoo: WeightsRegistry | None = None
) -> ViTUnicomExtractor:
    return ViTUnicomExtractor(
        weights, arch=arch, normalise_features=normalise_features, use_gradient_ckpt=use_gradient_ckpt, zoo=zoo
    )


__all__ = ["ViTCLIPConfig", "ViTCLIPExtractor", "ViTUnicomConfig", "ViTUnicomExtractor", "create_vit_clip", "create_vit_unicom"]
