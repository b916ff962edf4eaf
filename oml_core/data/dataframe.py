"""OML's dataframe format: reading it, validating it (every problem at once, each naming its rows) and splitting it.

Required columns: ``label`` (int), ``path`` (str), ``split`` (``train`` / ``validation``), and for validation rows
``is_query`` and ``is_gallery`` (bool). Optional: ``category``, ``sequence`` and a box ``x_1, y_1, x_2, y_2``
(all four values or none per row; ``x1, y1, x2, y2`` are accepted too). See ``oml_core.data.const``.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import pandas as pd

from oml_core.data.const import (
    BBOX_COLUMN_ALIASES,
    BBOXES_COLUMNS,
    CATEGORIES_COLUMN,
    IS_GALLERY_COLUMN,
    IS_QUERY_COLUMN,
    KNOWN_COLUMNS,
    LABELS_COLUMN,
    PATHS_COLUMN,
    SEQUENCE_COLUMN,
    SPLIT_COLUMN,
    SPLITS,
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
    X1_COLUMN,
    X2_COLUMN,
    Y1_COLUMN,
    Y2_COLUMN,
)
from oml_core.data.images import ImageReadError, image_size
from oml_core.errors import OMLError

Severity = Literal["error", "warning"]
Mode = Literal["full", "labeled", "query_gallery"]

FORMAT_HINT = (
    "OML's format has one row per image: label (int), path (relative to dataset_root), split (train or validation), "
    "is_query and is_gallery (true/false, needed on validation rows); optional: category, sequence and a box "
    "x_1, y_1, x_2, y_2 (all four or none per row)."
)
_MAX_ROWS_SHOWN = 10
_INT_TEXT = re.compile(r"[+-]?\d+(\.0*)?")
_TRUE_VALUES = {"true", "1", "yes", "1.0"}
_FALSE_VALUES = {"false", "0", "no", "0.0"}


# ================================================================================================== report
@attrs.frozen
class Problem:
    """One problem of a dataframe: its ``code`` (stable, for tests and tools), a message and the rows at fault."""

    severity: Severity
    code: str
    message: str
    rows: tuple[Hashable, ...] = ()

    def __str__(self) -> str:
        text = f"{self.severity} [{self.code}] {self.message}"
        if self.rows:
            text += f" ({_describe_rows(self.rows)})"
        return text


def _describe_rows(rows: Sequence[Hashable]) -> str:
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_SHOWN])
    more = f" and {len(rows) - _MAX_ROWS_SHOWN} more" if len(rows) > _MAX_ROWS_SHOWN else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


@attrs.define
class ValidationReport:
    """Everything wrong with a dataframe: errors (it cannot be used) and warnings (it can, but look).

    Rows are named by the dataframe's index (for a CSV read by :func:`read_dataframe`: 0 is the first data line).

    Example:
        >>> report = validate_dataframe(pd.DataFrame({"label": [0], "path": ["a.png"], "split": ["test"]}))
        >>> report.ok, [p.code for p in report.errors]
        (False, ['unknown_split'])
    """

    problems: list[Problem] = attrs.field(factory=list)
    source: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def raise_for_errors(self) -> None:
        """Raise :class:`DataFrameError` with the whole report if there is any error."""
        if self.errors:
            raise DataFrameError(self)

    def warn(self, stacklevel: int = 2) -> None:
        """Emit the warnings (all in one ``UserWarning``), if any."""
        if self.warnings:
            lines = "\n  ".join(str(p) for p in self.warnings)
            warnings.warn(
                f"{self.source or 'dataframe'}: {len(self.warnings)} warning(s):\n  {lines}",
                UserWarning,
                stacklevel=stacklevel + 1,
            )

    def __str__(self) -> str:
        if not self.problems:
            return f"{self.source or 'dataframe'}: OK"
        n_err, n_warn = len(self.errors), len(self.warnings)
        counts = f"{n_err} error{'s' if n_err != 1 else ''} and {n_warn} warning{'s' if n_warn != 1 else ''}"
        head = f"{self.source or 'dataframe'} has {counts}:"
        return "\n  ".join([head, *(str(p) for p in self.errors + self.warnings)])


class DataFrameError(OMLError):
    """A dataframe is not in OML's format; ``report`` holds every problem, the message lists them and the format.

    Example:
        >>> try:
        ...     validate_dataframe(pd.DataFrame({"path": ["a.png"]})).raise_for_errors()
        ... except DataFrameError as exc:
        ...     print(exc.report.codes())
        ['missing_column', 'missing_column']
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(f"{report}\n{FORMAT_HINT}")


def _single_problem_error(code: str, message: str, source: str | None) -> DataFrameError:
    return DataFrameError(ValidationReport([Problem("error", code, message)], source=source))


# ================================================================================================== reading
def read_dataframe(path_or_df: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Read a dataframe in OML's format from CSV (``.csv``, ``.tsv``) or parquet, or copy one given in memory.

    Paths, categories and sequences are read as strings (``"001"`` stays ``"001"``); ``x1, y1, x2, y2`` columns
    are renamed to ``x_1, y_1, x_2, y_2``. The file name is kept in ``df.attrs["source"]`` for error messages.
    Nothing is validated here: see :func:`validate_dataframe`.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "df.csv"
        >>> _ = target.write_text("label,path,split\\n0,001.png,train\\n")
        >>> read_dataframe(target)["path"].tolist()
        ['001.png']
    """
    if isinstance(path_or_df, pd.DataFrame):
        df = path_or_df.copy()
        return normalise_columns(df)
    if not isinstance(path_or_df, (str, os.PathLike)):
        raise OMLError(f"expected a pandas DataFrame or the path of a CSV/parquet file, got {type(path_or_df).__name__}")
    path = Path(path_or_df)
    source = str(path)
    if not path.exists():
        raise _single_problem_error("file_not_found", f"the dataframe file {source!r} does not exist", source)
    if path.is_dir():
        raise _single_problem_error(
            "file_not_found", f"{source!r} is a directory; give the path of a CSV or parquet file", source
        )
    suffix = path.suffix.lower()
    string_columns = {PATHS_COLUMN: str, CATEGORIES_COLUMN: str, SEQUENCE_COLUMN: str}
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=string_columns)  # type: ignore[arg-type]
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            raise _single_problem_error(
                "unknown_file_type",
                f"{source!r} is neither CSV (.csv, .tsv) nor parquet (.parquet); cannot tell how to read it",
                source,
            )
    except DataFrameError:
        raise
    except ImportError as exc:
        raise _single_problem_error(
            "unreadable", f"reading {source!r} needs a parquet engine: pip install pyarrow ({exc})", source
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise _single_problem_error("unreadable", f"cannot read {source!r}: {type(exc).__name__}: {exc}", source) from None
    if suffix in (".csv", ".tsv", ".txt"):
        # pandas renames a repeated header "label" to "label.1" and reads on: which one holds the labels?
        columns = [c for c in df.columns if isinstance(c, str)]
        repeated = [c.rsplit(".", 1)[0] for c in columns if re.fullmatch(r".+\.\d+", c) and c.rsplit(".", 1)[0] in columns]
        if repeated:
            names = ", ".join(map(repr, dict.fromkeys(repeated)))
            message = f"the header names column {names} more than once; rename or drop one"
            raise _single_problem_error("duplicate_columns", message, source)
    df = normalise_columns(df)
    df.attrs["source"] = source
    return df


def normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Rename ``x1, y1, x2, y2`` to OML's ``x_1, y_1, x_2, y_2`` when that is unambiguous (returns ``df`` itself)."""
    aliases = [c for c in BBOX_COLUMN_ALIASES if c in df.columns]
    if aliases and not any(c in df.columns for c in BBOXES_COLUMNS):
        df = df.rename(columns={c: BBOX_COLUMN_ALIASES[c] for c in aliases})
    return df


# ================================================================================================== value parsing
def parse_bool_column(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``(parsed, bad)``: ``parsed`` holds True/False, or None where missing or not boolean; ``bad`` marks values
    that are present but not boolean (accepted: bools, 0/1, and "true"/"false"/"yes"/"no" in any case).

    Example:
        >>> parsed, bad = parse_bool_column(pd.Series([True, "False", 1, None, "maybe"]))
        >>> parsed.tolist(), bad.tolist()
        ([True, False, True, None, None], [False, False, False, False, True])
    """
    parsed: list[bool | None] = []
    bad: list[bool] = []
    for value in values.tolist():
        result: bool | None = None
        is_bad = False
        if _is_missing(value):
            pass
        elif isinstance(value, (bool, np.bool_)):
            result = bool(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            result = bool(value)
        elif isinstance(value, str) and value.strip().lower() in _TRUE_VALUES:
            result = True
        elif isinstance(value, str) and value.strip().lower() in _FALSE_VALUES:
            result = False
        else:
            is_bad = True
        parsed.append(result)
        bad.append(is_bad)
    return pd.Series(parsed, index=values.index, dtype=object), pd.Series(bad, index=values.index, dtype=bool)


def parse_int_column(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """``(parsed, missing, bad)`` for a column of integers (e.g. labels): whole floats such as ``3.0`` count as ints.

    Example:
        >>> parsed, missing, bad = parse_int_column(pd.Series([1, 2.0, None, "x", 2.5, "7"]))
        >>> parsed.tolist(), missing.tolist(), bad.tolist()
        ([1, 2, None, None, None, 7], [False, False, True, False, False, False], [False, False, False, True, True, False])
    """
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        no = pd.Series(False, index=values.index)
        return values.astype(object), values.isna(), no
    parsed: list[int | None] = []
    missing: list[bool] = []
    bad: list[bool] = []
    for value in values.tolist():
        result: int | None = None
        is_missing = _is_missing(value)
        ok = is_missing
        if not is_missing and not isinstance(value, (bool, np.bool_)):
            if isinstance(value, (int, np.integer)):
                result, ok = int(value), True
            elif isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
                result, ok = int(value), True
            elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
                # one bad cell makes pandas read the whole column as text: the other cells are still integers
                result, ok = int(float(value)), True
        parsed.append(result)
        missing.append(is_missing)
        bad.append(not ok)
    index = values.index
    return pd.Series(parsed, index=index, dtype=object), pd.Series(missing, index=index), pd.Series(bad, index=index)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _examples(values: Iterable[Any], limit: int = 3) -> str:
    unique: list[str] = []
    for value in values:
        text = repr(value)
        if len(text) > 300:  # a 30 MB cell must not make a 60 MB message
            text = f"{text[:150]}...[{len(text) - 250} characters]...{text[-100:]}"
        if text not in unique:
            unique.append(text)
        if len(unique) >= limit:
            break
    return ", ".join(unique)


def _rows(mask: pd.Series) -> tuple[Hashable, ...]:
    return tuple(mask.index[mask.to_numpy(dtype=bool)])


# ================================================================================================== validation
def validate_dataframe(
    df: pd.DataFrame | str | os.PathLike[str],
    *,
    dataset_root: str | os.PathLike[str] | None = None,
    allow_absolute_paths: bool = False,
    check_files: bool | None = None,
) -> ValidationReport:
    """Check a dataframe against OML's format and return every problem at once (see ``ValidationReport``).

    ``check_files`` (default: when ``dataset_root`` is given) checks that the files exist and that boxes lie
    inside their images (reading only the image headers). With a ``dataset_root``, absolute paths and paths
    that climb out of it (``../``) are errors unless ``allow_absolute_paths=True``.

    Example:
        >>> df = pd.DataFrame({
        ...     "label": [0, 0, 1, 1], "path": ["a.png", "b.png", "c.png", "d.png"],
        ...     "split": ["train", "train", "validation", "validation"],
        ...     "is_query": [None, None, True, True], "is_gallery": [None, None, True, True]})
        >>> validate_dataframe(df).ok
        True
        >>> validate_dataframe(df.drop(columns="split")).raise_for_errors()
        Traceback (most recent call last):
        ...
        oml_core.data.dataframe.DataFrameError: dataframe has 1 error and 0 warnings:
          error [missing_column] the required column 'split' is missing; columns found: label, path, is_query, is_gallery
        OML's format has one row per image: ...
    """
    source: str | None = None
    if not isinstance(df, pd.DataFrame):
        if isinstance(df, (str, os.PathLike)):
            source = str(df)
            try:
                df = read_dataframe(df)
            except DataFrameError as exc:
                return exc.report
        else:
            return ValidationReport(
                [Problem("error", "not_a_dataframe", f"expected a pandas DataFrame, got {type(df).__name__}")]
            )
    source = source or df.attrs.get("source")
    if check_files is None:
        check_files = dataset_root is not None
    problems = _Checker(
        df, mode="full", dataset_root=dataset_root, allow_absolute_paths=allow_absolute_paths, check_files=check_files
    ).run()
    return ValidationReport(problems, source=source)


def check_retrieval_dataframe_format(
    df: pd.DataFrame | str | os.PathLike[str],
    dataset_root: str | os.PathLike[str] | None = None,
    sep: str = ",",
    verbose: bool = True,
) -> None:
    """OML 4's check: raise :class:`DataFrameError` (every problem at once) if ``df`` (a DataFrame or a CSV file
    with separator ``sep``) is not in OML's format; with ``dataset_root`` the files are checked too. ``verbose``
    shows the warnings.

    Example:
        >>> df = pd.DataFrame({"label": [0, 0], "path": ["a.png", "b.png"], "split": ["validation"] * 2,
        ...                    "is_query": [True, True], "is_gallery": [True, True]})
        >>> check_retrieval_dataframe_format(df=df)
    """
    if not isinstance(df, pd.DataFrame):
        source = os.fspath(df)
        df = pd.read_csv(source, sep=sep, index_col=None)
        df.attrs["source"] = source
    report = validate_dataframe(df, dataset_root=dataset_root)
    report.raise_for_errors()
    if verbose:
        report.warn(stacklevel=2)


def check_dataset_dataframe(
    df: pd.DataFrame,
    *,
    mode: Mode,
    dataset_root: str | os.PathLike[str] | None,
    allow_absolute_paths: bool,
) -> ValidationReport:
    """The checks a dataset runs on creation (no file access): ``labeled`` needs ``label`` and ``path``;
    ``query_gallery`` needs ``path``, ``is_query`` and ``is_gallery`` and treats every row as a validation row."""
    problems = _Checker(
        df, mode=mode, dataset_root=dataset_root, allow_absolute_paths=allow_absolute_paths, check_files=False
    ).run()
    return ValidationReport(problems, source=df.attrs.get("source"))


class _Checker:
    """Runs every check; each adds problems and never raises, so that one report holds all of them."""

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        mode: Mode,
        dataset_root: str | os.PathLike[str] | None,
        allow_absolute_paths: bool,
        check_files: bool,
    ) -> None:
        self.df = df
        self.mode = mode
        self.root = Path(dataset_root) if dataset_root is not None else None
        self.allow_absolute_paths = allow_absolute_paths
        self.check_files = check_files
        self.problems: list[Problem] = []
        # filled by the checks, used by later ones; None when the column is absent or unusable
        self.labels: pd.Series | None = None
        self.paths_ok: pd.Series | None = None
        self.is_val: pd.Series | None = None
        self.is_train: pd.Series | None = None
        self.is_query: pd.Series | None = None
        self.is_gallery: pd.Series | None = None
        self.boxes: pd.DataFrame | None = None

    def error(self, code: str, message: str, rows: Iterable[Hashable] = ()) -> None:
        self.problems.append(Problem("error", code, message, tuple(rows)))

    def warning(self, code: str, message: str, rows: Iterable[Hashable] = ()) -> None:
        self.problems.append(Problem("warning", code, message, tuple(rows)))

    # ---------------------------------------------------------------------------------------------- driver
    def run(self) -> list[Problem]:
        if len(self.df.columns) == 0 or len(self.df) == 0:
            self.error("empty", "the dataframe is empty (no rows)" if len(self.df.columns) else "the dataframe has no columns")
            return self.problems
        if not self._check_columns():
            return self.problems
        checks = [
            self._check_labels,
            self._check_paths,
            self._check_split,
            self._check_query_gallery,
            self._check_boxes,
            self._check_categories,
            self._check_duplicates,
            self._check_matches,
            self._check_label_counts,
        ]
        if self.check_files:
            checks.append(self._check_files)
        for check in checks:
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - a validator must report, never crash with a pandas traceback
                name = check.__name__.removeprefix("_check_")
                self.error("check_failed", f"the {name} check could not run on this dataframe: {type(exc).__name__}: {exc}")
        return self.problems

    # ---------------------------------------------------------------------------------------------- columns
    def _check_columns(self) -> bool:
        df = self.df
        columns = [str(c) for c in df.columns]
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            self.error("duplicate_columns", f"column name(s) {', '.join(map(repr, duplicated))} appear more than once")
            return False
        aliases = [c for c in BBOX_COLUMN_ALIASES if c in df.columns]
        canonical = [c for c in BBOXES_COLUMNS if c in df.columns]
        if aliases and canonical:
            self.error(
                "box_column_names",
                f"box columns are spelled two ways ({', '.join(aliases + canonical)}); keep only x_1, y_1, x_2, y_2",
            )
        self.df = df = normalise_columns(df)
        required = {
            "full": [LABELS_COLUMN, PATHS_COLUMN, SPLIT_COLUMN],
            "labeled": [LABELS_COLUMN, PATHS_COLUMN],
            "query_gallery": [PATHS_COLUMN, IS_QUERY_COLUMN, IS_GALLERY_COLUMN],
        }[self.mode]
        if self.mode == "full" and SPLIT_COLUMN in df.columns and (df[SPLIT_COLUMN] == VALIDATION_SPLIT).any():
            required += [IS_QUERY_COLUMN, IS_GALLERY_COLUMN]
        present = [str(c) for c in df.columns]
        missing = [c for c in required if c not in df.columns]
        for name in missing:
            guess = self._guess_column(name, present)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            self.error("missing_column", f"the required column {name!r} is missing{hint}; columns found: {', '.join(present)}")
        unnamed = [c for c in present if c.startswith("Unnamed: ")]
        if unnamed:
            self.warning(
                "index_column",
                f"column(s) {', '.join(map(repr, unnamed))} look like a saved index; "
                "write the CSV with df.to_csv(path, index=False)",
            )
        for column in present:
            if column in KNOWN_COLUMNS or column in unnamed:
                continue
            close = difflib.get_close_matches(column.lower(), KNOWN_COLUMNS, n=1, cutoff=0.75)
            if close and close[0] not in df.columns and close[0] not in missing:
                self.warning(
                    "unknown_column", f"column {column!r} is not part of the format and is ignored; did you mean {close[0]!r}?"
                )
        return True

    @staticmethod
    def _guess_column(name: str, present: list[str]) -> str | None:
        lowered = {c.lower().strip(): c for c in present}
        if name in lowered and lowered[name] != name:
            return lowered[name]
        close = difflib.get_close_matches(name, list(lowered), n=1, cutoff=0.7)
        return lowered[close[0]] if close else None

    # ---------------------------------------------------------------------------------------------- values
    def _check_labels(self) -> None:
        if LABELS_COLUMN not in self.df.columns:
            return
        column = self.df[LABELS_COLUMN]
        parsed, missing, bad = parse_int_column(column)
        if missing.any():
            self.error("missing_label", "the label is empty", _rows(missing))
        if bad.any():
            self.error(
                "non_integer_label",
                f"labels must be integers (one id per identity; map names to ids first); got {_examples(column[bad])}",
                _rows(bad),
            )
        self.labels = parsed.where(~(missing | bad), None)

    def _check_paths(self) -> None:
        if PATHS_COLUMN not in self.df.columns:
            return
        column = self.df[PATHS_COLUMN]
        missing = column.map(lambda v: _is_missing(v) or (isinstance(v, str) and not v.strip())).astype(bool)
        wrong_type = column.map(lambda v: not _is_missing(v) and not isinstance(v, (str, os.PathLike))).astype(bool)
        if missing.any():
            self.error("missing_path", "the path is empty", _rows(missing))
        if wrong_type.any():
            self.error("path_type", f"paths must be strings; got {_examples(column[wrong_type])}", _rows(wrong_type))
        self.paths_ok = ~(missing | wrong_type)
        if self.root is None:
            return
        strings = column[self.paths_ok].map(os.fspath)
        absolute = strings.map(_is_absolute).astype(bool)
        if absolute.any() and not self.allow_absolute_paths:
            self.error(
                "absolute_path",
                f"absolute paths are refused when dataset_root is given ({_examples(strings[absolute])}); make them relative "
                f"to {str(self.root)!r} or pass allow_absolute_paths=True",
                _rows(absolute),
            )
        escaping = strings[~absolute].map(_escapes_root).astype(bool)
        if escaping.any():
            self.error(
                "path_escapes_root",
                f"paths must stay inside dataset_root {str(self.root)!r}; these climb out of it with '..': "
                f"{_examples(strings[~absolute][escaping])}",
                _rows(escaping),
            )
        if self.allow_absolute_paths:
            return
        inside = strings[~absolute][~escaping]
        linked_out = inside.map(_RootConfinement(self.root).leaves_root).astype(bool)
        if linked_out.any():
            self.error(
                "path_outside_root",
                f"these paths lead out of dataset_root {str(self.root)!r} through a symbolic link: "
                f"{_examples(inside[linked_out])}; copy the files into the root, or allow files outside it "
                "(allow_absolute_paths=True; data.allow_outside_root: true in a config)",
                _rows(linked_out),
            )

    def _check_split(self) -> None:
        if SPLIT_COLUMN not in self.df.columns:
            if self.mode == "query_gallery":
                self.is_val = pd.Series(True, index=self.df.index)
                self.is_train = ~self.is_val
            return
        column = self.df[SPLIT_COLUMN]
        missing = column.map(_is_missing).astype(bool)
        if missing.any():
            self.error("missing_split", "the split is empty; use 'train' or 'validation'", _rows(missing))
        unknown = ~missing & ~column.isin(SPLITS)
        if unknown.any():
            values = sorted({str(v) for v in column[unknown]})
            hints = []
            for value in values[:5]:
                close = difflib.get_close_matches(value.lower().strip(), SPLITS, n=1, cutoff=0.3)
                hints.append(f"{value!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            self.error("unknown_split", f"split must be 'train' or 'validation'; found {', '.join(hints)}", _rows(unknown))
        if self.mode == "query_gallery":  # every row is a validation row, whatever its split says
            self.is_val = pd.Series(True, index=self.df.index)
            self.is_train = ~self.is_val
        else:
            self.is_val = column == VALIDATION_SPLIT
            self.is_train = column == TRAIN_SPLIT

    def _check_query_gallery(self) -> None:
        if self.mode == "labeled" or self.is_val is None:
            return
        is_val, is_train = self.is_val, self.is_train
        assert is_train is not None
        flags: dict[str, pd.Series] = {}
        for name in (IS_QUERY_COLUMN, IS_GALLERY_COLUMN):
            if name not in self.df.columns:
                continue
            parsed, bad = parse_bool_column(self.df[name])
            missing = parsed.isna() & ~bad
            if (missing & is_val).any():
                self.error(
                    f"missing_{name}", f"{name} is empty on validation rows; set it to true or false", _rows(missing & is_val)
                )
            if bad.any():
                self.error(
                    f"{name}_not_boolean", f"{name} must be true or false; got {_examples(self.df[name][bad])}", _rows(bad)
                )
            on_train = is_train & (parsed == True)  # noqa: E712 - parsed holds True/False/None
            if on_train.any():
                self.warning(
                    f"{name}_on_train",
                    f"{name} is set on train rows, where it is ignored (only validation rows are queries/galleries)",
                    _rows(on_train),
                )
            flags[name] = (parsed == True) & is_val  # noqa: E712
        if len(flags) < 2:
            return
        self.is_query, self.is_gallery = flags[IS_QUERY_COLUMN], flags[IS_GALLERY_COLUMN]
        defined = is_val.copy()
        for name in (IS_QUERY_COLUMN, IS_GALLERY_COLUMN):
            parsed, _ = parse_bool_column(self.df[name])
            defined &= parsed.notna()
        neither = defined & ~self.is_query & ~self.is_gallery
        if neither.any():
            self.error("neither_query_nor_gallery", "validation rows must be a query, a gallery item or both", _rows(neither))
        if is_val.any():
            if not self.is_query.any():
                self.error("no_queries", "the validation rows have no query (is_query is false everywhere)")
            if not self.is_gallery.any():
                self.error("no_gallery", "the validation rows have no gallery item (is_gallery is false everywhere)")

    def _check_boxes(self) -> None:
        present = [c for c in BBOXES_COLUMNS if c in self.df.columns]
        if not present:
            return
        if len(present) < 4:
            absent = [c for c in BBOXES_COLUMNS if c not in present]
            self.error(
                "partial_box_columns",
                f"a box needs the four columns x_1, y_1, x_2, y_2; found {', '.join(present)} without {', '.join(absent)}",
            )
            return
        raw = self.df[list(BBOXES_COLUMNS)]
        numeric = raw.apply(pd.to_numeric, errors="coerce").astype(float)
        raw_missing = raw.map(_is_missing).astype(bool)
        not_number = (numeric.isna() & ~raw_missing).any(axis=1)
        if not_number.any():
            values = [v for c in BBOXES_COLUMNS for v in raw[c][not_number & numeric[c].isna() & ~raw_missing[c]]]
            self.error("box_not_number", f"box coordinates must be numbers (pixels); got {_examples(values)}", _rows(not_number))
        n_missing = numeric.isna().sum(axis=1)
        partial = (n_missing > 0) & (n_missing < 4) & ~not_number
        if partial.any():
            self.error(
                "partial_box", "a row's box needs all four of x_1, y_1, x_2, y_2, or none of them (whole image)", _rows(partial)
            )
        full = n_missing == 0
        negative = full & (numeric < 0).any(axis=1)
        if negative.any():
            self.error("negative_box", "box coordinates must be >= 0", _rows(negative))
        empty = full & ((numeric[X2_COLUMN] <= numeric[X1_COLUMN]) | (numeric[Y2_COLUMN] <= numeric[Y1_COLUMN]))
        if empty.any():
            self.error("empty_box", "a box needs x_2 > x_1 and y_2 > y_1 (x grows to the right, y downwards)", _rows(empty))
        self.boxes = numeric.copy()
        self.boxes.loc[~(full & ~negative & ~empty)] = np.nan

    def _check_categories(self) -> None:
        if CATEGORIES_COLUMN not in self.df.columns:
            return
        column = self.df[CATEGORIES_COLUMN]
        missing = column.map(_is_missing).astype(bool)
        if missing.any():
            self.error(
                "missing_category",
                "the category is empty (the column is optional, but when present every row needs one)",
                _rows(missing),
            )
        if self.labels is None:
            return
        usable = ~missing & self.labels.notna()
        pairs = pd.DataFrame({"label": self.labels[usable], "category": column[usable].astype(str)})
        n_categories = pairs.groupby("label")["category"].nunique()
        several = n_categories[n_categories > 1].index
        if len(several):
            rows = pairs.index[pairs["label"].isin(several)]
            self.warning(
                "label_in_several_categories",
                f"label(s) {_examples(several.tolist(), 5)} have more than one category; one of them will be used",
                rows,
            )

    def _check_duplicates(self) -> None:
        if self.paths_ok is None:
            return
        keys = pd.DataFrame(
            {"path": self.df[PATHS_COLUMN].map(lambda v: os.fspath(v) if isinstance(v, (str, os.PathLike)) else v)}
        )
        if self.boxes is not None:
            keys = keys.join(self.boxes.round(3))
        keys = keys[self.paths_ok]
        split = (
            self.df[SPLIT_COLUMN].astype(str)[self.paths_ok]
            if SPLIT_COLUMN in self.df.columns
            else pd.Series("", index=keys.index)
        )
        key_columns = list(keys.columns)
        same_split = keys.assign(_split=split).duplicated(keep=False)
        in_val = self.is_val[self.paths_ok] if self.is_val is not None else pd.Series(False, index=keys.index)
        if (same_split & in_val).any():
            self.error(
                "duplicate_rows",
                "the same image (and box) appears more than once among the validation rows, where a copy is a free match",
                _rows(same_split & in_val),
            )
        if (same_split & ~in_val).any():
            self.warning(
                "duplicate_train_rows",
                "the same image (and box) appears more than once among the train rows (it is drawn more often)",
                _rows(same_split & ~in_val),
            )
        if self.labels is not None:
            with_labels = keys.assign(_label=self.labels[self.paths_ok].astype(str))
            n_labels = with_labels.groupby(key_columns, dropna=False)["_label"].transform("nunique")
            conflicting = n_labels > 1
            if conflicting.any():
                self.error("conflicting_labels", "the same image (and box) has different labels", _rows(conflicting))
        if self.is_train is not None and self.is_val is not None and self.mode == "full":
            train_keys = keys[self.is_train[self.paths_ok]].drop_duplicates()
            val_keys = keys[self.is_val[self.paths_ok]]
            if len(train_keys) and len(val_keys):
                merged = val_keys.assign(_row=list(val_keys.index)).merge(train_keys, on=key_columns, how="inner")
                if len(merged):
                    self.warning(
                        "train_validation_overlap",
                        "these validation images (and boxes) are also train images",
                        merged["_row"].tolist(),
                    )

    def _check_matches(self) -> None:
        if self.is_query is None or self.is_gallery is None or self.labels is None or not self.is_query.any():
            return
        missing_rows = query_rows_without_match(
            self.labels,
            self.is_query,
            self.is_gallery,
            self.df[SEQUENCE_COLUMN] if SEQUENCE_COLUMN in self.df.columns else None,
        )
        if missing_rows:
            self.warning(
                "query_without_match",
                "these queries have no gallery item of their label other than themselves (or items of their own "
                "sequence), so nothing correct can be retrieved for them",
                missing_rows,
            )

    def _check_label_counts(self) -> None:
        if self.labels is None or self.mode != "full":
            return
        train = self.is_train if self.is_train is not None else pd.Series(True, index=self.df.index)
        train_labels = self.labels[train & self.labels.notna()]
        counts = train_labels.value_counts()
        single = counts[counts < 2].index
        if len(single):
            rows = train_labels.index[train_labels.isin(single)]
            self.warning(
                "single_instance_label",
                f"{len(single)} train label(s) have a single image; samplers that draw several instances per label "
                "(BalanceSampler) need at least 2",
                rows,
            )
        if self.mode == "full" and self.is_val is not None:
            val_labels = set(self.labels[self.is_val & self.labels.notna()].tolist())
            shared = val_labels & set(train_labels.tolist())
            if shared:
                rows = self.labels.index[self.is_val & self.labels.isin(shared)]
                self.warning(
                    "labels_in_both_splits",
                    f"{len(shared)} label(s) appear in train and validation "
                    "(metric learning usually validates on unseen identities)",
                    rows,
                )

    # ---------------------------------------------------------------------------------------------- files
    def _check_files(self) -> None:
        if self.paths_ok is None:
            return
        values = self.df[PATHS_COLUMN].tolist()
        row_names = list(self.df.index)
        boxes = self.boxes.to_numpy(dtype=float) if self.boxes is not None else None
        missing_rows: list[Hashable] = []
        missing_paths: list[str] = []
        outside_rows: list[Hashable] = []
        outside_examples: list[str] = []
        unreadable_rows: list[Hashable] = []
        unreadable_examples: list[str] = []
        for i in np.flatnonzero(self.paths_ok.to_numpy(dtype=bool)):
            row = row_names[i]
            full = resolve_path(os.fspath(values[i]), self.root)
            if not os.path.isfile(full):
                missing_rows.append(row)
                missing_paths.append(full)
                continue
            if boxes is None or np.isnan(boxes[i]).any():
                continue
            try:
                width, height = image_size(full)
            except ImageReadError as exc:
                unreadable_rows.append(row)
                unreadable_examples.append(f"{full} ({exc.reason})")
                continue
            x1, y1, x2, y2 = boxes[i]
            if x2 > width or y2 > height:
                outside_rows.append(row)
                outside_examples.append(f"({x1:g}, {y1:g}, {x2:g}, {y2:g}) in {width}x{height}")
        if missing_rows:
            root = f" under dataset_root {str(self.root)!r}" if self.root is not None else ""
            self.error(
                "missing_file", f"{len(missing_rows)} file(s) do not exist{root}, e.g. {_examples(missing_paths)}", missing_rows
            )
        if outside_rows:
            self.error("box_outside_image", f"boxes go beyond their image, e.g. {'; '.join(outside_examples[:3])}", outside_rows)
        if unreadable_rows:
            self.error(
                "unreadable_image", f"cannot read the image header of {'; '.join(unreadable_examples[:3])}", unreadable_rows
            )


class _RootConfinement:
    """Whether a relative path, once symbolic links are followed, still lies inside the root.

    Folders are resolved once each (a dataset has millions of files in a few folders); a file is resolved only when
    it is itself a link.
    """

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self._folders: dict[str, bool] = {}

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def leaves_root(self, path: str) -> bool:
        full = os.path.join(self.root, path)
        folder = os.path.dirname(full)
        if folder not in self._folders:
            self._folders[folder] = self._inside(os.path.realpath(folder))
        if not self._folders[folder]:
            return True
        return os.path.islink(full) and not self._inside(os.path.realpath(full))


def _is_absolute(path: str) -> bool:
    return os.path.isabs(path) or path.startswith("~") or Path(path).drive != ""


def _escapes_root(path: str) -> bool:
    parts = os.path.normpath(path.replace("\\", "/")).split(os.sep)
    return bool(parts) and parts[0] == ".."


ROOT_CONFINEMENT_CODES = ("absolute_path", "path_escapes_root", "path_outside_root")


def path_problems(
    df: pd.DataFrame,
    dataset_root: str | os.PathLike[str] | None,
    *,
    allow_outside_root: bool = False,
    check_files: bool = False,
) -> list[Problem]:
    """The problems of the ``path`` column alone (empty, not a string, out of ``dataset_root``; with
    ``check_files``, files that do not exist), for dataframes that need nothing else (``oml embed``'s).

    Example:
        >>> [p.code for p in path_problems(pd.DataFrame({"path": ["a.png", ""]}), "/data")]
        ['missing_path']
    """
    if PATHS_COLUMN not in df.columns:
        return [Problem("error", "missing_column", f"the required column {PATHS_COLUMN!r} is missing")]
    checker = _Checker(df[[PATHS_COLUMN]], mode="full", dataset_root=dataset_root,
                       allow_absolute_paths=allow_outside_root, check_files=check_files)  # fmt: skip
    checker._check_paths()
    if check_files:
        checker._check_files()
    return checker.problems


def check_paths_inside_root(
    df: pd.DataFrame,
    dataset_root: str | os.PathLike[str],
    *,
    allow_outside_root: bool = False,
    source: str | None = None,
) -> None:
    """Refuse a dataframe whose ``path`` column leads out of ``dataset_root`` (absolute paths, ``../``, symbolic
    links), as datasets of images do; for files of other kinds (audio...) read by a modality's own datasets.
    ``allow_outside_root`` accepts absolute paths and links (``../`` never).

    Example:
        >>> check_paths_inside_root(pd.DataFrame({"path": ["a.wav"]}), "/data")
        >>> check_paths_inside_root(pd.DataFrame({"path": ["../etc/passwd"]}), "/data", source="voices.csv")
        Traceback (most recent call last):
        ...
        oml_core.errors.OMLError: voices.csv: error [path_escapes_root] paths must stay inside ...: '../etc/passwd' (row 0)
    """
    problems = [p for p in path_problems(df, dataset_root, allow_outside_root=allow_outside_root)
                if p.code in ROOT_CONFINEMENT_CODES]  # fmt: skip
    if problems:
        allowed = "" if all(p.code == "path_escapes_root" for p in problems) else (
            "\n  files outside the root on purpose: data.allow_outside_root: true in a training config")
        raise OMLError(f"{source or 'dataframe'}: " + "\n  ".join(str(p) for p in problems) + allowed)


def resolve_path(path: str, dataset_root: Path | str | None) -> str:
    """The path of a dataframe's file: ``dataset_root / path``, or ``path`` itself without a root.

    Example:
        >>> resolve_path("a/b.png", "/data")
        '/data/a/b.png'
    """
    return path if dataset_root is None else os.path.join(os.fspath(dataset_root), path)


def query_rows_without_match(
    labels: pd.Series, is_query: pd.Series, is_gallery: pd.Series, sequences: pd.Series | None = None
) -> list[Hashable]:
    """Queries that have no gallery item of the same label other than themselves (and, with ``sequences``,
    other than items of their own sequence, which retrieval ignores).

    Example:
        >>> labels = pd.Series([0, 0, 1]); flags = pd.Series([True, True, True])
        >>> query_rows_without_match(labels, flags, flags)
        [2]
    """
    valid = labels.notna()
    label_keys = labels.astype(str)
    gallery = is_gallery.astype(bool) & valid
    per_label = label_keys[gallery].value_counts()
    matches = label_keys.map(per_label).fillna(0).astype(int)
    if sequences is not None:
        # a missing sequence is a sequence of its own: the item groups with nothing
        seq_keys = pd.Series(
            [f"\x01row{i}" if _is_missing(v) else str(v) for i, v in enumerate(sequences.tolist())], index=sequences.index
        )
        pair = label_keys + "\x00" + seq_keys
        per_pair = pair[gallery].value_counts()
        matches = matches - pair.map(per_pair).fillna(0).astype(int)
    else:
        matches = matches - gallery.astype(int)
    lonely = is_query.astype(bool) & valid & (matches <= 0)
    return list(lonely.index[lonely.to_numpy()])


# ================================================================================================== splitting
def split_dataframe(df: pd.DataFrame | str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(df_train, df_val)`` by the ``split`` column, keeping the rows' index (errors name the file's rows);
    validation flags become bools.

    Example:
        >>> df = pd.DataFrame({"label": [0, 1], "path": ["a", "b"], "split": ["train", "validation"],
        ...                    "is_query": [None, True], "is_gallery": [None, True]})
        >>> train, val = split_dataframe(df)
        >>> len(train), val["is_query"].dtype
        (1, dtype('bool'))
    """
    df = read_dataframe(df)
    if SPLIT_COLUMN not in df.columns:
        raise _single_problem_error("missing_column", f"the required column {SPLIT_COLUMN!r} is missing", df.attrs.get("source"))
    df_train = df[df[SPLIT_COLUMN] == TRAIN_SPLIT]
    df_val = df[df[SPLIT_COLUMN] == VALIDATION_SPLIT].copy()
    for column in (IS_QUERY_COLUMN, IS_GALLERY_COLUMN):
        if column in df_val.columns:
            parsed, bad = parse_bool_column(df_val[column])
            if bad.any() or parsed.isna().any():
                rows = _rows(bad | parsed.isna())
                raise _single_problem_error(
                    f"{column}_not_boolean",
                    f"{column} must be true or false on validation rows ({_describe_rows(rows)})",
                    df.attrs.get("source"),
                )
            df_val[column] = parsed.astype(bool)
    return df_train, df_val


def assign_split(
    df: pd.DataFrame,
    *,
    val_fraction: float = 0.3,
    seed: int = 0,
) -> pd.DataFrame:
    """Add ``split``, ``is_query`` and ``is_gallery`` to a dataframe with labels and paths: a ``val_fraction`` of the
    labels (not of the rows: validation identities are unseen in training) goes to validation, where every row is
    both query and gallery (1-vs-rest retrieval).

    Example:
        >>> df = pd.DataFrame({"label": [0, 0, 1, 1, 2, 2], "path": list("abcdef")})
        >>> out = assign_split(df, val_fraction=0.34, seed=0)
        >>> sorted(out["split"].value_counts().items())
        [('train', 4), ('validation', 2)]
    """
    if not 0 < val_fraction < 1:
        raise OMLError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if LABELS_COLUMN not in df.columns:
        raise _single_problem_error("missing_column", f"the required column {LABELS_COLUMN!r} is missing", df.attrs.get("source"))
    labels = np.array(sorted(pd.unique(df[LABELS_COLUMN].dropna()).tolist()))
    if len(labels) < 2:
        raise OMLError(f"splitting by label needs at least 2 labels, found {len(labels)}")
    rng = np.random.default_rng(seed)
    n_val = min(len(labels) - 1, max(1, round(len(labels) * val_fraction)))
    val_labels = set(rng.permutation(labels)[:n_val].tolist())
    out = df.copy()
    is_val = out[LABELS_COLUMN].isin(val_labels)
    out[SPLIT_COLUMN] = np.where(is_val, VALIDATION_SPLIT, TRAIN_SPLIT)
    flags = [True if v else None for v in is_val.tolist()]
    out[IS_QUERY_COLUMN] = pd.Series(flags, index=out.index, dtype="object")
    out[IS_GALLERY_COLUMN] = pd.Series(flags, index=out.index, dtype="object")
    return out


__all__ = [
    "DataFrameError",
    "FORMAT_HINT",
    "Problem",
    "ValidationReport",
    "assign_split",
    "check_paths_inside_root",
    "parse_bool_column",
    "parse_int_column",
    "path_problems",
    "query_rows_without_match",
    "read_dataframe",
    "resolve_path",
    "split_dataframe",
    "validate_dataframe",
]
