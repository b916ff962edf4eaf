"""Rendering one font face's glyphs onto a fixed canvas, keeping the baseline and the relative sizes of the face.

Every glyph of a face is drawn at the same size and on the same baseline, so that "o" and "O" (or "p" and "P")
still differ; the face as a whole is scaled to fill the canvas and each glyph is centred horizontally on its ink.

Example:
    >>> from oml_datasets.fonts.discovery import find_font_files
    >>> files = find_font_files()
    >>> face = next(iter(open_faces(files[0])), None) if files else None
    >>> glyphs = render_face(face, "aA", image_size=32) if face else None
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Drawn at twice the output size and reduced: smoother edges than rendering at the output size directly.
SUPERSAMPLING = 2
#: The tallest glyph extent of a face (highest ascender to lowest descender) takes this share of the canvas.
FACE_HEIGHT_SHARE = 0.85
_MAX_FACES_PER_FILE = 64
# Code points that no font maps: what a face draws for them is its "missing glyph" (.notdef) box.
_UNMAPPED = ("\U0010fffd", "\uffff")


@attrs.frozen
class Face:
    """One face of a font file (a .ttc collection holds several)."""

    path: Path
    index: int
    family: str
    style: str


class UnreadableFontError(Exception):
    """FreeType cannot open or draw the file (corrupt, truncated or not a font)."""


def open_faces(path: Path) -> Iterator[Face]:
    """The faces of a font file; raises ``UnreadableFontError`` when not even its first face opens.

    Example:
        >>> list(open_faces(Path("/nonexistent.ttf")))
        Traceback (most recent call last):
        ...
        oml_datasets.fonts.render.UnreadableFontError: cannot open resource
    """
    for index in range(_MAX_FACES_PER_FILE):
        try:
            font = ImageFont.truetype(str(path), 32, index=index)
            family, style = font.getname()
        except (OSError, ValueError) as exc:
            if index == 0:
                raise UnreadableFontError(str(exc) or type(exc).__name__) from exc
            return
        yield Face(path, index, family or path.stem, style or "")
        if path.suffix.lower() not in (".ttc", ".otc"):
            return


def _font(face: Face, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(face.path), max(4, size), index=face.index)


def _mask(font: ImageFont.FreeTypeFont, char: str) -> tuple[tuple[int, int, int, int], bytes]:
    bbox = font.getbbox(char, anchor="ls")
    image = Image.new("L", (max(1, bbox[2] - bbox[0]), max(1, bbox[3] - bbox[1])), 0)
    ImageDraw.Draw(image).text((-bbox[0], -bbox[1]), char, font=font, fill=255, anchor="ls")
    return (int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3])), image.tobytes()


def covered_characters(face: Face, characters: str) -> str:
    """The characters of ``characters`` that ``face`` draws: not blank and not its missing-glyph box.

    Example:
        >>> from oml_datasets.fonts.discovery import find_font_files
        >>> files = find_font_files()
        >>> face = next(open_faces(files[0])) if files else None
        >>> face is None or covered_characters(face, "\\U0010fffd") == ""
        True
    """
    try:
        font = _font(face, 48)
        missing = {_mask(font, char) for char in _UNMAPPED}
        covered = []
        for char in characters:
            bbox, pixels = _mask(font, char)
            if (bbox, pixels) in missing or not any(pixels):
                continue
            covered.append(char)
    except (OSError, ValueError) as exc:
        raise UnreadableFontError(str(exc) or type(exc).__name__) from exc
    return "".join(covered)


def render_face(face: Face, characters: str, *, image_size: int) -> dict[str, np.ndarray]:
    """Each character as a ``uint8`` array ``(image_size, image_size)``: dark ink (0) on white (255).

    The face is scaled so that its tallest extent over ``characters`` fills ``FACE_HEIGHT_SHARE`` of the canvas
    (and its widest glyph fits), all glyphs on one baseline.
    """
    canvas = image_size * SUPERSAMPLING
    nominal = canvas
    try:
        font = _font(face, nominal)
        boxes = [font.getbbox(char, anchor="ls") for char in characters]
        top = min(box[1] for box in boxes)
        bottom = max(box[3] for box in boxes)
        widest = max(box[2] - box[0] for box in boxes)
        scale = min(FACE_HEIGHT_SHARE * canvas / max(1, bottom - top), 0.95 * canvas / max(1, widest))
        font = _font(face, round(nominal * scale))
        boxes = [font.getbbox(char, anchor="ls") for char in characters]
        top = min(box[1] for box in boxes)
        bottom = max(box[3] for box in boxes)
        baseline = (canvas - (bottom - top)) // 2 - top
        glyphs: dict[str, np.ndarray] = {}
        for char, box in zip(characters, boxes, strict=True):
            image = Image.new("L", (canvas, canvas), 255)
            x = (canvas - (box[2] - box[0])) // 2 - box[0]
            ImageDraw.Draw(image).text((x, baseline), char, font=font, fill=0, anchor="ls")
            if SUPERSAMPLING > 1:
                image = image.reduce(SUPERSAMPLING)
            glyphs[char] = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise UnreadableFontError(str(exc) or type(exc).__name__) from exc
    return glyphs
