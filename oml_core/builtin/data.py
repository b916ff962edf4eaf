"""Built-in plugin: OML's image transforms (selectable by name in configs) and the ``oml mock-dataset`` command.

The config classes live here, not next to the transform classes, so that starting a host (e.g. ``oml plugins``)
does not import torch, pillow and pandas; each factory imports ``oml_core.data.transforms`` when first called.
Config field names are the keyword arguments of the classes they build.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Literal

import attrs

from oml_core._markers import hookimpl
from oml_core.registry import NoConfig

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.registry import Registry

Interpolation = Literal["nearest", "bilinear", "bicubic", "box"]
# ImageNet statistics (repeated from oml_core.data.const to keep this module free of heavy imports)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


# ================================================================================================== configs
@attrs.frozen(kw_only=True)
class ResizeConfig:
    """``resize``: to ``size x size``; ``keep_aspect`` scales the longer side and pads with grey level ``fill``."""

    size: int = 224
    keep_aspect: bool = False
    interpolation: Interpolation = "bilinear"
    fill: int = 0


@attrs.frozen(kw_only=True)
class CenterCropConfig:
    """``center_crop``: the central ``size x size`` pixels."""

    size: int = 224


@attrs.frozen(kw_only=True)
class RandomResizedCropConfig:
    """``random_resized_crop``: a random part (area fraction ``scale``, aspect ``ratio``) resized to ``size``."""

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: Interpolation = "bilinear"


@attrs.frozen(kw_only=True)
class HorizontalFlipConfig:
    """``horizontal_flip``: mirror with probability ``p``."""

    p: float = 0.5


@attrs.frozen(kw_only=True)
class ColorJitterConfig:
    """``color_jitter``: random brightness / contrast / saturation factors in [1 - x, 1 + x], hue shift in [-hue, hue]."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0


@attrs.frozen(kw_only=True)
class NormaliseConfig:
    """``normalise``: ``(x - mean) / std`` per channel (ImageNet statistics by default)."""

    mean: tuple[float, float, float] = _MEAN
    std: tuple[float, float, float] = _STD


@attrs.frozen(kw_only=True)
class NormConfig:
    """``norm_torch``: to tensor and normalise (what a dataset does when given no transform)."""

    mean: tuple[float, float, float] = _MEAN
    std: tuple[float, float, float] = _STD


@attrs.frozen(kw_only=True)
class NormResizeConfig:
    """``norm_resize_torch``: resize to ``im_size``, to tensor, normalise (the usual inference transform)."""

    im_size: int = 224
    mean: tuple[float, float, float] = _MEAN
    std: tuple[float, float, float] = _STD


@attrs.frozen(kw_only=True)
class NormResizeHypvitConfig:
    """``norm_resize_hypvit_torch``: shorter side to ``im_size`` (bicubic), centre crop ``crop_size``, normalise."""

    im_size: int = 224
    crop_size: int = 224
    mean: tuple[float, float, float] = _MEAN
    std: tuple[float, float, float] = _STD


@attrs.frozen(kw_only=True)
class NormResizeAlbuConfig:
    """``norm_resize_albu``: longer side to ``im_size``, pad to a white square, normalise (OML's albumentations preset)."""

    im_size: int = 224
    mean: tuple[float, float, float] = _MEAN
    std: tuple[float, float, float] = _STD


@attrs.frozen(kw_only=True)
class ImSizeConfig:
    """``im_size``: the side of the square the image ends as."""

    im_size: int = 224


@attrs.frozen(kw_only=True)
class AugsConfig:
    """``augs_torch``: random resized crop (area ``min_scale``-1), flip, mild colour jitter, to tensor, normalise."""

    im_size: int = 224
    mean: tuple[float, float, float] = _MEAN
    std: tuple[float, float, float] = _STD
    min_scale: float = 0.5


# ================================================================================================== factories
def _transforms() -> Any:
    from oml_core.data import transforms

    return transforms


def _resize(**kw: Any) -> Any:
    return _transforms().Resize(**kw)


def _center_crop(**kw: Any) -> Any:
    return _transforms().CenterCrop(**kw)


def _random_resized_crop(**kw: Any) -> Any:
    return _transforms().RandomResizedCrop(**kw)


def _horizontal_flip(**kw: Any) -> Any:
    return _transforms().RandomHorizontalFlip(**kw)


def _color_jitter(**kw: Any) -> Any:
    return _transforms().ColorJitter(**kw)


def _normalise(**kw: Any) -> Any:
    return _transforms().Normalize(**kw)


def _to_tensor() -> Any:
    return _transforms().ToTensor()


def _norm_torch(**kw: Any) -> Any:
    return _transforms().get_normalisation_torch(**kw)


def _norm_resize(**kw: Any) -> Any:
    return _transforms().get_normalisation_resize_torch(**kw)


def _augs(**kw: Any) -> Any:
    return _transforms().get_augs_torch(**kw)


def _norm_resize_hypvit(**kw: Any) -> Any:
    return _transforms().get_normalisation_resize_hypvit(**kw)


def _norm_resize_albu(**kw: Any) -> Any:
    return _transforms().get_normalisation_resize_albu(**kw)


def _norm_resize_albu_clip(**kw: Any) -> Any:
    return _transforms().get_normalisation_resize_albu_clip(**kw)


def _unicom(**kw: Any) -> Any:
    return _transforms().get_unicom_transforms(**kw)


@hookimpl
def oml_register_transforms(registry: Registry[Any]) -> None:
    add = registry.add
    add(
        "resize",
        config=ResizeConfig,
        factory=_resize,
        summary="resize to size x size (direct, or keep aspect and pad)",
        example={"size": 32},
    )
    add(
        "center_crop",
        config=CenterCropConfig,
        factory=_center_crop,
        summary="crop the central size x size pixels",
        example={"size": 24},
    )
    add(
        "random_resized_crop",
        config=RandomResizedCropConfig,
        factory=_random_resized_crop,
        summary="crop a random part of the image and resize it to size x size",
        example={"size": 24, "scale": [0.5, 1.0]},
    )
    add(
        "horizontal_flip",
        config=HorizontalFlipConfig,
        factory=_horizontal_flip,
        summary="mirror left-right with probability p",
        example={"p": 0.5},
    )
    add(
        "color_jitter",
        config=ColorJitterConfig,
        factory=_color_jitter,
        summary="random brightness, contrast, saturation and hue changes",
        example={"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05},
    )
    add(
        "normalise",
        config=NormaliseConfig,
        factory=_normalise,
        summary="to tensor, then (x - mean) / std per channel",
        example={},
    )
    add("to_tensor", config=NoConfig, factory=_to_tensor, summary="PIL image -> float tensor (C, H, W) in [0, 1]", example={})
    add(
        "norm_torch",
        config=NormConfig,
        factory=_norm_torch,
        summary="preset: to tensor + normalise (the datasets' default)",
        example={},
    )
    add(
        "norm_resize_torch",
        config=NormResizeConfig,
        factory=_norm_resize,
        summary="preset: resize to im_size, to tensor, normalise (inference)",
        example={"im_size": 32},
    )
    add(
        "norm_resize_hypvit_torch",
        config=NormResizeHypvitConfig,
        factory=_norm_resize_hypvit,
        summary="preset: shorter side to im_size (bicubic), centre crop, normalise (DINOv2, ResNet, OML ViT checkpoints)",
        example={"im_size": 36, "crop_size": 32},
    )
    add(
        "norm_resize_albu",
        config=NormResizeAlbuConfig,
        factory=_norm_resize_albu,
        summary="preset: longer side to im_size, pad to a white square, normalise (OML's albumentations preset)",
        example={"im_size": 32},
    )
    add(
        "norm_resize_albu_clip",
        config=ImSizeConfig,
        factory=_norm_resize_albu_clip,
        summary="preset: norm_resize_albu with CLIP's statistics (CLIP checkpoints)",
        example={"im_size": 32},
    )
    add(
        "unicom_transforms",
        config=ImSizeConfig,
        factory=_unicom,
        summary="preset: shorter side to im_size (bicubic), centre crop, CLIP normalisation (Unicom checkpoints)",
        example={"im_size": 32},
    )
    add(
        "augs_torch",
        config=AugsConfig,
        factory=_augs,
        summary="preset: random resized crop, flip, colour jitter, to tensor, normalise (training)",
        example={"im_size": 32},
    )


# ================================================================================================== command
def _configure_mock_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="folder to write the images and dataframes into")
    parser.add_argument(
        "--labels", type=int, default=36, metavar="N", help="number of identities; a third are validation ones (default 36)"
    )
    parser.add_argument("--instances", type=int, default=8, metavar="K", help="images per identity (default 8)")
    parser.add_argument("--size", type=int, default=64, metavar="S", help="image side in pixels (default 64)")
    parser.add_argument(
        "--seed", type=int, default=0, metavar="X", help="random seed: the same seed gives the same files (default 0)"
    )
    parser.add_argument("--force", action="store_true", help="generate again even if the folder already holds this dataset")


def _mock_dataset(args: argparse.Namespace, host: Host) -> int:
    from oml_core.data.mock import MOCK_DATAFRAMES, MockDatasetParams, generate_mock_dataset

    params = MockDatasetParams(n_labels=args.labels, n_instances=args.instances, im_size=args.size, seed=args.seed)
    root = generate_mock_dataset(
        args.dir,
        n_labels=params.n_labels,
        n_instances=params.n_instances,
        im_size=params.im_size,
        seed=params.seed,
        force=args.force,
    )
    print(
        f"mock dataset in {root}: {params.n_labels * params.n_instances} images of {params.im_size}x{params.im_size}, "
        f"{params.n_train_labels} train and {params.n_val_labels} validation labels x {params.n_instances} instances; "
        f"dataframes: {', '.join(MOCK_DATAFRAMES)}"
    )
    return 0


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "mock-dataset",
        help="generate a small image dataset in OML's format (shapes x colours), deterministically and offline",
        configure=_configure_mock_dataset,
        run=_mock_dataset,
    )
