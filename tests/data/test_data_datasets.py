"""Datasets: documented keys, shapes and dtypes, box crops, collation in a DataLoader with workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from oml_core.data import DataFrameError, DatasetQueryGallery, DatasetWithLabels
from oml_core.data.transforms import ToTensor, get_normalisation_resize_torch
from oml_core.errors import OMLError

from .conftest import HEIGHT, N_IMAGES, WIDTH, image_pixels


def _with_extras(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(
        category=["cat", "cat", "dog", "dog", "cat", "cat", "dog", "dog"],
        sequence=["a", "b", "c", "d", "e", "e", "f", 7],
        x_1=[2, None, 0, 0, 0, 0, 0, 0],
        y_1=[3, None, 0, 0, 0, 0, 0, 0],
        x_2=[12, None, 20, 20, 20, 20, 20, 20],
        y_2=[9, None, 12, 12, 12, 12, 12, 12],
    )


def test_labeled_items_have_the_documented_keys_and_types(image_root: Path, good_df: pd.DataFrame) -> None:
    embeddings = torch.randn(N_IMAGES, 5)
    dataset = DatasetWithLabels(
        _with_extras(good_df),
        dataset_root=image_root,
        transform=get_normalisation_resize_torch(16),
        extra_data={"embeddings": embeddings},
    )
    item = dataset[0]
    assert set(item) == {
        "input_tensors",
        "labels",
        "idx",
        "paths",
        "categories",
        "sequence",
        "x1",
        "y1",
        "x2",
        "y2",
        "embeddings",
    }
    assert item["input_tensors"].shape == (3, 16, 16) and item["input_tensors"].dtype == torch.float32
    assert isinstance(item["labels"], int) and item["labels"] == 0
    assert item["idx"] == 0 and item["paths"] == str(image_root / "img" / "0.png")
    assert item["categories"] == "cat" and item["sequence"] == "a"
    assert (item["x1"], item["y1"], item["x2"], item["y2"]) == (2, 3, 12, 9)
    assert torch.equal(item["embeddings"], embeddings[0])
    assert dataset[7]["sequence"] == "7"
    assert dataset.get_labels().dtype == np.int64 and dataset.get_labels().tolist() == good_df["label"].tolist()
    assert dataset.get_label2category() == {0: "cat", 1: "dog", 2: "cat", 3: "dog"}
    assert len(dataset) == N_IMAGES and dataset.df["path"][0] == item["paths"]


def test_box_crops_are_exact_and_rows_without_box_use_the_whole_image(image_root: Path, good_df: pd.DataFrame) -> None:
    dataset = DatasetWithLabels(_with_extras(good_df), dataset_root=image_root, transform=ToTensor())
    cropped = dataset[0]
    expected = torch.from_numpy(image_pixels(0)[3:9, 2:12]).permute(2, 0, 1).float() / 255
    assert torch.equal(cropped["input_tensors"], expected)
    whole = dataset[1]
    assert whole["input_tensors"].shape == (3, HEIGHT, WIDTH)
    assert torch.equal(whole["input_tensors"], torch.from_numpy(image_pixels(1)).permute(2, 0, 1).float() / 255)
    assert (whole["x1"], whole["y1"], whole["x2"], whole["y2"]) == (0, 0, WIDTH, HEIGHT)


def test_fractional_boxes_are_rounded(image_root: Path, good_df: pd.DataFrame) -> None:
    df = good_df.assign(x_1=1.4, y_1=0.6, x_2=5.5, y_2=4.2)
    item = DatasetWithLabels(df, dataset_root=image_root, transform=ToTensor())[2]
    assert (item["x1"], item["y1"], item["x2"], item["y2"]) == (1, 1, 6, 4)
    assert torch.equal(item["input_tensors"], torch.from_numpy(image_pixels(2)[1:4, 1:6]).permute(2, 0, 1).float() / 255)


def test_query_gallery_items_and_ids(image_root: Path, good_df: pd.DataFrame) -> None:
    df_val = (
        good_df.iloc[4:].reset_index(drop=True).assign(is_query=[True, False, True, True], is_gallery=[True, True, False, True])
    )
    with pytest.warns(UserWarning, match=r"query_without_match.*\(row 3\)"):
        dataset = DatasetQueryGallery(df_val, dataset_root=image_root, transform=get_normalisation_resize_torch(8))
    item = dataset[1]
    assert item["is_query"] is False and item["is_gallery"] is True
    assert set(item) == {"input_tensors", "labels", "idx", "paths", "is_query", "is_gallery"}
    assert dataset.get_query_ids().tolist() == [0, 2, 3] and dataset.get_query_ids().dtype == torch.int64
    assert dataset.get_gallery_ids().tolist() == [0, 1, 3]


def test_a_single_query_gives_one_dimensional_ids(image_root: Path, good_df: pd.DataFrame) -> None:
    df_val = good_df.iloc[4:].assign(is_query=[False, True, False, False])
    dataset = DatasetQueryGallery(df_val, dataset_root=image_root, transform=ToTensor())
    assert dataset.get_query_ids().shape == (1,) and dataset.get_query_ids().tolist() == [1]
    assert dataset.get_gallery_ids().shape == (4,)


def test_string_flags_from_csv_are_parsed(tmp_path: Path, image_root: Path, good_df: pd.DataFrame) -> None:
    df_val = good_df.iloc[4:].assign(is_query=["True", "false", "1", "0"], is_gallery="yes")
    df_val.to_csv(tmp_path / "val.csv", index=False)
    dataset = DatasetQueryGallery(tmp_path / "val.csv", dataset_root=image_root)
    assert dataset.get_query_ids().tolist() == [0, 2]


def test_query_gallery_without_labels(image_root: Path, good_df: pd.DataFrame) -> None:
    dataset = DatasetQueryGallery(
        good_df.iloc[4:].drop(columns=["label", "split"]), dataset_root=image_root, transform=ToTensor()
    )
    assert "labels" not in dataset[0]
    with pytest.raises(OMLError, match="no 'label' column"):
        dataset.get_labels()


def test_dataloader_with_workers_collates_batches(image_root: Path, good_df: pd.DataFrame) -> None:
    df = _with_extras(good_df).assign(is_query=True, is_gallery=True, sequence=[str(i) for i in range(N_IMAGES)])
    dataset = DatasetQueryGallery(
        df,
        dataset_root=image_root,
        transform=get_normalisation_resize_torch(8),
        extra_data={"embeddings": np.arange(N_IMAGES * 2, dtype=np.float32).reshape(N_IMAGES, 2)},
        cache_size=4,
    )
    batches = list(DataLoader(dataset, batch_size=3, num_workers=2))
    assert [len(b["paths"]) for b in batches] == [3, 3, 2]
    batch = batches[0]
    assert batch["input_tensors"].shape == (3, 3, 8, 8) and batch["input_tensors"].dtype == torch.float32
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [0, 0, 1]
    assert batch["idx"].tolist() == [0, 1, 2]
    assert batch["is_query"].dtype == torch.bool and batch["is_query"].all()
    assert isinstance(batch["paths"], list) and isinstance(batch["categories"], list)
    assert batch["embeddings"].shape == (3, 2)
    assert batch["x1"].tolist() == [2, 0, 0]


def test_cache_keeps_bytes_in_memory(image_root: Path, good_df: pd.DataFrame) -> None:
    cached = DatasetWithLabels(good_df, dataset_root=image_root, transform=ToTensor(), cache_size=8)
    plain = DatasetWithLabels(good_df, dataset_root=image_root, transform=ToTensor())
    first = cached[0]["input_tensors"]
    (image_root / "img" / "0.png").unlink()
    assert torch.equal(cached[0]["input_tensors"], first)
    with pytest.raises(OMLError, match="0.png"):
        plain[0]


def test_dataframe_can_be_a_csv_path_with_float_labels(tmp_path: Path, image_root: Path, good_df: pd.DataFrame) -> None:
    good_df.assign(label=good_df["label"].astype(float)).to_csv(tmp_path / "df.csv", index=False)
    dataset = DatasetWithLabels(tmp_path / "df.csv", dataset_root=image_root)
    assert dataset.get_labels().dtype == np.int64 and dataset[3]["labels"] == 1


def test_dataset_is_picklable(image_root: Path, good_df: pd.DataFrame) -> None:
    dataset = DatasetWithLabels(good_df, dataset_root=image_root, transform=get_normalisation_resize_torch(8), cache_size=2)
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[5]["input_tensors"], dataset[5]["input_tensors"])


def test_absolute_paths_without_root(image_root: Path, good_df: pd.DataFrame) -> None:
    df = good_df.assign(path=[str(image_root / p) for p in good_df["path"]])
    dataset = DatasetWithLabels(df=df, transform=ToTensor())
    assert dataset[0]["paths"] == str(image_root / "img" / "0.png")


def test_invalid_dataframe_is_refused_with_the_report(image_root: Path, good_df: pd.DataFrame) -> None:
    with pytest.raises(DataFrameError) as info:
        DatasetWithLabels(good_df.assign(label=["a"] * N_IMAGES), dataset_root=image_root)
    assert "non_integer_label" in str(info.value) and "DatasetWithLabels" in str(info.value)
    with pytest.raises(DataFrameError, match="'is_query' is missing"):
        DatasetQueryGallery(good_df.drop(columns="is_query"), dataset_root=image_root)
    with pytest.raises(DataFrameError, match="absolute_path"):
        DatasetWithLabels(good_df.assign(path="/etc/passwd"), dataset_root=image_root)


@pytest.mark.parametrize(
    ("extra_data", "message"),
    [
        ({"embeddings": torch.zeros(3, 2)}, "has 3 entries but the dataframe has 8 rows"),
        ({"labels": list(range(8))}, "clashes with a key"),
        ({"score": 5}, "must be a sequence"),
    ],
)
def test_bad_extra_data_is_explained(
    image_root: Path, good_df: pd.DataFrame, extra_data: dict[str, object], message: str
) -> None:
    with pytest.raises(OMLError, match=message):
        DatasetWithLabels(good_df, dataset_root=image_root, extra_data=extra_data)


def test_transform_must_return_a_float_tensor(image_root: Path, good_df: pd.DataFrame) -> None:
    dataset = DatasetWithLabels(good_df, dataset_root=image_root, transform=lambda image: image)
    with pytest.raises(OMLError, match=r"end it with ToTensor\(\)"):
        dataset[0]


def test_box_outside_the_image_is_named(image_root: Path, good_df: pd.DataFrame) -> None:
    dataset = DatasetWithLabels(good_df.assign(x_1=30, y_1=0, x_2=40, y_2=5), dataset_root=image_root)
    with pytest.raises(OMLError, match=r"row 0 .* outside its 20x12 image"):
        dataset[0]


def test_visualize_draws_the_box(image_root: Path, good_df: pd.DataFrame) -> None:
    Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255)).save(image_root / "img" / "0.png")
    dataset = DatasetWithLabels(good_df.assign(x_1=2, y_1=3, x_2=12, y_2=9), dataset_root=image_root)
    drawn = dataset.visualize(0, color=(255, 0, 0))
    assert drawn.shape == (HEIGHT, WIDTH, 3) and drawn.dtype == np.uint8
    assert tuple(drawn[3, 5]) == (255, 0, 0) and tuple(drawn[6, 6]) == (255, 255, 255)


def test_index_out_of_range(image_root: Path, good_df: pd.DataFrame) -> None:
    dataset = DatasetWithLabels(good_df, dataset_root=image_root)
    assert dataset[-1]["idx"] == N_IMAGES - 1
    assert dataset[torch.tensor(2)]["idx"] == 2  # type: ignore[index]
    with pytest.raises(IndexError):
        dataset[N_IMAGES]
