"""Upload limits of ``oml serve`` (no torch here: ``oml serve --help`` reads the defaults)."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class Limits:
    """Upload limits: bytes of one request body, pixels of one image, images per request, results per query."""

    max_upload_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000
    max_images: int = 64
    max_k: int = 100
