"""``ResnetExtractor``: OML's ResNet extractor (torchvision layout), average or GeM pooling, classifier removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
from torch import Tensor, nn

from oml_core.distances import normalise
from oml_core.errors import OMLError
from oml_core.weights import find_entry, load_pretrained
from oml_core.zoo import WeightsRegistry
from oml_resnet import pretrained
from oml_resnet.arch import ARCHS, ResNet, Stem, build_resnet

ResNetArchName = Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


class ResnetExtractor(nn.Module):
    """Images ``(B, 3, H, W)`` -> pooled ResNet features ``(B, feat_dim)``.

    Args:
        weights: a weights name (``"resnet50_imagenet1k_v1"``, see ``oml zoo list``), a checkpoint path (torchvision
            or MoCo layout, Lightning wrappers and prefixes such as ``module.encoder_q.`` are handled), or ``None``.
        arch: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` or ``resnet152``.
        gem_p: GeM pooling power instead of average pooling (``None`` or ``1`` is average pooling).
        remove_fc: drop the classifier (``feat_dim`` 512 or 2048); with ``False`` the output is the 1000 logits.
        normalise_features: L2-normalise the output (zero-safe).
        width: channels of the first stage (64: torchvision's; the feature size is ``8 * width * expansion``).
        stem: ``imagenet`` (torchvision's 7x7 stride-2 convolution and max-pooling), ``small`` (one 3x3
            convolution, stride 1, no pooling: for 32 px inputs) or ``small_stride2``. Pretrained weights need
            ``width=64`` and the ``imagenet`` stem.
        pool_grid: average-pool to a ``pool_grid x pool_grid`` grid and flatten (1: global pooling); the feature
            size is multiplied by ``pool_grid ** 2``.
        zoo: the weights registry to look names up in (see ``ViTExtractor``); this plugin's table comes after it.

    Example:
        >>> ResnetExtractor(None, arch="resnet18", gem_p=3.0).feat_dim
        512
        >>> ResnetExtractor(None, arch="resnet18", width=32, stem="small_stride2").feat_dim
        256
    """

    #: OML's ``ResnetExtractor.pretrained_models``: the zoo's weights for this extractor, by name
    pretrained_models = {entry.name: entry for entry in pretrained.WEIGHTS if entry.extractor == "resnet"}

    constructors = tuple(ARCHS)

    def __init__(
        self,
        weights: str | Path | None,
        arch: str,
        gem_p: float | None = None,
        remove_fc: bool = True,
        normalise_features: bool = False,
        *,
        width: int = 64,
        stem: Stem = "imagenet",
        pool_grid: int = 1,
        zoo: WeightsRegistry | None = None,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise OMLError(f"ResnetExtractor: unknown arch {arch!r}; available: {', '.join(ARCHS)}")
        self.arch = arch
        self.gem_p = gem_p
        self.remove_fc = remove_fc
        self.normalise_features = normalise_features
        self.model: ResNet = build_resnet(
            arch, num_classes=None if remove_fc else 1000, gem_p=gem_p, width=width, stem=stem, pool_grid=pool_grid
        )
        if weights is None:
            return
        if width != 64 or stem != "imagenet":
            raise OMLError(
                f"ResnetExtractor: weights {str(weights)!r} are for torchvision's layout (width 64, imagenet stem), "
                f"not width {width} with the {stem!r} stem; set weights: null to train this network from scratch, "
                "or drop width/stem to use the weights"
            )
        if pool_grid > 1 and not remove_fc:
            raise OMLError(
                f"ResnetExtractor: weights {str(weights)!r} have a classifier for global pooling, not for pool_grid "
                f"{pool_grid} (its inputs grow by pool_grid ** 2); set remove_fc: true to load the rest, or pool_grid: 1"
            )
        # with remove_fc, the checkpoint's classifier (or MoCo's projector) fc.* is not loaded
        skip = (lambda key: key.startswith("fc.")) if remove_fc else None
        load_pretrained(self.model, weights, arch=arch, zoo=zoo, table=pretrained.WEIGHTS, skip=skip)

    @classmethod
    def from_pretrained(cls, weights: str, *, zoo: WeightsRegistry | None = None, **kwargs: Any) -> ResnetExtractor:
        """The extractor for the weights name ``weights``, with its architecture and OML's arguments (GeM p=5 for
        MoCo).

        Example:
            >>> extractor = ResnetExtractor.from_pretrained("resnet50_moco_v2")   # doctest: +SKIP
        """
        entry = find_entry(weights, zoo=zoo, table=pretrained.WEIGHTS)
        if entry is None or entry.extractor != "resnet":
            known = ", ".join(e.name for e in pretrained.WEIGHTS)
            raise OMLError(f"ResnetExtractor.from_pretrained: {weights!r} is not a ResNet weights name; known: {known}")
        for key, value in {"arch": entry.arch, **entry.init_args}.items():
            kwargs.setdefault(key, value)
        return cls(weights, zoo=zoo, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        features = self.model(x)
        return normalise(features) if self.normalise_features else features

    @property
    def feat_dim(self) -> int:
        return self.model.feat_dim if self.remove_fc else 1000


@attrs.frozen(kw_only=True)
class ResnetConfig:
    """``resnet``: a torchvision-layout ResNet. ``gem_p``: GeM pooling power (null: average pooling). ``width``:
    channels of the first stage (torchvision's 64); ``stem``: ``imagenet`` (7x7 stride 2 + max-pooling),
    ``small`` (3x3 stride 1, no pooling: 32 px inputs) or ``small_stride2``; other than 64 and ``imagenet`` need
    ``weights: null``. ``pool_grid``: pool to a k x k grid and flatten (keeps the layout; 1: global pooling)."""

    arch: ResNetArchName = "resnet50"
    weights: str | None = None
    gem_p: float | None = None
    remove_fc: bool = True
    normalise_features: bool = False
    width: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    stem: Stem = "imagenet"
    pool_grid: int = attrs.field(default=1, validator=attrs.validators.ge(1))


def create_resnet(
    arch: str,
    weights: str | None,
    gem_p: float | None,
    remove_fc: bool,
    normalise_features: bool,
    width: int = 64,
    stem: Stem = "imagenet",
    pool_grid: int = 1,
    zoo: WeightsRegistry | None = None,
) -> ResnetExtractor:
    return ResnetExtractor(
        weights,
        arch=arch,
        gem_p=gem_p,
        remove_fc=remove_fc,
        normalise_features=normalise_features,
        width=width,
        stem=stem,
        pool_grid=pool_grid,
        zoo=zoo,
    )


__all__ = ["ResnetConfig", "ResnetExtractor", "create_resnet"]
