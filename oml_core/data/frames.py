"""What the datasets of other modalities (texts, audio) share: one item per dataframe row, with OML's columns.

A subclass says how one row becomes the model's input (``load_input``); this base parses and checks ``label``,
``is_query`` / ``is_gallery``, ``category`` and ``sequence`` (every bad row in one error), carries ``extra_data``,
builds the item dicts and answers ``get_labels`` / ``get_query_ids`` / ``get_gallery_ids`` /
``get_label2category`` as the image datasets do, so samplers, ``inference``, ``RetrievalResults`` and the engine's
validation work unchanged.

Example:
    >>> import pandas as pd, torch
    >>> class Lengths(FrameDataset):
    ...     def load_input(self, idx):
    ...         return torch.tensor([float(len(self.df["word"][idx]))])
    >>> dataset = Lengths(pd.DataFrame({"word": ["a", "bcd"], "label": [0, 1]}), mode="labeled")
    >>> dataset[1]["input_tensors"], dataset[1]["labels"], dataset.get_labels().tolist()
    (tensor([3.]), 1, [0, 1])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from oml_core.data.const import (
    CATEGORIES_COLUMN,
    CATEGORIES_KEY,
    INDEX_KEY,
    INPUT_TENSORS_KEY,
    IS_GALLERY_COLUMN,
    IS_GALLERY_KEY,
    IS_QUERY_COLUMN,
    IS_QUERY_KEY,
    LABELS_COLUMN,
    LABELS_KEY,
    SEQUENCE_COLUMN,
    SEQUENCE_KEY,
)
from oml_core.data.dataframe import parse_bool_column, parse_int_column
from oml_core.errors import OMLError

FrameMode = Literal["base", "labeled", "query_gallery"]


class FrameDataError(OMLError):
    """A dataframe (or one of its rows) cannot be used by a dataset of texts or audio; the message names the rows."""


def describe_rows(rows: list[Hashable], limit: int = 10) -> str:
    """``"rows 3, 7, 9"`` (at most ``limit`` shown, then how many more).

    Example:
        >>> describe_rows([3]), describe_rows(list(range(12)), limit=2)
        ('row 3', 'rows 0, 1 and 10 more')
    """
    if len(rows) == 1:
        return f"row {rows[0]}"
    shown = ", ".join(map(str, rows[:limit]))
    return f"rows {shown}" + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


class FrameDataset(Dataset[dict[str, Any]]):
    """One item per row of ``df``: ``{input_tensors: load_input(i), idx: i, ...}`` (see the module's docstring).

    ``mode``: ``base`` needs no OML column, ``labeled`` needs ``label``, ``query_gallery`` needs ``is_query`` and
    ``is_gallery`` (``label`` optional). Row names in errors are the dataframe's index as given.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        mode: FrameMode,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        index_key: str = INDEX_KEY,
        source: str | None = None,
    ) -> None:
        if not isinstance(df, pd.DataFrame):
            raise FrameDataError(f"{type(self).__name__}: expected a pandas DataFrame, got {type(df).__name__}")
        self.mode = mode
        self.source = source or df.attrs.get("source") or f"the dataframe given to {type(self).__name__}"
        self.input_tensors_key, self.labels_key, self.index_key = input_tensors_key, labels_key, index_key
        self.row_names: list[Hashable] = list(df.index)
        self.df = df.reset_index(drop=True).copy()
        self._labels: np.ndarray | None = None
        self._is_query: np.ndarray | None = None
        self._is_gallery: np.ndarray | None = None
        self._parse_columns()
        self.extra_data = self._check_extra_data(dict(extra_data or {}))

    # -------------------------------------------------------------------------------------------- columns
    def _parse_columns(self) -> None:
        df, problems = self.df, []
        required = {"base": (), "labeled": (LABELS_COLUMN,), "query_gallery": (IS_QUERY_COLUMN, IS_GALLERY_COLUMN)}
        missing = [c for c in required[self.mode] if c not in df.columns]
        if missing:
            problems.append(f"missing column(s) {', '.join(map(repr, missing))} (columns: {', '.join(map(str, df.columns))})")
        if LABELS_COLUMN in df.columns:
            parsed, absent, bad = parse_int_column(df[LABELS_COLUMN])
            wrong = [self.row_names[i] for i in np.flatnonzero((absent | bad).to_numpy())]
            if wrong:
                problems.append(f"'{LABELS_COLUMN}' is not an integer in {describe_rows(wrong)}")
            else:
                self._labels = np.asarray(parsed.tolist(), dtype=np.int64)
                df[LABELS_COLUMN] = self._labels
        if self.mode == "query_gallery":
            for column in (IS_QUERY_COLUMN, IS_GALLERY_COLUMN):
                if column not in df.columns:
                    continue
                parsed_flags, bad_flags = parse_bool_column(df[column])
                wrong = [self.row_names[i] for i in np.flatnonzero((bad_flags | parsed_flags.isna()).to_numpy())]
                if wrong:
                    problems.append(f"'{column}' is not a boolean in {describe_rows(wrong)}")
                    continue
                flags = np.asarray(parsed_flags.tolist(), dtype=bool)
                df[column] = flags
                if column == IS_QUERY_COLUMN:
                    self._is_query = flags
                else:
                    self._is_gallery = flags
        if problems:
            raise FrameDataError(f"{self.source} cannot be used by {type(self).__name__}: " + "; ".join(problems))
        self._categories = df[CATEGORIES_COLUMN].astype(str).tolist() if CATEGORIES_COLUMN in df.columns else None
        self._sequences = None
        if SEQUENCE_COLUMN in df.columns:
            self._sequences = [f"row{i}" if pd.isna(v) else str(v) for i, v in enumerate(df[SEQUENCE_COLUMN].tolist())]

    def _check_extra_data(self, extra_data: dict[str, Any]) -> dict[str, Any]:
        reserved = {self.input_tensors_key, self.labels_key, self.index_key, IS_QUERY_KEY, IS_GALLERY_KEY, CATEGORIES_KEY}
        for key, values in extra_data.items():
            if key in reserved:
                raise FrameDataError(f"{type(self).__name__}: extra_data key {key!r} clashes with a key the dataset sets itself")
            if isinstance(values, pd.Series | pd.DataFrame):
                extra_data[key] = values = values.to_numpy()
            if len(values) != len(self.df):
                raise FrameDataError(
                    f"{type(self).__name__}: extra_data[{key!r}] has {len(values)} entries but the dataframe has "
                    f"{len(self.df)} rows"
                )
        return extra_data

    # -------------------------------------------------------------------------------------------- items
    def load_input(self, idx: int) -> Any:
        """The model's input for item ``idx`` (a tensor or a dict of tensors); subclasses implement it."""
        raise NotImplementedError

    def row_name(self, idx: int) -> Hashable:
        """The name of item ``idx``'s row in the dataframe as given (its index label), for error messages."""
        return self.row_names[idx]

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if isinstance(idx, Tensor | np.integer):
            idx = int(idx)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} is out of range for a dataset of {len(self)} items")
        idx %= len(self)
        item: dict[str, Any] = {self.input_tensors_key: self.load_input(idx), self.index_key: idx}
        if self._labels is not None:
            item[self.labels_key] = int(self._labels[idx])
        if self._categories is not None:
            item[CATEGORIES_KEY] = self._categories[idx]
        if self._sequences is not None:
            item[SEQUENCE_KEY] = self._sequences[idx]
        if self._is_query is not None and self._is_gallery is not None:
            item[IS_QUERY_KEY] = bool(self._is_query[idx])
            item[IS_GALLERY_KEY] = bool(self._is_gallery[idx])
        for key, values in self.extra_data.items():
            item[key] = values[idx]
        return item

    # -------------------------------------------------------------------------------------------- accessors
    def get_labels(self) -> np.ndarray:
        """The labels, one per item (int64)."""
        if self._labels is None:
            raise FrameDataError(f"{type(self).__name__}: the dataframe has no {LABELS_COLUMN!r} column, so no labels")
        return self._labels

    def get_label2category(self) -> dict[int, str] | None:
        """``{label: category}`` when the dataframe has a category column, else None."""
        if self._categories is None or self._labels is None:
            return None
        return dict(zip(self._labels.tolist(), self._categories))

    def get_query_ids(self) -> torch.LongTensor:
        """Positions of the queries (query-gallery datasets)."""
        if self._is_query is None:
            raise FrameDataError(f"{type(self).__name__} has no '{IS_QUERY_COLUMN}' column")
        return torch.from_numpy(np.flatnonzero(self._is_query).astype(np.int64))  # type: ignore[return-value]

    def get_gallery_ids(self) -> torch.LongTensor:
        """Positions of the gallery items (query-gallery datasets)."""
        if self._is_gallery is None:
            raise FrameDataError(f"{type(self).__name__} has no '{IS_GALLERY_COLUMN}' column")
        return torch.from_numpy(np.flatnonzero(self._is_gallery).astype(np.int64))  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items)"


__all__ = ["FrameDataError", "FrameDataset", "FrameMode", "describe_rows"]
