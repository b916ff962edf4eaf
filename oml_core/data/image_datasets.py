"""OML 4.x's image datasets, by name and call shape, on top of this project's datasets.

``ImageLabeledDataset``, ``ImageQueryGalleryLabeledDataset`` and ``ImageQueryGalleryDataset`` are
:class:`DatasetWithLabels` / :class:`DatasetQueryGallery` with OML 4's positional order
``(df, extra_data, dataset_root, transform, f_imread, cache_size, ...)``; like OML 4 they also put the dataframe's
``category`` and ``sequence`` columns into ``extra_data`` (``val.extra_data["category"]``), and an unlabeled
``ImageQueryGalleryDataset`` has no labels even when the dataframe has them. ``ImageBaseDataset`` is a plain list of
image paths (OML 4's streaming retrieval), ``PairDataset`` iterates pairs of items of another dataset.

Example:
    >>> import tempfile
    >>> from oml_core.data.mock import download_mock_dataset
    >>> df_train, df_val = download_mock_dataset(tempfile.mkdtemp(), n_labels=6, n_instances=2, im_size=16,
    ...                                          df_name="df_with_category.csv", global_paths=True)
    >>> val = ImageQueryGalleryLabeledDataset(df_val)
    >>> len(val), sorted(val.extra_data), val[0]["category"] == val.extra_data["category"][0]
    (4, ['category'], True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from oml_core.data.const import (
    CATEGORIES_COLUMN,
    INDEX_KEY,
    INPUT_TENSORS_KEY,
    LABELS_COLUMN,
    LABELS_KEY,
    SEQUENCE_COLUMN,
)
from oml_core.data.datasets import DatasetQueryGallery, DatasetWithLabels
from oml_core.data.images import BytesCache, read_bytes, read_image
from oml_core.data.transforms import get_normalisation_torch
from oml_core.errors import OMLError

#: Keys that OML 4's query-gallery and labeled datasets copy from the dataframe into ``extra_data``.
OML4_EXTRA_COLUMNS = (CATEGORIES_COLUMN, SEQUENCE_COLUMN)


def _no_custom_reader(f_imread: Any, who: str) -> None:
    if f_imread is not None:
        raise OMLError(
            f"{who}: f_imread is not supported here: images are read with Pillow (RGB, EXIF rotation applied); "
            "drop the argument, or convert the images before building the dataframe"
        )


class _OML4Columns:
    """Mixin: OML 4 keeps ``category`` and ``sequence`` in ``extra_data`` (and so in every item, raw values)."""

    extra_data: dict[str, Any]
    df: pd.DataFrame

    def _add_oml4_columns(self) -> None:
        for column in OML4_EXTRA_COLUMNS:
            if column in self.df.columns and column not in self.extra_data:
                values = self.df[column].to_numpy()
                if column == SEQUENCE_COLUMN:  # the same missing-value rule as the engine: a row alone in its sequence
                    values = np.asarray(self.get_sequences(), dtype=object)  # type: ignore[attr-defined]
                self.extra_data[column] = values


class ImageLabeledDataset(_OML4Columns, DatasetWithLabels):
    """OML 4's ``ImageLabeledDataset(df, extra_data=None, dataset_root=None, transform=None, f_imread=None,
    cache_size=0, input_tensors_key="input_tensors", labels_key="labels", index_key="idx")``: items
    ``input_tensors``, ``labels``, ``idx`` (+ this project's ``paths`` and box keys, + ``extra_data``)."""

    def __init__(
        self,
        df: pd.DataFrame | str | os.PathLike[str],
        extra_data: Mapping[str, Any] | None = None,
        dataset_root: str | os.PathLike[str] | None = None,
        transform: Any = None,
        f_imread: Any = None,
        cache_size: int | None = 0,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        index_key: str = INDEX_KEY,
        **options: Any,
    ) -> None:
        _no_custom_reader(f_imread, type(self).__name__)
        super().__init__(
            df,
            dataset_root=dataset_root,
            transform=transform,
            extra_data=extra_data,
            cache_size=cache_size or 0,
            input_tensors_key=input_tensors_key,
            labels_key=labels_key,
            index_key=index_key,
            **options,
        )
        self._add_oml4_columns()


class ImageQueryGalleryLabeledDataset(_OML4Columns, DatasetQueryGallery):
    """OML 4's ``ImageQueryGalleryLabeledDataset(df, extra_data=None, dataset_root=None, transform=None,
    f_imread=None, cache_size=0, input_tensors_key="input_tensors", labels_key="labels")``: validation images with
    labels and the ``is_query`` / ``is_gallery`` split."""

    def __init__(
        self,
        df: pd.DataFrame | str | os.PathLike[str],
        extra_data: Mapping[str, Any] | None = None,
        dataset_root: str | os.PathLike[str] | None = None,
        transform: Any = None,
        f_imread: Any = None,
        cache_size: int | None = 0,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        **options: Any,
    ) -> None:
        _no_custom_reader(f_imread, type(self).__name__)
        if isinstance(df, pd.DataFrame) and LABELS_COLUMN not in df.columns:
            raise OMLError(
                f"{type(self).__name__}: the dataframe has no {LABELS_COLUMN!r} column; for unlabeled queries and "
                "gallery use ImageQueryGalleryDataset"
            )
        super().__init__(
            df,
            dataset_root=dataset_root,
            transform=transform,
            extra_data=extra_data,
            cache_size=cache_size or 0,
            input_tensors_key=input_tensors_key,
            labels_key=labels_key,
            **options,
        )
        self._add_oml4_columns()


class ImageQueryGalleryDataset(_OML4Columns, DatasetQueryGallery):
    """OML 4's ``ImageQueryGalleryDataset(df, extra_data=None, dataset_root=None, transform=None, f_imread=None,
    cache_size=0, input_tensors_key="input_tensors")``: queries and gallery without ground truth (a ``label`` column,
    if any, is ignored, as in OML 4), e.g. for predictions."""

    def __init__(
        self,
        df: pd.DataFrame | str | os.PathLike[str],
        extra_data: Mapping[str, Any] | None = None,
        dataset_root: str | os.PathLike[str] | None = None,
        transform: Any = None,
        f_imread: Any = None,
        cache_size: int | None = 0,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        **options: Any,
    ) -> None:
        _no_custom_reader(f_imread, type(self).__name__)
        if isinstance(df, pd.DataFrame) and LABELS_COLUMN in df.columns:
            df = df.drop(columns=[LABELS_COLUMN])
        super().__init__(
            df,
            dataset_root=dataset_root,
            transform=transform,
            extra_data=extra_data,
            cache_size=cache_size or 0,
            input_tensors_key=input_tensors_key,
            **options,
        )
        self._add_oml4_columns()


class ImageBaseDataset(Dataset[dict[str, Any]]):
    """OML 4's ``ImageBaseDataset(paths, dataset_root=None, bboxes=None, extra_data=None, transform=None,
    f_imread=None, cache_size=0, input_tensors_key="input_tensors", index_key="idx")``: images by path, without
    labels or a query/gallery split; items ``input_tensors``, ``idx`` and the ``extra_data`` keys.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()); Image.new("RGB", (8, 6), "red").save(root / "a.png")
        >>> dataset = ImageBaseDataset(["a.png"], dataset_root=root, bboxes=[(0, 0, 4, 3)], extra_data={"x": [7]})
        >>> item = dataset[0]
        >>> tuple(item["input_tensors"].shape), item["idx"], item["x"], dataset.visualize(0).shape
        ((3, 3, 4), 0, 7, (6, 8, 3))
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | pd.Series,
        dataset_root: str | os.PathLike[str] | None = None,
        bboxes: Sequence[tuple[int, int, int, int] | None] | None = None,
        extra_data: Mapping[str, Any] | None = None,
        transform: Any = None,
        f_imread: Any = None,
        cache_size: int | None = 0,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
    ) -> None:
        _no_custom_reader(f_imread, type(self).__name__)
        paths = list(paths.tolist() if isinstance(paths, pd.Series) else paths)
        if bboxes is not None and len(bboxes) != len(paths):
            raise OMLError(f"ImageBaseDataset: {len(bboxes)} bboxes for {len(paths)} paths")
        extra = dict(extra_data or {})
        for key, values in extra.items():
            if len(values) != len(paths):
                raise OMLError(f"ImageBaseDataset: extra_data[{key!r}] has {len(values)} entries for {len(paths)} paths")
            if key in (input_tensors_key, index_key):
                raise OMLError(f"ImageBaseDataset: extra_data key {key!r} clashes with a key the dataset sets itself")
        root = Path(dataset_root) if dataset_root is not None else None
        self._paths = [str(root / p) if root is not None else os.fspath(p) for p in paths]
        self._bboxes = list(bboxes) if bboxes is not None else None
        self.extra_data = extra
        self.transform = transform if transform is not None else get_normalisation_torch()
        self.input_tensors_key, self.index_key = input_tensors_key, index_key
        self._cache = BytesCache(cache_size or 0)

    def __len__(self) -> int:
        return len(self._paths)

    def _image(self, item: int) -> Image.Image:
        path = self._paths[item]
        if self._cache.maxsize > 0:
            data = self._cache.get(path)
            if data is None:
                data = read_bytes(path, row=item)
                self._cache.put(path, data)
            return read_image(data, row=item, name=path)
        return read_image(path, row=item)

    def __getitem__(self, item: int) -> dict[str, Any]:
        item = int(item)
        image = self._image(item)
        box = self._bboxes[item] if self._bboxes is not None else None
        if box is not None:
            x1, y1, x2, y2 = (int(v) for v in box)
            image = image.crop((x1, y1, x2, y2))
        data: dict[str, Any] = {self.input_tensors_key: self.transform(image), self.index_key: item}
        for key, values in self.extra_data.items():
            data[key] = values[item]
        return data

    def get_paths(self) -> list[str]:
        """The full paths of the images, in item order."""
        return list(self._paths)

    def visualize(self, item: int, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """The whole image of ``item`` as an ``(H, W, 3)`` uint8 array, with its box (if any) drawn in ``color``."""
        from PIL import ImageDraw

        image = self._image(int(item))
        box = self._bboxes[int(item)] if self._bboxes is not None else None
        if box is not None:
            ImageDraw.Draw(image).rectangle(tuple(int(v) for v in box), outline=color, width=2)  # type: ignore[arg-type]
        return np.asarray(image).copy()

    def __repr__(self) -> str:
        return f"ImageBaseDataset({len(self)} items)"


class PairDataset(Dataset[dict[str, Any]]):
    """OML 4's ``PairDataset(base_dataset, pair_ids, input_tensors_key_1="input_tensors_1",
    input_tensors_key_2="input_tensors_2", index_key="idx")``: item ``i`` holds the tensors of both items of
    ``pair_ids[i]`` (what a pairwise model scores).

    Example:
        >>> import torch
        >>> class Items(torch.utils.data.Dataset):
        ...     input_tensors_key = "input_tensors"
        ...     def __getitem__(self, i): return {"input_tensors": torch.full((1,), float(i))}
        ...     def __len__(self): return 3
        >>> pair = PairDataset(Items(), [(0, 2)])[0]
        >>> pair["input_tensors_1"].item(), pair["input_tensors_2"].item(), pair["idx"]
        (0.0, 2.0, 0)
    """

    def __init__(
        self,
        base_dataset: Any,
        pair_ids: Sequence[tuple[int, int]],
        input_tensors_key_1: str = "input_tensors_1",
        input_tensors_key_2: str = "input_tensors_2",
        index_key: str = INDEX_KEY,
    ) -> None:
        self.base_dataset = base_dataset
        self.pair_ids = [(int(a), int(b)) for a, b in pair_ids]
        self.input_tensors_key_1, self.input_tensors_key_2 = input_tensors_key_1, input_tensors_key_2
        self.index_key = index_key

    def __getitem__(self, item: int) -> dict[str, Tensor | int]:
        first, second = self.pair_ids[int(item)]
        key = getattr(self.base_dataset, "input_tensors_key", INPUT_TENSORS_KEY)
        return {
            self.input_tensors_key_1: self.base_dataset[first][key],
            self.input_tensors_key_2: self.base_dataset[second][key],
            self.index_key: int(item),
        }

    def __len__(self) -> int:
        return len(self.pair_ids)


__all__ = [
    "ImageBaseDataset",
    "ImageLabeledDataset",
    "ImageQueryGalleryDataset",
    "ImageQueryGalleryLabeledDataset",
    "PairDataset",
]
