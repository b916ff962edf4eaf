"""Image transforms in torch + pillow: resize (direct or keep-aspect + pad), crops, flip, colour jitter, normalise.

Each transform takes a ``PIL.Image`` or a tensor ``(C, H, W)`` (float in [0, 1] or uint8) and returns the same
kind, except :class:`ToTensor` and :class:`Normalize`, which return float tensors. Random transforms draw from
``generator`` when one is given, else from torch's global generator, so ``torch.manual_seed`` makes them
repeatable (and DataLoader workers, which torch seeds differently, draw different augmentations). Every class is
plain and picklable, so datasets holding them work with ``num_workers > 0``.

Example:
    >>> from PIL import Image
    >>> transform = get_normalisation_resize_torch(32)
    >>> transform(Image.new("RGB", (50, 40))).shape
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from oml_core.data.const import MEAN, MEAN_CLIP, PAD_COLOR, STD, STD_CLIP
from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.host import Host
    from oml_core.registry import Choice, Registries, Registry

ImageOrTensor = Image.Image | Tensor
Interpolation = Literal["nearest", "bilinear", "bicubic", "box"]
TNormParam = tuple[float, float, float]

_PIL_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
}
# "nearest-exact" picks pixel centres like pillow; "area" equals pillow's box filter for whole-number factors
_TORCH_MODES = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic", "box": "area"}


# ================================================================================================== helpers
def to_tensor(image: ImageOrTensor) -> Tensor:
    """A float tensor ``(C, H, W)`` in [0, 1] from a pillow image (or a uint8 tensor); float tensors pass through.

    Example:
        >>> to_tensor(Image.new("RGB", (2, 1), (255, 0, 51))).tolist()
        [[[1.0, 1.0]], [[0.0, 0.0]], [[0.20000000298023224, 0.20000000298023224]]]
    """
    if isinstance(image, Tensor):
        if image.dtype == torch.uint8:
            return image.float().div(255.0)
        if not image.is_floating_point():
            raise OMLError(f"expected a float or uint8 image tensor, got dtype {image.dtype}")
        return image
    if not isinstance(image, Image.Image):
        raise OMLError(f"expected a PIL image or a tensor (C, H, W), got {type(image).__name__}")
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)


def to_pil(tensor: Tensor) -> Image.Image:
    """A pillow image from a tensor ``(C, H, W)``: floats are taken as [0, 1] and rounded to 8 bits.

    Example:
        >>> to_pil(torch.ones(3, 1, 2)).getpixel((0, 0))
        (255, 255, 255)
    """
    if tensor.dtype != torch.uint8:
        tensor = _round_to_uint8(tensor.detach().clamp(0, 1).mul(255))
    array = tensor.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def _round_to_uint8(tensor: Tensor) -> Tensor:
    # floor(x + 0.5) rounds halves up, as pillow does; it is also much faster than Tensor.round() on CPU here
    return tensor.clamp(0, 255).add(0.5).floor().to(torch.uint8)


def _size_hw(image: ImageOrTensor) -> tuple[int, int]:
    if isinstance(image, Tensor):
        return int(image.shape[-2]), int(image.shape[-1])
    return image.height, image.width


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    elif isinstance(size, Sequence) and len(size) == 2 and all(isinstance(v, int) for v in size):
        pair = (int(size[0]), int(size[1]))
    else:
        raise OMLError(f"{name}: size must be an int or a (height, width) pair of ints, got {size!r}")
    if min(pair) <= 0:
        raise OMLError(f"{name}: size must be positive, got {size!r}")
    return pair


def _check_interpolation(value: str, name: str) -> str:
    if value not in _PIL_RESAMPLING:
        raise OMLError(f"{name}: interpolation must be one of {', '.join(_PIL_RESAMPLING)}, got {value!r}")
    return value


def _resize(image: ImageOrTensor, size_hw: tuple[int, int], interpolation: str, antialias: bool = True) -> ImageOrTensor:
    height, width = size_hw
    if isinstance(image, Image.Image):
        if antialias:
            return image.resize((width, height), resample=_PIL_RESAMPLING[interpolation])
        image = (to_tensor(image) * 255).round().to(torch.uint8)  # OpenCV-style: interpolate the 8-bit pixels as they are
    uint8 = image.dtype == torch.uint8
    batch = image.float()[None] if uint8 else image[None]
    mode = _TORCH_MODES[interpolation]
    antialias = antialias and mode in ("bilinear", "bicubic")
    kwargs: dict[str, Any] = {"antialias": True, "align_corners": False} if antialias else {}
    out = F.interpolate(batch, size=(height, width), mode=mode, **kwargs)[0]
    return _round_to_uint8(out) if uint8 else out


def _crop(image: ImageOrTensor, top: int, left: int, height: int, width: int) -> ImageOrTensor:
    if isinstance(image, Image.Image):
        return image.crop((left, top, left + width, top + height))
    return image[..., top : top + height, left : left + width]


def _pad_to(image: ImageOrTensor, size_hw: tuple[int, int], fill: int) -> ImageOrTensor:
    """Pad (centred) to ``size_hw``; sides already larger are left as they are."""
    height, width = _size_hw(image)
    out_h, out_w = max(height, size_hw[0]), max(width, size_hw[1])
    if (out_h, out_w) == (height, width):
        return image
    top, left = (out_h - height) // 2, (out_w - width) // 2
    if isinstance(image, Image.Image):
        colour: Any = fill if image.mode in ("L", "I", "F") else (fill,) * len(image.getbands())
        canvas = Image.new(image.mode, (out_w, out_h), colour)
        canvas.paste(image, (left, top))
        return canvas
    value = float(fill) if image.dtype == torch.uint8 else fill / 255.0
    return F.pad(image, (left, out_w - width - left, top, out_h - height - top), value=value)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator).item())


# ================================================================================================== transforms
class Compose:
    """Apply transforms in order; nested Composes are flattened.

    Example:
        >>> Compose([Resize(4), ToTensor()])(Image.new("RGB", (8, 8))).shape
        torch.Size([3, 4, 4])
    """

    def __init__(self, transforms: Sequence[Any]) -> None:
        flat: list[Any] = []
        for transform in transforms:
            if isinstance(transform, Compose):
                flat.extend(transform.transforms)
            elif callable(transform):
                flat.append(transform)
            else:
                raise OMLError(f"Compose: every transform must be callable, got {type(transform).__name__}")
        self.transforms: list[Any] = flat

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        for transform in self.transforms:
            image = transform(image)
        return image

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.transforms)

    def __getitem__(self, index: int) -> Any:
        return self.transforms[index]

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {t!r}" for t in self.transforms)
        return f"Compose([\n{inner}\n])"


class Resize:
    """Resize to ``size`` (int: square, or ``(height, width)``); with ``keep_aspect=True`` scale the longer side to
    fit and pad the rest (centred) with ``fill`` (a grey level 0-255). ``antialias=False`` interpolates the pixels
    without low-pass filtering, as OpenCV (and so albumentations) does; the image then becomes a uint8 tensor.

    Example:
        >>> Resize((20, 10))(Image.new("RGB", (40, 40))).size
        (10, 20)
        >>> Resize(20, keep_aspect=True)(Image.new("RGB", (40, 10))).size
        (20, 20)
    """

    def __init__(
        self,
        size: int | Sequence[int],
        *,
        keep_aspect: bool = False,
        interpolation: Interpolation = "bilinear",
        fill: int = 0,
        antialias: bool = True,
    ) -> None:
        self.size = _pair(size, "Resize")
        self.antialias = antialias
        self.keep_aspect = keep_aspect
        self.interpolation = _check_interpolation(interpolation, "Resize")
        if not 0 <= fill <= 255:
            raise OMLError(f"Resize: fill must be a grey level between 0 and 255, got {fill}")
        self.fill = fill

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        if not self.keep_aspect:
            return _resize(image, self.size, self.interpolation, self.antialias)
        height, width = _size_hw(image)
        scale = min(self.size[0] / height, self.size[1] / width)
        inner = (max(1, min(self.size[0], round(height * scale))), max(1, min(self.size[1], round(width * scale))))
        return _pad_to(_resize(image, inner, self.interpolation, self.antialias), self.size, self.fill)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, keep_aspect={self.keep_aspect}, interpolation={self.interpolation!r}, fill={self.fill})"


class ResizeShorterSide:
    """Scale the image so that its shorter side is ``size`` (the longer one keeps the aspect ratio, truncated as
    torchvision's ``Resize(int)`` does): the first step of the evaluation preprocessing of DINOv2, CLIP and Unicom.

    Example:
        >>> ResizeShorterSide(20)(Image.new("RGB", (40, 10))).size
        (80, 20)
    """

    def __init__(self, size: int, *, interpolation: Interpolation = "bicubic") -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise OMLError(f"ResizeShorterSide: size must be a positive int, got {size!r}")
        self.size = size
        self.interpolation = _check_interpolation(interpolation, "ResizeShorterSide")

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        height, width = _size_hw(image)
        if height <= width:
            new = (self.size, int(self.size * width / height))
        else:
            new = (int(self.size * height / width), self.size)
        return _resize(image, new, self.interpolation)

    def __repr__(self) -> str:
        return f"ResizeShorterSide(size={self.size}, interpolation={self.interpolation!r})"


class CenterCrop:
    """Crop the centre ``size`` (int or ``(height, width)``); an image smaller than that is padded with black first.

    Example:
        >>> CenterCrop(2)(Image.new("RGB", (6, 4))).size
        (2, 2)
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "CenterCrop")

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        image = _pad_to(image, self.size, 0)
        height, width = _size_hw(image)
        top = int(round((height - self.size[0]) / 2.0))
        left = int(round((width - self.size[1]) / 2.0))
        return _crop(image, top, left, *self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomResizedCrop:
    """Crop a random part (area fraction in ``scale``, aspect ratio in ``ratio``) and resize it to ``size``;
    after 10 unlucky draws, the centre crop of the closest allowed ratio (the usual algorithm).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> RandomResizedCrop(8, scale=(0.5, 1.0))(Image.new("RGB", (20, 10))).size
        (8, 8)
    """

    def __init__(
        self,
        size: int | Sequence[int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: Interpolation = "bilinear",
        generator: torch.Generator | None = None,
    ) -> None:
        self.size = _pair(size, "RandomResizedCrop")
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise OMLError(f"RandomResizedCrop: scale must be (min, max) with 0 < min <= max <= 1, got {scale!r}")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise OMLError(f"RandomResizedCrop: ratio must be (min, max) with 0 < min <= max, got {ratio!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = _check_interpolation(interpolation, "RandomResizedCrop")
        self.generator = generator

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, crop_height, crop_width)`` of the next crop of a ``height x width`` image."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * _uniform(*self.scale, self.generator)
            aspect = math.exp(_uniform(*log_ratio, self.generator))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=self.generator).item())
                left = int(torch.randint(0, width - w + 1, (1,), generator=self.generator).item())
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        top, left, h, w = self.get_params(*_size_hw(image))
        return _resize(_crop(image, top, left, h, w), self.size, self.interpolation)

    def __repr__(self) -> str:
        return (
            f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, interpolation={self.interpolation!r})"
        )


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``.

    Example:
        >>> RandomHorizontalFlip(p=1.0)(torch.tensor([[[1.0, 2.0]]])).tolist()
        [[[2.0, 1.0]]]
    """

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise OMLError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self.generator = generator

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        if float(torch.rand(1, generator=self.generator).item()) >= self.p:
            return image
        if isinstance(image, Image.Image):
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image.flip(-1)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """Randomly change brightness, contrast, saturation (factors drawn from ``[max(0, 1 - x), 1 + x]``) and hue
    (shift drawn from ``[-hue, hue]``, at most 0.5), in a random order. Works on RGB; 0 disables each part.

    Example:
        >>> jitter = ColorJitter(brightness=0.5)
        >>> _ = torch.manual_seed(0)
        >>> jitter(torch.full((3, 2, 2), 0.5)).shape
        torch.Size([3, 2, 2])
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise OMLError(f"ColorJitter: {name} must be >= 0, got {value}")
        if not 0.0 <= hue <= 0.5:
            raise OMLError(f"ColorJitter: hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = (
            float(brightness),
            float(contrast),
            float(saturation),
            float(hue),
        )
        self.generator = generator

    def __call__(self, image: ImageOrTensor) -> ImageOrTensor:
        parts = [self.brightness, self.contrast, self.saturation, self.hue]
        if not any(parts):
            return image
        was_pil, was_uint8 = isinstance(image, Image.Image), isinstance(image, Tensor) and image.dtype == torch.uint8
        tensor = to_tensor(image)
        if tensor.shape[0] != 3:
            raise OMLError(f"ColorJitter works on RGB images (3 channels), got {tensor.shape[0]}")
        for index in torch.randperm(4, generator=self.generator).tolist():
            amount = parts[index]
            if not amount:
                continue
            if index == 3:
                tensor = adjust_hue(tensor, _uniform(-amount, amount, self.generator))
            else:
                factor = _uniform(max(0.0, 1 - amount), 1 + amount, self.generator)
                tensor = (adjust_brightness, adjust_contrast, adjust_saturation)[index](tensor, factor)
        if was_pil:
            return to_pil(tensor)
        return _round_to_uint8(tensor.mul(255)) if was_uint8 else tensor

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue})"
        )


class ToTensor:
    """Pillow image (or uint8 tensor) → float tensor ``(C, H, W)`` in [0, 1].

    Example:
        >>> ToTensor()(Image.new("RGB", (3, 2))).dtype
        torch.float32
    """

    def __call__(self, image: ImageOrTensor) -> Tensor:
        return to_tensor(image)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(x - mean) / std`` per channel of a float tensor (pillow images are converted with :class:`ToTensor` first).

    Example:
        >>> Normalize(mean=(0.5,), std=(0.25,))(torch.tensor([[[1.0]]])).item()
        2.0
    """

    def __init__(self, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> None:
        if len(mean) != len(std) or not len(mean):
            raise OMLError(f"Normalize: mean and std need the same, non-zero length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise OMLError(f"Normalize: std values must be > 0, got {tuple(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def __call__(self, image: ImageOrTensor) -> Tensor:
        tensor = to_tensor(image)
        if tensor.shape[-3] != len(self.mean):
            raise OMLError(f"Normalize: the image has {tensor.shape[-3]} channels but mean/std have {len(self.mean)}")
        mean = torch.tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
        return (tensor - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


# ================================================================================================== colour maths
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def rgb_to_grayscale(tensor: Tensor) -> Tensor:
    """Luma ``(1, H, W)`` of an RGB float tensor (ITU-R 601 weights)."""
    r, g, b = tensor.unbind(-3)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(-3)


def adjust_brightness(tensor: Tensor, factor: float) -> Tensor:
    """Multiply by ``factor`` and clip to [0, 1]."""
    return (tensor * factor).clamp(0.0, 1.0)


def adjust_contrast(tensor: Tensor, factor: float) -> Tensor:
    """Blend with the mean grey level: ``factor * x + (1 - factor) * mean(gray(x))``, clipped to [0, 1]."""
    mean = rgb_to_grayscale(tensor).mean(dim=(-3, -2, -1), keepdim=True)
    return (factor * tensor + (1 - factor) * mean).clamp(0.0, 1.0)


def adjust_saturation(tensor: Tensor, factor: float) -> Tensor:
    """Blend with the grey image: ``factor * x + (1 - factor) * gray(x)``, clipped to [0, 1]."""
    return (factor * tensor + (1 - factor) * rgb_to_grayscale(tensor)).clamp(0.0, 1.0)


def adjust_hue(tensor: Tensor, shift: float) -> Tensor:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5])."""
    hsv = rgb_to_hsv(tensor)
    hsv = torch.stack([(hsv[..., 0, :, :] + shift) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]], dim=-3)
    return hsv_to_rgb(hsv)


def rgb_to_hsv(tensor: Tensor) -> Tensor:
    """HSV (each in [0, 1]) of an RGB float tensor ``(3, H, W)``.

    Example:
        >>> rgb_to_hsv(torch.tensor([[[1.0]], [[0.0]], [[0.0]]])).flatten().tolist()
        [0.0, 1.0, 1.0]
    """
    r, g, b = tensor.unbind(-3)
    maxc, _ = tensor.max(dim=-3)
    minc, _ = tensor.min(dim=-3)
    delta = maxc - minc
    saturation = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, saturation, maxc], dim=-3)


def hsv_to_rgb(tensor: Tensor) -> Tensor:
    """RGB of an HSV float tensor ``(3, H, W)`` (inverse of :func:`rgb_to_hsv`)."""
    h, s, v = tensor.unbind(-3)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = (
        (v, t, p),
        (q, v, p),
        (p, v, t),
        (p, q, v),
        (t, p, v),
        (v, p, q),
    )
    r = torch.zeros_like(h)
    g = torch.zeros_like(h)
    b = torch.zeros_like(h)
    for k, (rk, gk, bk) in enumerate(choices):
        mask = i == k
        r, g, b = torch.where(mask, rk, r), torch.where(mask, gk, g), torch.where(mask, bk, b)
    return torch.stack([r, g, b], dim=-3)


# ================================================================================================== presets
def get_normalisation_torch(mean: TNormParam = MEAN, std: TNormParam = STD) -> Compose:
    """To tensor and normalise: what a dataset applies when given no transform.

    Example:
        >>> get_normalisation_torch()(Image.new("RGB", (5, 4))).shape
        torch.Size([3, 4, 5])
    """
    return Compose([ToTensor(), Normalize(mean=mean, std=std)])


def get_normalisation_resize_torch(im_size: int, mean: TNormParam = MEAN, std: TNormParam = STD) -> Compose:
    """Resize to ``im_size x im_size``, to tensor, normalise (ImageNet statistics by default): the usual
    inference transform.

    Example:
        >>> get_normalisation_resize_torch(im_size=64)(Image.new("RGB", (100, 80))).shape
        torch.Size([3, 64, 64])
    """
    return Compose([Resize((im_size, im_size)), ToTensor(), Normalize(mean=mean, std=std)])


def get_normalisation_resize_hypvit(
    im_size: int = 224, crop_size: int = 224, mean: TNormParam = MEAN, std: TNormParam = STD
) -> Compose:
    """Shorter side to ``im_size`` (bicubic), centre crop ``crop_size``, to tensor, normalise: OML's
    ``norm_resize_hypvit_torch``, the preprocessing of DINOv2, ResNets and OML's ViT checkpoints.

    Example:
        >>> get_normalisation_resize_hypvit(32, 28)(Image.new("RGB", (100, 80))).shape
        torch.Size([3, 28, 28])
    """
    return Compose([ResizeShorterSide(im_size), CenterCrop(crop_size), ToTensor(), Normalize(mean=mean, std=std)])


def get_normalisation_resize_albu(im_size: int, mean: TNormParam = MEAN, std: TNormParam = STD) -> Compose:
    """Longer side to ``im_size`` (bilinear without antialiasing, as OpenCV), pad to a square with white (OML's
    ``PAD_COLOR``), to tensor, normalise: what OML's ``norm_resize_albu`` does with albumentations, in plain torch
    (pixels within 2 grey levels of OpenCV's fixed-point arithmetic).

    Example:
        >>> get_normalisation_resize_albu(32)(Image.new("RGB", (100, 50))).shape
        torch.Size([3, 32, 32])
    """
    resize = Resize(im_size, keep_aspect=True, fill=PAD_COLOR[0], antialias=False)
    return Compose([resize, ToTensor(), Normalize(mean=mean, std=std)])


def get_normalisation_resize_albu_clip(im_size: int) -> Compose:
    """``get_normalisation_resize_albu`` with CLIP's normalisation statistics (OML's ``norm_resize_albu_clip``).

    Example:
        >>> get_normalisation_resize_albu_clip(32)(Image.new("RGB", (10, 50))).shape
        torch.Size([3, 32, 32])
    """
    return get_normalisation_resize_albu(im_size, mean=MEAN_CLIP, std=STD_CLIP)


def get_unicom_transforms(im_size: int = 224) -> Compose:
    """Unicom's preprocessing: shorter side to ``im_size`` (bicubic), centre crop, CLIP normalisation (OML's
    ``unicom_transforms``).

    Example:
        >>> get_unicom_transforms(32)(Image.new("RGB", (64, 48))).shape
        torch.Size([3, 32, 32])
    """
    return get_normalisation_resize_hypvit(im_size, im_size, mean=MEAN_CLIP, std=STD_CLIP)


def get_augs_torch(
    im_size: int,
    mean: TNormParam = MEAN,
    std: TNormParam = STD,
    *,
    min_scale: float = 0.5,
    generator: torch.Generator | None = None,
) -> Compose:
    """The training preset: random resized crop (area ``min_scale``-1), horizontal flip, mild brightness/contrast/
    saturation jitter (no hue shift: colour is often part of an identity), to tensor, normalise.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> get_augs_torch(32)(Image.new("RGB", (50, 40))).shape
        torch.Size([3, 32, 32])
    """
    return Compose(
        [
            RandomResizedCrop((im_size, im_size), scale=(min_scale, 1.0), generator=generator),
            RandomHorizontalFlip(generator=generator),
            ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, generator=generator),
            ToTensor(),
            Normalize(mean=mean, std=std),
        ]
    )


# ================================================================================================== from configs
def build_transforms(source: Host | Registries | Registry[Any], choices: Sequence[Choice | str | Mapping[str, Any]]) -> Compose:
    """Build a :class:`Compose` from transforms chosen by name, e.g. the ``transforms_train`` of a config.

    ``source`` is a host, its registries or the transforms registry; each choice is a ``TransformChoice``, a
    name, or a mapping ``{"type": name, **options}``. No choice gives the default (to tensor + normalise).

    Example:
        >>> from oml_core import Host
        >>> host = Host(entry_points=False)
        >>> build_transforms(host, [{"type": "resize", "size": 16}, "to_tensor"])(Image.new("RGB", (30, 20))).shape
        torch.Size([3, 16, 16])
    """
    from oml_core.registry import Choice, Registry

    registry: Registry[Any]
    if isinstance(source, Registry):
        registry = source
    elif hasattr(source, "registries"):
        registry = source.registries.transforms
    elif hasattr(source, "transforms"):
        registry = source.transforms
    else:
        raise OMLError(f"build_transforms needs a Host, its registries or the transforms registry, got {type(source).__name__}")
    if isinstance(choices, (str, Mapping, Choice)):
        choices = [choices]
    built: list[Any] = []
    for position, choice in enumerate(choices):
        if isinstance(choice, Choice) or isinstance(choice, str):
            built.append(registry.create(choice))
        elif isinstance(choice, Mapping):
            if "type" not in choice:
                raise OMLError(f"transform #{position} ({dict(choice)!r}) has no 'type' key naming a registered transform")
            options = {k: v for k, v in choice.items() if k != "type"}
            built.append(registry.create(choice["type"], options or None))
        else:
            raise OMLError(
                f"transform #{position} must be a name, a mapping with 'type' or a TransformChoice, got {type(choice).__name__}"
            )
    return Compose(built) if built else get_normalisation_torch()


__all__ = [
    "MEAN",
    "STD",
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "ImageOrTensor",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ResizeShorterSide",
    "ToTensor",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "build_transforms",
    "get_augs_torch",
    "get_normalisation_resize_albu",
    "get_normalisation_resize_albu_clip",
    "get_normalisation_resize_hypvit",
    "get_normalisation_resize_torch",
    "get_normalisation_torch",
    "get_unicom_transforms",
    "hsv_to_rgb",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "to_pil",
    "to_tensor",
]
