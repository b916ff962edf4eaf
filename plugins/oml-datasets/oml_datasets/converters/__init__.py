"""Converters of public metric-learning datasets to OML's format (``oml datasets convert NAME ROOT``).

Each reads the dataset's own annotation files under ``ROOT`` and writes ``ROOT/df.csv`` (and, where the dataset
has boxes, ``ROOT/df_with_bboxes.csv``), the file names OML 4.0 uses, with paths relative to ``ROOT``.

Example:
    >>> sorted(CONVERTERS)
    ['cars', 'cub', 'inshop', 'sop']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs
import pandas as pd

from oml_core.errors import OMLError
from oml_datasets.converters._common import BBOX_COLUMNS, SPLITS, STANDARD_SPLIT, AnnotationError, check_images
from oml_datasets.converters.cars import convert_cars
from oml_datasets.converters.cub import convert_cub
from oml_datasets.converters.inshop import convert_inshop
from oml_datasets.converters.sop import convert_sop

Converter = Callable[[Path, str], pd.DataFrame]
CONVERTERS: dict[str, Converter] = {"cars": convert_cars, "cub": convert_cub, "inshop": convert_inshop, "sop": convert_sop}
ALIASES = {"cub_200_2011": "cub", "cub200": "cub", "cars196": "cars", "stanford_cars": "cars", "deepfashion_inshop": "inshop"}


@attrs.frozen
class ConversionReport:
    """The dataframes written and what they hold."""

    written: tuple[Path, ...]
    n_images: int
    n_train_labels: int
    n_val_labels: int


def convert_dataset(
    name: str, root: str | os.PathLike[str], *, split: str = STANDARD_SPLIT, check_files: bool = True
) -> ConversionReport:
    """Convert dataset ``name`` unpacked under ``root`` and write its dataframes next to its files.

    Example:
        >>> convert_dataset("mnist", ".")
        Traceback (most recent call last):
        ...
        oml_core.errors.OMLError: no converter for dataset 'mnist'; available: cars, cub, inshop, sop
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in CONVERTERS:
        raise OMLError(f"no converter for dataset {name!r}; available: {', '.join(sorted(CONVERTERS))}")
    if split not in SPLITS:
        raise OMLError(f"unknown split {split!r}; choose {' or '.join(SPLITS)}")
    base = Path(root)
    if not base.is_dir():
        raise OMLError(f"dataset folder {base} does not exist")
    df = CONVERTERS[key](base, split)
    if check_files:
        check_images(df, base)
    written = []
    has_boxes = all(column in df.columns for column in BBOX_COLUMNS)
    if has_boxes:
        df.to_csv(base / "df_with_bboxes.csv", index=False, lineterminator="\n")
        written.append(base / "df_with_bboxes.csv")
    df.drop(columns=BBOX_COLUMNS, errors="ignore").to_csv(base / "df.csv", index=False, lineterminator="\n")
    written.insert(0, base / "df.csv")
    train = df["split"] == "train"
    return ConversionReport(
        written=tuple(written),
        n_images=len(df),
        n_train_labels=int(df.loc[train, "label"].nunique()),
        n_val_labels=int(df.loc[~train, "label"].nunique()),
    )


__all__ = ["ALIASES", "CONVERTERS", "AnnotationError", "ConversionReport", "convert_dataset"]
