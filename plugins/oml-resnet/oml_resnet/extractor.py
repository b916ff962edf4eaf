"""``ResnetExtractor``: OML's ResNet extractor (torchvision layout), average or GeM pooling, classifier removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
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
from oml_resnet.arch import ARCHS, ResNet, build_resnet

ResNetArchName = Literal["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


class ResnetExtractor(nn.Module):
    """Images ``(B, 3, H, W)`` -> pooled ResNet features ``(B, feat_dim)``.

    Args:
        weights: a weights name (``"resnet50_imagenet1k_v1"``, see ``oml plugins``), a checkpoint path (torchvision
            or MoCo layout, Lightning wrappers and prefixes such as ``module.encoder_q.`` are handled), or ``None``.
        arch: ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` or ``resnet152``.
        gem_p: GeM pooling power instead of average pooling (``None`` or ``1`` is average pooling).
        remove_fc: drop the classifier (``feat_dim`` 512 or 2048); with ``False`` the output is the 1000 logits.
        normalise_features: L2-normalise the output (zero-safe).

    Example:
        >>> ResnetExtractor(None, arch="resnet18", gem_p=3.0).feat_dim
        512
    """

    #: OML's ``ResnetExtractor.pretrained_models``: the zoo's weights for this extractor, by name
    pretrained_models = PretrainedModels("resnet")

    constructors = tuple(ARCHS)

    def __init__(
        self,
        weights: str | Path | None,
        arch: str,
        gem_p: float | None = None,
        remove_fc: bool = True,
        normalise_features: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise OMLError(f"ResnetExtractor: unknown arch {arch!r}; available: {', '.join(ARCHS)}")
        self.arch = arch
        self.gem_p = gem_p
        self.remove_fc = remove_fc
        self.normalise_features = normalise_features
        self.model: ResNet = build_resnet(arch, num_classes=None if remove_fc else 1000, gem_p=gem_p)
        if weights is None:
            return
        path, entry = resolve_weights(weights, zoo=_zoo_for(weights))
        if entry is not None and entry.arch != arch:
            raise OMLError(f"weights {entry.name!r} are for arch {entry.arch!r}, not {arch!r}: use arch={entry.arch!r}")
        self.load_backbone_weights(load_checkpoint(path), source=f"{weights} ({path})" if entry else str(path))

    def load_backbone_weights(self, state_dict: dict[str, Tensor], *, source: str = "state_dict") -> None:
        """Load a torchvision-layout state_dict strictly; with ``remove_fc`` the checkpoint's ``fc.*`` is ignored."""
        state_dict, _ = strip_prefix(state_dict, self.model.state_dict())
        skip = (lambda key: key.startswith("fc.")) if self.remove_fc else None
        load_weights_into(self.model, state_dict, source=source, skip=skip)

    @classmethod
    def from_pretrained(cls, weights: str, **kwargs: Any) -> ResnetExtractor:
        """The extractor for the weights name ``weights``, with its architecture (and OML's pooling for MoCo).

        Example:
            >>> extractor = ResnetExtractor.from_pretrained("resnet50_moco_v2")   # doctest: +SKIP
        """
        zoo = _zoo_for(weights) or find_zoo(weights) or default_zoo()
        entry = zoo.get(weights)
        kwargs.setdefault("arch", entry.arch)
        from oml_resnet.plugin import POOLING

        kwargs.setdefault("gem_p", POOLING.get(weights))
        return cls(weights, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        features = self.model(x)
        return normalise(features) if self.normalise_features else features

    @property
    def feat_dim(self) -> int:
        return self.model.arch.feat_dim if self.remove_fc else 1000


def _zoo_for(weights: str | Path) -> WeightsZoo | None:
    """This plugin's own zoo when it knows ``weights`` (no host needed), else None (the installed plugins' zoo)."""
    from oml_resnet.plugin import oml_register_weights

    return plugin_zoo("oml_resnet", oml_register_weights, weights)


@attrs.frozen(kw_only=True)
class ResnetConfig:
    """``resnet``: a torchvision-layout ResNet. ``gem_p``: GeM pooling power (null: average pooling)."""

    arch: ResNetArchName = "resnet50"
    weights: str | None = None
    gem_p: float | None = None
    remove_fc: bool = True
    normalise_features: bool = False


def create_resnet(
    arch: str, weights: str | None, gem_p: float | None, remove_fc: bool, normalise_features: bool
) -> ResnetExtractor:
    return ResnetExtractor(weights, arch=arch, gem_p=gem_p, remove_fc=remove_fc, normalise_features=normalise_features)


__all__ = ["ResnetConfig", "ResnetExtractor", "create_resnet"]
