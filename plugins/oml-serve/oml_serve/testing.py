"""Helpers for tests and benchmarks of the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch


def fill_store(service: Any, root: Path, rows: pd.DataFrame) -> list[int]:
    """Embed the rows' images with the service's model and add them (ids = row numbers, metadata = path + label)."""
    from oml_core.data import read_image

    images = [read_image(root / p) for p in rows["path"]]
    vectors = torch.cat([service.embed_images(images[i : i + 32]) for i in range(0, len(images), 32)])
    ids = list(range(len(rows)))
    metadata = [{"path": str(root / p), "label": int(label)} for p, label in zip(rows["path"], rows["label"])]
    service.add(ids, vectors, metadata)
    return ids
