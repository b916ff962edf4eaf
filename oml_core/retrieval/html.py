"""Retrieval results as one self-contained HTML page: every image is embedded (PNG, base64), so the file can be
mailed, attached to a report or opened offline. Needs no matplotlib.

Rows are queries: the query (blue frame), its nearest gallery items (green if relevant, red if not, black if the
ground truth is unknown) with their distances, then up to ``n_gt_to_show`` relevant items (gray).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from oml_core.retrieval.visualize import BLACK, BLUE, GRAY, GREEN, RED, Color, check_query_ids

if TYPE_CHECKING:
    from oml_core.retrieval.results import RetrievalResults

#: The longer side of an embedded thumbnail, in pixels.
THUMBNAIL_SIZE = 160


def image_to_data_uri(image: np.ndarray, max_size: int = THUMBNAIL_SIZE) -> str:
    """An ``(H, W[, C])`` array (uint8, or floats in [0, 1]) as a ``data:image/png;base64,...`` URI, downscaled so
    that its longer side is at most ``max_size``.

    Example:
        >>> image_to_data_uri(np.zeros((4, 4, 3), dtype=np.uint8)).startswith("data:image/png;base64,")
        True
    """
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    picture.thumbnail((max_size, max_size))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(image: np.ndarray | None, title: str, color: Color) -> str:
    rgb = "rgb({}, {}, {})".format(*color)
    picture = (
        f'<img src="{image_to_data_uri(image)}" alt="{html.escape(title)}" style="display:block;max-width:{THUMBNAIL_SIZE}px">'
        if image is not None
        else f'<div style="width:{THUMBNAIL_SIZE // 2}px;height:{THUMBNAIL_SIZE // 2}px"></div>'
    )
    border = f"border:4px solid {rgb};" if image is not None else "border:4px solid transparent;"
    return (
        f'<td style="vertical-align:top;padding:4px"><div style="{border}padding:2px">{picture}</div>'
        f'<div style="font:12px sans-serif;text-align:center">{html.escape(title)}</div></td>'
    )


def retrieval_html(
    rr: RetrievalResults,
    query_ids: Sequence[int],
    query_source: Callable[[int, Color], np.ndarray],
    gallery_source: Callable[[int, Color], np.ndarray],
    *,
    n_galleries_to_show: int = 3,
    n_gt_to_show: int = 2,
    title: str = "Retrieval results",
) -> str:
    """The HTML page (a string) of ``query_ids`` and their results; sources draw an item in a colour (see
    ``RetrievalResults.visualize_as_html``)."""
    query_ids = [int(q) for q in query_ids]
    check_query_ids(rr, query_ids)
    ids, dist = rr.padded_ids.cpu(), rr.padded_distances.cpu()
    correct = rr.is_correct() if rr.n_gt is not None else None
    gt = rr.gt_ids if (n_gt_to_show > 0 and rr.n_gt is not None) else None

    def query_item(q: int) -> int:
        return int(rr.query_item_ids[q]) if rr.query_item_ids is not None else q

    def gallery_item(g: int) -> int:
        return int(rr.gallery_item_ids[g]) if rr.gallery_item_ids is not None else g

    rows = []
    for q in query_ids:
        cells = [_cell(query_source(query_item(q), BLUE), f"Query #{q}", BLUE)]
        for j in range(n_galleries_to_show):
            g = int(ids[q, j]) if j < ids.shape[1] else -1
            if g < 0:
                cells.append(_cell(None, "", BLACK))
                continue
            color = BLACK if correct is None else (GREEN if bool(correct[q, j]) else RED)
            cells.append(_cell(gallery_source(gallery_item(g), color), f"Gallery #{g} - {float(dist[q, j]):.3f}", color))
        if gt is not None:
            for g in gt[q][:n_gt_to_show].tolist():
                cells.append(_cell(gallery_source(gallery_item(int(g)), GRAY), "GT", GRAY))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + html.escape(title)
        + '</title></head><body><table style="border-collapse:collapse">'
        + "".join(rows)
        + "</table></body></html>\n"
    )


__all__ = ["THUMBNAIL_SIZE", "image_to_data_uri", "retrieval_html"]
