"""Checks a pipeline runs before anything is created: the dataframe exists and has rows the run uses, and (when
asked, ``oml train --check-images`` / ``oml config check --data``) every image opens. All problems in one error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from oml_core.data.const import SPLIT_COLUMN, TRAIN_SPLIT, VALIDATION_SPLIT
from oml_core.errors import OMLError

#: how many unreadable images one error lists by name (the count is always complete)
SHOWN_PROBLEMS = 50


def check_dataframe_exists(data: Any) -> None:
    """Refuse a ``data.dataframe`` that is not a file, naming the field and the path.

    Example:
        >>> import attrs
        >>> check_dataframe_exists(attrs.make_class("D", {"dataframe": attrs.field(default=Path("nope.csv"))})())
        Traceback (most recent call last):
        oml_core.errors.OMLError: $.data.dataframe: nope.csv does not exist ...
    """
    path = Path(data.dataframe)
    if not path.is_file():
        where = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise OMLError(
            f"$.data.dataframe: {path} {where} (relative paths are read from the working directory, {Path.cwd()}). "
            "Give the path of a CSV or parquet file in OML's format."
        )


def unused_split_rows(df: Any, source: str) -> str | None:
    """A warning (one line, with the count) for rows whose ``split`` is neither train nor validation, which
    ``oml train`` leaves out (a ``test`` split is common: it is kept for the final evaluation)."""
    if SPLIT_COLUMN not in df.columns:
        return None
    other = df[~df[SPLIT_COLUMN].isin([TRAIN_SPLIT, VALIDATION_SPLIT])]
    if not len(other):
        return None
    values = ", ".join(repr(v) for v in sorted(map(str, other[SPLIT_COLUMN].unique()))[:5])
    return (
        f"{source}: {len(other)} row(s) have split {values}, neither {TRAIN_SPLIT!r} nor {VALIDATION_SPLIT!r}; "
        "oml train does not use them"
    )


def check_images(datasets: list[Any], source: str) -> int:
    """Open every image of ``datasets`` (``DatasetWithLabels`` / ``DatasetQueryGallery``); raise one error that
    lists the unreadable ones (with their rows) and their count. Returns the number of images checked."""
    from oml_core.data.images import ImageReadError, read_image

    problems: list[str] = []
    checked = 0
    for dataset in datasets:
        if dataset is None:
            continue
        rows = getattr(dataset, "_row_names", range(len(dataset)))
        for row, path in zip(rows, dataset.get_paths()):
            checked += 1
            try:
                read_image(path)
            except ImageReadError as exc:
                problems.append(f"row {row}: {path} ({exc.reason})")
    if problems:
        shown = problems[:SHOWN_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise OMLError(
            f"{source}: {len(problems)} of {checked} images cannot be read; fix or remove them (or drop their rows, or "
            f"set data.skip_unreadable: true to leave them out with a warning):\n  " + "\n  ".join(shown) + more
        )
    return checked


def check_data(cfg: Any, host: Any, *, images: bool) -> None:
    """The data checks of ``oml train`` and ``oml config check --data``: the dataframe exists and parses, rows of
    other splits are counted in a warning, and with ``images`` every image is opened."""
    from oml_core.data import read_dataframe
    from oml_core.pipelines.train import build_datasets

    check_dataframe_exists(cfg.data)
    source = str(cfg.data.dataframe)
    warning = unused_split_rows(read_dataframe(cfg.data.dataframe), source)
    if warning:
        print(f"oml: warning: {warning}", file=sys.stderr)
    if images:
        train, val = build_datasets(cfg, host)
        count = check_images([train, val], source)
        print(f"oml: {count} images checked, all readable", file=sys.stderr)


__all__ = ["check_data", "check_dataframe_exists", "check_images", "unused_split_rows"]
