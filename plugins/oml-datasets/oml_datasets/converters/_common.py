"""What the converters share: strict reading of whitespace-separated annotation files, the checks on the result and
writing the dataframes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from oml_core.errors import OMLError

STANDARD_SPLIT = "standard"
OML_SPLIT = "oml"
SPLITS = (STANDARD_SPLIT, OML_SPLIT)
BBOX_COLUMNS = ["x_1", "y_1", "x_2", "y_2"]


class AnnotationError(OMLError):
    """An annotation file of a public dataset is missing or malformed; names the file and the line.

    Example:
        >>> print(AnnotationError(Path("images.txt"), "expected 2 fields, got 1", line=3))
        images.txt, line 3: expected 2 fields, got 1. Is the dataset complete and unmodified? Download it again if not.
    """

    def __init__(self, path: Path, message: str, *, line: int | None = None) -> None:
        self.path, self.line = path, line
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}. Is the dataset complete and unmodified? Download it again if not.")


@attrs.frozen
class Column:
    """One field of a whitespace-separated annotation line: its name and how to parse it."""

    name: str
    parse: Callable[[str], Any] = str


def integer(text: str) -> int:
    """An integer written as ``7`` or ``7.0`` (CUB's boxes are written as floats).

    Example:
        >>> integer("60.0"), integer("007")
        (60, 7)
    """
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def require_files(root: Path, names: Sequence[str]) -> None:
    """Raise one error that lists every annotation file missing under ``root``."""
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise OMLError(
            f"{root} does not look like this dataset: missing {', '.join(missing)}. Point ROOT at the folder the "
            "dataset's archive unpacks to (each layout is in the oml-datasets README and its converter's docstring)."
        )


def read_table(
    path: Path, columns: Sequence[Column], *, skip_lines: int = 0, header: Sequence[str] | None = None
) -> pd.DataFrame:
    """Parse ``path``: after ``skip_lines`` lines (and a header line equal to ``header`` when given), one record per
    non-empty line with exactly ``len(columns)`` whitespace-separated fields. Raises ``AnnotationError`` naming the
    line of the first malformed record."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(path, f"cannot be read ({exc})") from exc
    start = skip_lines
    if header is not None:
        if len(lines) <= skip_lines or lines[skip_lines].split() != list(header):
            found = lines[skip_lines].strip() if len(lines) > skip_lines else "end of file"
            raise AnnotationError(path, f"expected the header {' '.join(header)!r}, found {found!r}", line=skip_lines + 1)
        start += 1
    records: dict[str, list[Any]] = {column.name: [] for column in columns}
    for number, line in enumerate(lines[start:], start=start + 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(columns):
            raise AnnotationError(
                path,
                f"expected {len(columns)} fields ({' '.join(c.name for c in columns)}), got {len(fields)}: {line.strip()!r}",
                line=number,
            )
        for column, text in zip(columns, fields, strict=True):
            try:
                records[column.name].append(column.parse(text))
            except ValueError as exc:
                raise AnnotationError(path, f"field {column.name!r} = {text!r} is not valid ({exc})", line=number) from exc
    return pd.DataFrame(records)


def check_unique(df: pd.DataFrame, key: str, path: Path, first_line: int) -> None:
    """Raise ``AnnotationError`` at the first repeated ``key`` (``first_line`` = line number of row 0)."""
    repeated = df[key].duplicated()
    if repeated.any():
        row = int(repeated.to_numpy().nonzero()[0][0])
        raise AnnotationError(path, f"{key} {df[key].iloc[row]!r} appears a second time", line=first_line + row)


def check_images(df: pd.DataFrame, root: Path) -> None:
    """Raise one error naming how many images of ``df`` are missing under ``root`` (and the first few)."""
    missing = [p for p in df["path"] if not (root / p).is_file()]
    if missing:
        examples = ", ".join(missing[:3])
        raise OMLError(
            f"{len(missing)} of the {len(df)} images named by the annotations are missing under {root} (e.g. {examples}); "
            "unpack the dataset's images there, or pass --no-check-images to write the dataframe anyway"
        )


def finish(df: pd.DataFrame, *, with_bboxes: bool, category: bool) -> pd.DataFrame:
    """Order the columns as OML does and set ``is_query``/``is_gallery`` empty for train rows."""
    columns = ["label", "path", "split", "is_query", "is_gallery"]
    if category:
        columns.append("category")
    if with_bboxes:
        columns.extend(BBOX_COLUMNS)
    out = df[columns].reset_index(drop=True).copy()
    train = out["split"] == "train"
    for column in ("is_query", "is_gallery"):
        out[column] = out[column].astype(object).where(~train, None)
    return out
