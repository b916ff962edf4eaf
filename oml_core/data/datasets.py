"""Datasets over OML's dataframe: ``DatasetWithLabels`` for training, ``DatasetQueryGallery`` for validation.

Items are dicts that torch's default collate turns into batches::

    input_tensors  float tensor (C, H, W)     labels   int (-> LongTensor)     idx   int
    paths          str (dataset_root / path)  categories / sequence  str (when the columns exist)
    x1, y1, x2, y2 int (the crop; when box columns exist)   is_query, is_gallery  bool (DatasetQueryGallery)
    ...and one key per ``extra_data`` entry (e.g. precomputed ``embeddings``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset

from oml_core.data.const import (
    BBOXES_COLUMNS,
    BBOXES_KEYS,
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
    PATHS_COLUMN,
    PATHS_KEY,
    SEQUENCE_COLUMN,
    SEQUENCE_KEY,
)
from oml_core.data.dataframe import (
    DataFrameError,
    check_dataset_dataframe,
    parse_bool_column,
    parse_int_column,
    read_dataframe,
    resolve_path,
)
from oml_core.data.images import BytesCache, ImageReadError, read_bytes, read_image
from oml_core.data.transforms import get_normalisation_torch
from oml_core.errors import OMLError


class _ImageDataFrameDataset(Dataset[dict[str, Any]]):
    """What both datasets share: reading, cropping, transforming and the item dict."""

    _mode: Literal["labeled", "query_gallery"] = "labeled"

    def __init__(
        self,
        df: pd.DataFrame | str | os.PathLike[str],
        *,
        dataset_root: str | os.PathLike[str] | None = None,
        transform: Any = None,
        extra_data: Mapping[str, Any] | None = None,
        cache_size: int = 0,
        skip_unreadable: bool = False,
        allow_absolute_paths: bool = False,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        index_key: str = INDEX_KEY,
    ) -> None:
        df = read_dataframe(df)
        report = check_dataset_dataframe(
            df, mode=self._mode, dataset_root=dataset_root, allow_absolute_paths=allow_absolute_paths
        )
        report.source = report.source or f"the dataframe given to {type(self).__name__}"
        if report.errors:
            raise DataFrameError(report)
        report.warn(stacklevel=2)
        if transform is not None and not callable(transform):
            raise OMLError(f"{type(self).__name__}: transform must be callable (image -> tensor), got {type(transform).__name__}")
        if cache_size < 0:
            raise OMLError(f"{type(self).__name__}: cache_size must be >= 0, got {cache_size}")

        self.dataset_root = Path(dataset_root) if dataset_root is not None else None
        self.transform = transform if transform is not None else get_normalisation_torch()
        self.input_tensors_key, self.labels_key, self.index_key = input_tensors_key, labels_key, index_key
        self._row_names: list[Hashable] = list(df.index)
        self.df = df.reset_index(drop=True)
        self.df[PATHS_COLUMN] = [resolve_path(os.fspath(p), self.dataset_root) for p in self.df[PATHS_COLUMN]]
        self._cache = BytesCache(cache_size)
        self._load_columns()
        self.extra_data = self._check_extra_data(extra_data or {}, len(self.df))
        if skip_unreadable:
            self._drop_unreadable()

    # -------------------------------------------------------------------------------------------- columns
    def _load_columns(self) -> None:
        df = self.df
        self._paths: list[str] = df[PATHS_COLUMN].tolist()
        self._labels: np.ndarray | None = None
        if LABELS_COLUMN in df.columns:
            parsed, _, _ = parse_int_column(df[LABELS_COLUMN])
            self._labels = np.asarray(parsed.tolist(), dtype=np.int64)
            df[LABELS_COLUMN] = self._labels
        self._categories: list[str] | None = (
            df[CATEGORIES_COLUMN].astype(str).tolist() if CATEGORIES_COLUMN in df.columns else None
        )
        self._sequences: list[str] | None = None
        if SEQUENCE_COLUMN in df.columns:
            self._sequences = [f"row{i}" if pd.isna(v) else str(v) for i, v in enumerate(df[SEQUENCE_COLUMN].tolist())]
        self._boxes: np.ndarray | None = None
        if all(c in df.columns for c in BBOXES_COLUMNS):
            self._boxes = df[list(BBOXES_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        self._is_query: np.ndarray | None = None
        self._is_gallery: np.ndarray | None = None
        if self._mode == "query_gallery":
            self._is_query = np.asarray(parse_bool_column(df[IS_QUERY_COLUMN])[0].tolist(), dtype=bool)
            self._is_gallery = np.asarray(parse_bool_column(df[IS_GALLERY_COLUMN])[0].tolist(), dtype=bool)
            df[IS_QUERY_COLUMN], df[IS_GALLERY_COLUMN] = self._is_query, self._is_gallery

    def _check_extra_data(self, extra_data: Mapping[str, Any], n: int) -> dict[str, Any]:
        reserved = self._reserved_keys()
        checked: dict[str, Any] = {}
        for key, values in extra_data.items():
            if key in reserved:
                raise OMLError(
                    f"{type(self).__name__}: extra_data key {key!r} clashes with a key the dataset sets itself "
                    f"({', '.join(sorted(reserved))})"
                )
            if isinstance(values, pd.Series | pd.DataFrame):
                values = values.to_numpy()
            try:
                size = len(values)
            except TypeError:
                raise OMLError(
                    f"{type(self).__name__}: extra_data[{key!r}] must be a sequence, array or tensor with one entry per row, "
                    f"got {type(values).__name__}"
                ) from None
            if size != n:
                raise OMLError(f"{type(self).__name__}: extra_data[{key!r}] has {size} entries but the dataframe has {n} rows")
            checked[key] = values
        return checked

    def _reserved_keys(self) -> set[str]:
        keys = {self.input_tensors_key, self.labels_key, self.index_key, PATHS_KEY, CATEGORIES_KEY, SEQUENCE_KEY, *BBOXES_KEYS}
        if self._mode == "query_gallery":
            keys |= {IS_QUERY_KEY, IS_GALLERY_KEY}
        return keys

    def _drop_unreadable(self) -> None:
        bad: list[int] = []
        reasons: list[str] = []
        for position, path in enumerate(self._paths):
            try:
                read_image(path)
            except ImageReadError as exc:
                bad.append(position)
                reasons.append(f"row {self._row_names[position]}: {path} ({exc.reason})")
        if not bad:
            return
        if len(bad) == len(self._paths):
            raise OMLError(f"{type(self).__name__}: none of the {len(bad)} images can be read, e.g. {reasons[0]}")
        shown = "; ".join(reasons[:20]) + (f"; and {len(reasons) - 20} more" if len(reasons) > 20 else "")
        warnings.warn(f"{type(self).__name__}: skipping {len(bad)} unreadable image(s): {shown}", UserWarning, stacklevel=3)
        keep = np.setdiff1d(np.arange(len(self._paths)), np.asarray(bad))
        self._row_names = [self._row_names[i] for i in keep]
        self.df = self.df.iloc[keep].reset_index(drop=True)
        self.extra_data = {key: _take(values, keep) for key, values in self.extra_data.items()}
        self._load_columns()

    # -------------------------------------------------------------------------------------------- items
    def __len__(self) -> int:
        return len(self._paths)

    def get_image(self, idx: int) -> Image.Image:
        """The RGB image of item ``idx``, cropped to its box (if any), before the transform."""
        return self._read(idx)[0]

    def _read(self, idx: int) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
        path = self._paths[idx]
        row = self._row_names[idx]
        if self._cache.maxsize > 0:
            data = self._cache.get(path)
            if data is None:
                data = read_bytes(path, row=row)
                self._cache.put(path, data)
            image = read_image(data, row=row, name=path)
        else:
            image = read_image(path, row=row)
        box = self.get_box(idx, image.size)
        if box is not None and box != (0, 0, image.width, image.height):
            image = image.crop(box)
        return image, box

    def get_box(self, idx: int, image_size: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """``(x1, y1, x2, y2)`` in whole pixels, clipped to an image of ``image_size`` (width, height); the whole
        image when the row has no box, None when the dataframe has no box columns."""
        width, height = image_size
        if self._boxes is None:
            return None
        values = self._boxes[idx]
        if np.isnan(values).any():
            return 0, 0, width, height
        x1, y1 = max(0, int(round(values[0]))), max(0, int(round(values[1])))
        x2, y2 = min(width, int(round(values[2]))), min(height, int(round(values[3])))
        if x2 <= x1 or y2 <= y1:
            raise OMLError(
                f"the box ({values[0]:g}, {values[1]:g}, {values[2]:g}, {values[3]:g}) of row {self._row_names[idx]} "
                f"({self._paths[idx]}) lies outside its {width}x{height} image"
            )
        return x1, y1, x2, y2

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if isinstance(idx, Tensor | np.integer):
            idx = int(idx)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} is out of range for a dataset of {len(self)} items")
        idx = idx % len(self)
        image, box = self._read(idx)
        tensor = self.transform(image)
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point() or tensor.ndim != 3:
            got = f"{type(tensor).__name__}" + (f" {tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, Tensor) else "")
            raise OMLError(
                f"{type(self).__name__}: the transform must return a float tensor (C, H, W), got {got}; end it with "
                f"ToTensor() and Normalize() (e.g. get_normalisation_resize_torch(im_size))"
            )
        item: dict[str, Any] = {self.input_tensors_key: tensor, self.index_key: idx, PATHS_KEY: self._paths[idx]}
        if self._labels is not None:
            item[self.labels_key] = int(self._labels[idx])
        if self._categories is not None:
            item[CATEGORIES_KEY] = self._categories[idx]
        if self._sequences is not None:
            item[SEQUENCE_KEY] = self._sequences[idx]
        if box is not None:
            item.update(zip(BBOXES_KEYS, box))
        if self._is_query is not None and self._is_gallery is not None:
            item[IS_QUERY_KEY] = bool(self._is_query[idx])
            item[IS_GALLERY_KEY] = bool(self._is_gallery[idx])
        for key, values in self.extra_data.items():
            item[key] = values[idx]
        return item

    # -------------------------------------------------------------------------------------------- accessors
    def get_paths(self) -> list[str]:
        """The full paths of the images, in item order."""
        return list(self._paths)

    def get_labels(self) -> np.ndarray:
        """The labels, one per item (int64)."""
        if self._labels is None:
            raise OMLError(f"{type(self).__name__}: the dataframe has no {LABELS_COLUMN!r} column, so the dataset has no labels")
        return self._labels

    def get_sequences(self) -> list[str] | None:
        """The sequence of each item (a row without one is a sequence of its own), or None without the column:
        what retrieval uses to leave out the items of a query's own sequence."""
        return list(self._sequences) if self._sequences is not None else None

    def get_categories(self) -> list[str] | None:
        """The category of each item, or None when the dataframe has no category column."""
        return list(self._categories) if self._categories is not None else None

    def get_label2category(self) -> dict[int, str] | None:
        """``{label: category}`` when the dataframe has a category column, else None (one category per label)."""
        if self._categories is None or self._labels is None:
            return None
        return dict(zip(self._labels.tolist(), self._categories))

    def visualize(self, idx: int, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """The whole image of item ``idx`` as an ``(H, W, 3)`` uint8 array, with its box drawn in ``color``."""
        image = read_image(self._paths[idx], row=self._row_names[idx])
        box = self.get_box(idx, image.size) if self._boxes is not None else None
        if box is not None:
            width = max(1, round((image.width + image.height) / 200))
            ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=color, width=width)
        return np.asarray(image).copy()

    def __repr__(self) -> str:
        root = f", dataset_root={str(self.dataset_root)!r}" if self.dataset_root is not None else ""
        return f"{type(self).__name__}({len(self)} items{root})"


def _take(values: Any, keep: np.ndarray) -> Any:
    if isinstance(values, Tensor):
        return values[torch.as_tensor(keep, dtype=torch.long)]
    if isinstance(values, np.ndarray):
        return values[keep]
    return [values[i] for i in keep.tolist()]


class DatasetWithLabels(_ImageDataFrameDataset):
    """Images with labels, for training: items ``input_tensors``, ``labels``, ``idx``, ``paths`` (+ ``categories``,
    ``sequence``, ``x1..y2`` when in the dataframe, + each ``extra_data`` key).

    ``df`` is a DataFrame or the path of a CSV/parquet file with at least ``label`` and ``path``; ``transform``
    defaults to to-tensor + ImageNet normalisation; ``cache_size`` keeps that many files' bytes in memory;
    ``skip_unreadable=True`` reads every image once now and leaves out those that fail, with one warning.

    Example:
        >>> import tempfile
        >>> from oml_core.data.transforms import get_normalisation_resize_torch
        >>> root = Path(tempfile.mkdtemp()); Image.new("RGB", (10, 8), "red").save(root / "a.png")
        >>> df = pd.DataFrame({"label": [3], "path": ["a.png"]})
        >>> dataset = DatasetWithLabels(df, dataset_root=root, transform=get_normalisation_resize_torch(4))
        >>> item = dataset[0]
        >>> item["input_tensors"].shape, item["labels"], dataset.get_labels().tolist()
        (torch.Size([3, 4, 4]), 3, [3])
    """

    _mode = "labeled"


class DatasetQueryGallery(_ImageDataFrameDataset):
    """Validation images split into queries and gallery: items of :class:`DatasetWithLabels` plus ``is_query`` and
    ``is_gallery`` (bools). Labels are optional here (inference on unlabeled data); every row is used, whatever
    its ``split``.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("a.png", "b.png"):
        ...     Image.new("RGB", (4, 4)).save(root / name)
        >>> df = pd.DataFrame({"label": [0, 0], "path": ["a.png", "b.png"], "is_query": [True, False],
        ...                    "is_gallery": [False, True]})
        >>> dataset = DatasetQueryGallery(df, dataset_root=root)
        >>> dataset.get_query_ids().tolist(), dataset.get_gallery_ids().tolist(), dataset[0]["is_query"]
        ([0], [1], True)
    """

    _mode = "query_gallery"

    def get_query_ids(self) -> torch.LongTensor:
        """Positions of the queries, a 1-D LongTensor (also with a single query)."""
        assert self._is_query is not None
        return torch.from_numpy(np.flatnonzero(self._is_query).astype(np.int64))  # type: ignore[return-value]

    def get_gallery_ids(self) -> torch.LongTensor:
        """Positions of the gallery items, a 1-D LongTensor."""
        assert self._is_gallery is not None
        return torch.from_numpy(np.flatnonzero(self._is_gallery).astype(np.int64))  # type: ignore[return-value]


__all__ = ["DatasetQueryGallery", "DatasetWithLabels"]
