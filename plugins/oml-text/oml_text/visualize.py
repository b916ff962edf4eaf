"""Texts as pictures, so that retrieval results of texts are drawn like those of images."""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = 256
FRAME = 5


def visualize_text(text: str, color: tuple[int, int, int] = (0, 0, 0), *, size: int = SIZE, draw_bbox: bool = True) -> np.ndarray:
    """``text`` wrapped onto a white ``size`` x ``size`` picture with a frame in ``color``; a text too long for the
    picture ends with an ellipsis. Returns an ``(H, W, 3)`` uint8 array.

    Example:
        >>> visualize_text("A red chair", color=(0, 255, 0)).shape
        (256, 256, 3)
    """
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    font = _font(max(10, size // 16))
    line_height = int(font.size * 1.25) if hasattr(font, "size") else 14
    chars = max(8, int((size - 4 * FRAME) / (0.55 * line_height / 1.25)))
    lines = textwrap.wrap(" ".join(text.split()), width=chars) or [""]
    max_lines = max(1, (size - 4 * FRAME) // line_height)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, chars - 3)] + "..."
    top = (size - line_height * len(lines)) // 2
    for i, line in enumerate(lines):
        width = draw.textlength(line, font=font)
        draw.text(((size - width) / 2, top + i * line_height), line, fill="black", font=font)
    if draw_bbox:
        draw.rectangle((0, 0, size - 1, size - 1), outline=tuple(int(c) for c in color), width=FRAME)
    return np.asarray(image).copy()


def _font(points: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"):
        try:
            return ImageFont.truetype(name, points)
        except OSError:
            continue
    return ImageFont.load_default(points)


__all__ = ["visualize_text"]
