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
    """A warning (one line, with the count) for rows of another split (``test``, ``holdout``...), which
    ``oml train`` leaves out: a test split is common, kept for the final evaluation. An empty split, or one that
    looks like a misspelled ``train`` / ``validation`` (``tran``, ``val``), is refused instead: those rows were
    meant to be used.

    Example:
        >>> import pandas as pd
        >>> unused_split_rows(pd.DataFrame({"split": ["train", "test", "test"]}), "df.csv")
        "df.csv: 2 row(s) have split 'test', neither 'train' nor 'validation'; oml train does not use them"
    """
    import difflib

    import pandas as pd

    from oml_core.data.dataframe import _describe_rows

    if SPLIT_COLUMN not in df.columns:
        return None
    splits = df[SPLIT_COLUMN]
    other = df[~splits.isin([TRAIN_SPLIT, VALIDATION_SPLIT])]
    if not len(other):
        return None
    empty = other.index[other[SPLIT_COLUMN].map(lambda v: pd.isna(v) or not str(v).strip())].tolist()
    meant: dict[str, str] = {}
    for value in other[SPLIT_COLUMN].dropna().unique():
        matches = difflib.get_close_matches(str(value).strip().lower(), [TRAIN_SPLIT, VALIDATION_SPLIT, "val"], n=1, cutoff=0.6)
        if matches:
            meant[str(value)] = matches[0]
    if empty or meant:
        problems = []
        if empty:
            problems.append(f"the split is empty on {len(empty)} row(s) ({_describe_rows(empty)})")
        for value, match in meant.items():
            rows = other.index[other[SPLIT_COLUMN] == value].tolist()
            target = VALIDATION_SPLIT if match == "val" else match
            problems.append(
                f"split {value!r} on {len(rows)} row(s) ({_describe_rows(rows)}): did you mean {target!r}"
            )
        raise OMLError(
            f"{source}: {'; '.join(problems)}. oml train uses the rows whose split is {TRAIN_SPLIT!r} or "
            f"{VALIDATION_SPLIT!r}; write one of them (rows of another split, such as 'test', are left out with a warning)."
        )
    values = ", ".join(repr(v) for v in sorted(map(str, other[SPLIT_COLUMN].unique()))[:5])
    return (
        f"{source}: {len(other)} row(s) have split {values}, neither {TRAIN_SPLIT!r} nor {VALIDATION_SPLIT!r}; "
        "oml train does not use them"
    )


def box_problems_of(cfg: Any) -> list[str]:
    """Rows whose box goes beyond its image (read from the image headers), as lines for :func:`check_images`."""
    from oml_core.data import validate_dataframe
    from oml_core.data.dataframe import _describe_rows

    report = validate_dataframe(
        cfg.data.dataframe,
        dataset_root=cfg.data.dataset_root,
        allow_absolute_paths=cfg.data.allow_outside_root,
        check_files=True,
    )
    return [f"{_describe_rows(p.rows)}: {p.message}" for p in report.errors if p.code == "box_outside_image"]


def check_images(datasets: list[Any], source: str, box_problems: list[str] | None = None) -> int:
    """Open every image of ``datasets`` (``DatasetWithLabels`` / ``DatasetQueryGallery``); raise one error that
    lists the unreadable ones (with their rows) and their count, and the ``box_problems`` found before. Returns the
    number of images checked."""
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
    boxes = list(box_problems or [])
    if problems or boxes:
        found = problems + boxes
        shown = found[:SHOWN_PROBLEMS]
        more = f"\n  ... and {len(found) - len(shown)} more" if len(found) > len(shown) else ""
        boxes_text = f"; {len(boxes)} row(s) have a box beyond their image" if boxes else ""
        raise OMLError(
            f"{source}: {len(problems)} of {checked} images cannot be read{boxes_text}; fix or remove them (or drop their "
            f"rows, or set data.skip_unreadable: true to leave unreadable images out with a warning):\n  "
            + "\n  ".join(shown) + more
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
        boxes = box_problems_of(cfg)
        train, val = build_datasets(cfg, host)
        count = check_images([train, val], source, box_problems=boxes)
        print(f"oml: {count} images checked, all readable", file=sys.stderr)


__all__ = ["check_data", "check_dataframe_exists", "box_problems_of", "check_images", "unused_split_rows"]
