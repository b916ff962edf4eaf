"""Reading images with pillow: always RGB, EXIF orientation applied, errors that name the file and its row."""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from oml_core.data.const import PAD_COLOR
from oml_core.errors import OMLError

ImageSource = str | os.PathLike[str] | bytes

_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height


DEFAULT_MAX_IMAGE_PIXELS = 2 * 89_478_485
"""Images with more pixels are refused (twice pillow's warning threshold, where pillow itself refuses): a 30000 x 30000
PNG of a few kilobytes would take 2.7 GB to decode. Set ``OML_MAX_IMAGE_PIXELS`` to lower it (or to raise it up to
pillow's own ``PIL.Image.MAX_IMAGE_PIXELS`` limit, which a program may raise in turn)."""


def max_image_pixels() -> int:
    """The pixel limit in force: ``OML_MAX_IMAGE_PIXELS`` if set, else :data:`DEFAULT_MAX_IMAGE_PIXELS`.

    Example:
        >>> max_image_pixels() > 100_000_000
        True
    """
    raw = os.environ.get("OML_MAX_IMAGE_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise OMLError(f"OML_MAX_IMAGE_PIXELS must be a whole number of pixels, e.g. 200000000; got {raw!r}") from None
    if value <= 0:
        raise OMLError(f"OML_MAX_IMAGE_PIXELS must be positive, got {value}")
    return value


def _check_pixels(width: int, height: int) -> None:
    limit = max_image_pixels()
    if width * height > limit:
        raise ValueError(
            f"{width} x {height} = {width * height:,} pixels is more than the limit of {limit:,} (a decompression bomb, or a "
            f"huge scan: set OML_MAX_IMAGE_PIXELS to a larger number to read it anyway)"
        )


class ImageReadError(OMLError):
    """An image is missing, unreadable or corrupt; the message names the file and, when known, its dataframe row."""

    def __init__(self, path: str, reason: str, row: Hashable | None = None) -> None:
        self.path, self.reason, self.row = path, reason, row
        where = f" (dataframe row {row})" if row is not None else ""
        super().__init__(
            f"cannot read image {path!r}{where}: {reason}. Fix or remove the file, drop the row, or create the dataset "
            f"with skip_unreadable=True to leave such rows out with a warning."
        )


def read_image(source: ImageSource, *, row: Hashable | None = None, name: str | None = None) -> Image.Image:
    """Read an image file (or its bytes) as an RGB ``PIL.Image``.

    EXIF orientation is applied; grayscale, palette, 16-bit and 32-bit float images are scaled to 8-bit RGB;
    transparent images (RGBA, LA, palette with transparency) are put on a white background. ``row`` and ``name``
    (the path to report when ``source`` is bytes) only make the error message more precise.

    Example:
        >>> from PIL import Image
        >>> buffer = io.BytesIO(); Image.new("L", (4, 3), 128).save(buffer, format="PNG")
        >>> image = read_image(buffer.getvalue())
        >>> image.mode, image.size, image.getpixel((0, 0))
        ('RGB', (4, 3), (128, 128, 128))
    """
    label = name if name is not None else ("<bytes>" if isinstance(source, bytes) else os.fspath(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            _check_pixels(*opened.size)
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            return to_rgb(image)
    except FileNotFoundError:
        raise ImageReadError(label, "the file does not exist", row) from None
    except IsADirectoryError:
        raise ImageReadError(label, "it is a directory, not an image file", row) from None
    except UnidentifiedImageError:
        raise ImageReadError(label, "pillow does not recognise it as an image (corrupt or not an image file)", row) from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(label, f"{exc} Set OML_MAX_IMAGE_PIXELS and PIL.Image.MAX_IMAGE_PIXELS to read it", row) from None
    except ValueError as exc:
        raise ImageReadError(label, str(exc), row) from None
    except (OSError, SyntaxError) as exc:  # truncated or corrupt data, unsupported modes
        raise ImageReadError(label, f"{type(exc).__name__}: {exc}", row) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any pillow image to 8-bit RGB (transparent parts become white, high bit depths are scaled down).

    Example:
        >>> to_rgb(Image.new("RGBA", (1, 1), (255, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image), mode)).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*PAD_COLOR, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    # pillow's own convert() clips these modes at 255, which turns most 16-bit images white
    values = array.astype(np.float64)
    if mode == "F":
        top = 1.0 if values.size == 0 or float(np.nanmax(values)) <= 1.0 else float(np.nanmax(values))
    elif mode == "I" and values.size and float(values.max()) > 65535:
        top = float(values.max())
    else:
        top = 65535.0
    scaled = np.clip(np.nan_to_num(values / top * 255.0), 0, 255)
    return np.rint(scaled).astype(np.uint8)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of an image as :func:`read_image` returns it (after EXIF rotation), reading only its header.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.png"; Image.new("RGB", (5, 2)).save(target)
        >>> image_size(target)
        (5, 2)
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            _check_pixels(width, height)
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except FileNotFoundError:
        raise ImageReadError(os.fspath(path), "the file does not exist") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(os.fspath(path), str(exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(os.fspath(path), f"{type(exc).__name__}: {exc}") from None
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def read_bytes(path: str | os.PathLike[str], *, row: Hashable | None = None) -> bytes:
    """The raw bytes of a file, with the same error as :func:`read_image` when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageReadError(os.fspath(path), "the file does not exist", row) from None
    except OSError as exc:
        raise ImageReadError(os.fspath(path), f"{type(exc).__name__}: {exc}", row) from None


class BytesCache:
    """A small least-recently-used cache of file contents (picklable, so datasets that hold one can go to workers).

    Example:
        >>> cache = BytesCache(maxsize=1)
        >>> cache.put("a", b"1"); cache.put("b", b"2")
        >>> cache.get("a") is None, cache.get("b")
        (True, b'2')
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        if self.maxsize <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
