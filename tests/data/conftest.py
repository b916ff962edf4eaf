"""Fixtures of the data tests: a folder of small images with known pixels and a valid dataframe over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

N_IMAGES = 8
WIDTH, HEIGHT = 20, 12


def image_pixels(index: int) -> np.ndarray:
    """The known content of image ``index``: a deterministic random (HEIGHT, WIDTH, 3) uint8 array."""
    return np.random.default_rng(index).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """``tmp/images/0.png`` ... ``7.png`` with the pixels of :func:`image_pixels`."""
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    for i in range(N_IMAGES):
        Image.fromarray(image_pixels(i)).save(root / "img" / f"{i}.png")
    return root


@pytest.fixture
def good_df() -> pd.DataFrame:
    """A valid dataframe over ``image_root``: 2 train labels and 2 validation labels, 2 images each."""
    return pd.DataFrame(
        {
            "label": [0, 0, 1, 1, 2, 2, 3, 3],
            "path": [f"img/{i}.png" for i in range(N_IMAGES)],
            "split": ["train"] * 4 + ["validation"] * 4,
            "is_query": [None] * 4 + [True] * 4,
            "is_gallery": [None] * 4 + [True] * 4,
        }
    )
