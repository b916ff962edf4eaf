"""The mock dataset: valid, identical for the same seed, reused when already there, boxes around the shapes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oml_core.cli import main
from oml_core.data import DatasetQueryGallery, DatasetWithLabels, download_mock_dataset, read_dataframe, validate_dataframe
from oml_core.data.mock import COLOURS, MANIFEST_NAME, MOCK_DATAFRAMES, generate_mock_dataset, identities
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.errors import OMLError

SMALL = {"n_labels": 6, "n_instances": 4, "im_size": 32, "seed": 3}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mock_default")
    download_mock_dataset(root)
    return root


def test_default_size_suits_a_cpu_demo(default_root: Path) -> None:
    df_train, df_val = download_mock_dataset(default_root)
    assert (df_train["label"].nunique(), df_val["label"].nunique()) == (24, 12)
    assert len(df_train) == 24 * 8 and len(df_val) == 12 * 8
    assert not set(df_train["label"]) & set(df_val["label"])
    assert df_val["is_query"].dtype == bool and df_val["is_query"].all() and df_val["is_gallery"].all()
    assert Image.open(default_root / df_train["path"][0]).size == (64, 64)


@pytest.mark.parametrize("df_name", MOCK_DATAFRAMES)
def test_every_variant_passes_the_validator_with_files(default_root: Path, df_name: str) -> None:
    report = validate_dataframe(default_root / df_name, dataset_root=default_root)
    assert report.problems == [], str(report)


def test_variants_have_their_columns(default_root: Path) -> None:
    assert "category" in read_dataframe(default_root / "df_with_category.csv").columns
    assert "sequence" in read_dataframe(default_root / "df_with_sequence.csv").columns
    boxes = read_dataframe(default_root / "df_with_bboxes.csv")
    assert {"x_1", "y_1", "x_2", "y_2"} <= set(boxes.columns)
    no_box = boxes["x_1"].isna()
    assert 0 < no_box.sum() < len(boxes)  # some rows use the whole image
    assert (boxes.loc[no_box, ["y_1", "x_2", "y_2"]].isna()).all().all()


def test_boxes_surround_the_identity_colour(default_root: Path) -> None:
    df = read_dataframe(default_root / "df_with_bboxes.csv").dropna(subset=["x_1"])
    by_label = dict(enumerate(identities(0)))
    for _, row in df.iterrows():
        pixels = np.asarray(Image.open(default_root / row["path"])).astype(np.float64)
        x1, y1, x2, y2 = (int(row[c]) for c in ("x_1", "y_1", "x_2", "y_2"))
        colour = np.asarray(COLOURS[by_label[int(row["label"])].colour], dtype=np.float64)
        close = np.linalg.norm(pixels - colour, axis=2) < 50  # the background is kept >= 80 away from it
        inside = close[y1:y2, x1:x2].sum()
        assert inside >= 0.85 * close.sum(), row["path"]  # the shape lies in its box (distractor lines may match)
        assert inside >= 0.25 * (x2 - x1) * (y2 - y1), row["path"]  # and fills a good part of it


def test_the_same_seed_gives_identical_files(tmp_path: Path) -> None:
    first = generate_mock_dataset(tmp_path / "a", **SMALL)
    second = generate_mock_dataset(tmp_path / "b", **SMALL)
    assert _files(first) == _files(second)
    other = generate_mock_dataset(tmp_path / "c", **{**SMALL, "seed": 4})
    assert _files(other)["df.csv"] != _files(first)["df.csv"] or _files(other) != _files(first)
    differing = [k for k in _files(first) if k.endswith(".png") and _files(first)[k] != _files(other).get(k)]
    assert differing


def test_label_identity_does_not_depend_on_the_number_of_labels(tmp_path: Path) -> None:
    small = generate_mock_dataset(tmp_path / "small", n_labels=3, n_instances=2, im_size=16)
    large = generate_mock_dataset(tmp_path / "large", n_labels=6, n_instances=3, im_size=16)
    first = sorted((small / "images").iterdir())[0]
    assert (first / "00.png").read_bytes() == (large / "images" / first.name / "00.png").read_bytes()


def test_generation_is_idempotent_and_repairs_tampering(tmp_path: Path) -> None:
    root = generate_mock_dataset(tmp_path, **SMALL)
    image = next((root / "images").rglob("*.png"))
    stamp = image.stat().st_mtime_ns
    os.utime(image, ns=(stamp - 10**9, stamp - 10**9))
    generate_mock_dataset(tmp_path, **SMALL)
    assert image.stat().st_mtime_ns == stamp - 10**9  # reused, not rewritten
    original = image.read_bytes()
    image.write_bytes(b"tampered")
    generate_mock_dataset(tmp_path, **SMALL, check_md5=False)
    assert image.read_bytes() == b"tampered"  # without the check, the manifest is trusted
    generate_mock_dataset(tmp_path, **SMALL)
    assert image.read_bytes() == original
    (root / MANIFEST_NAME).unlink()
    generate_mock_dataset(tmp_path, **SMALL)
    assert (root / MANIFEST_NAME).exists()


def test_other_parameters_regenerate(tmp_path: Path) -> None:
    download_mock_dataset(tmp_path, **SMALL)
    df_train, df_val = download_mock_dataset(tmp_path, **{**SMALL, "n_instances": 2})
    assert len(df_train) + len(df_val) == 6 * 2
    assert len(read_dataframe(tmp_path / "df.csv")) == 12


def test_download_options(tmp_path: Path) -> None:
    df_train, df_val = download_mock_dataset(tmp_path, df_name="df_with_category.csv", global_paths=True, **SMALL)
    assert Path(df_train["path"][0]).is_absolute() and Path(df_train["path"][0]).exists()
    assert "category" in df_val.columns
    with pytest.raises(OMLError, match="choose one of df.csv"):
        download_mock_dataset(tmp_path, df_name="df_full.csv", **SMALL)
    with pytest.raises(OMLError, match="n_labels must be between 2"):
        download_mock_dataset(tmp_path, n_labels=1)


def test_datasets_read_the_mock_dataset(tmp_path: Path) -> None:
    df_train, df_val = download_mock_dataset(tmp_path, df_name="df_with_bboxes.csv", **SMALL)
    transform = get_normalisation_resize_torch(32)
    train = DatasetWithLabels(df_train, dataset_root=tmp_path, transform=transform)
    val = DatasetQueryGallery(df_val, dataset_root=tmp_path, transform=transform)
    assert train[0]["input_tensors"].shape == (3, 32, 32)
    assert len(val.get_query_ids()) == len(df_val)
    assert val.get_labels().tolist() == df_val["label"].tolist()


def test_cli_generates_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock-dataset", str(tmp_path / "cli"), "--labels", "4", "--instances", "2", "--size", "16", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "8 images of 16x16" in out and "3 train and 1 validation labels" in out
    df = pd.read_csv(tmp_path / "cli" / "df.csv")
    assert len(df) == 8 and validate_dataframe(df, dataset_root=tmp_path / "cli").ok
    assert main(["mock-dataset", str(tmp_path / "bad"), "--size", "4"]) == 2
    assert "im_size must be between 16 and 1024" in capsys.readouterr().err
