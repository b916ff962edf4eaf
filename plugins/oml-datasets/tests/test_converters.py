"""Each converter on a small replica of its dataset's files and folder layout, made here (the real datasets cannot
be downloaded in CI): the dataframe that comes out, both splits, and the errors for malformed annotations."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io as scipy_io  # Stanford Cars' .mat files (oml-datasets[cars], in the dev requirements)
from oml_datasets.converters import AnnotationError, convert_dataset
from PIL import Image

from oml_core.data.dataframe import validate_dataframe
from oml_core.errors import OMLError


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 320), (90, 120, 150)).save(buffer, format="JPEG")
    return buffer.getvalue()


JPEG = _jpeg()  # large enough for every box of the replicas


def _touch(root: Path, relative: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(JPEG)


def _read(root: Path, name: str = "df_with_bboxes.csv") -> pd.DataFrame:
    return pd.read_csv(root / name)


def _valid(df: pd.DataFrame, root: Path) -> None:
    report = validate_dataframe(df, dataset_root=root)
    assert report.ok, str(report)


# ------------------------------------------------------------------------------------------------- CUB-200-2011
def make_cub(root: Path, n_classes: int = 4, per_class: int = 4) -> Path:
    images, labels, split, boxes = [], [], [], []
    image_id = 0
    for class_id in range(1, n_classes + 1):
        folder = f"{class_id:03d}.Bird_{class_id}"
        for k in range(per_class):
            image_id += 1
            name = f"{folder}/Bird_{class_id}_{k:04d}_{image_id}.jpg"
            _touch(root, f"images/{name}")
            images.append(f"{image_id} {name}")
            labels.append(f"{image_id} {class_id}")
            split.append(f"{image_id} {1 if k % 2 == 0 else 0}")
            boxes.append(f"{image_id} {10.0 + k} 20.0 {100.0 + class_id} 50.0")
    for name, lines in [
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", split),
        ("bounding_boxes.txt", boxes),
    ]:
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_cub_standard_split_is_by_identity_with_boxes(tmp_path: Path) -> None:
    root = make_cub(tmp_path)
    report = convert_dataset("cub", root)
    df = _read(root)
    assert report.n_images == 16 and (report.n_train_labels, report.n_val_labels) == (2, 2)
    assert list(df.columns) == ["label", "path", "split", "is_query", "is_gallery", "x_1", "y_1", "x_2", "y_2"]
    assert set(df[df["split"] == "train"]["label"]) == {1, 2}
    assert set(df[df["split"] == "validation"]["label"]) == {3, 4}
    first = df.iloc[0]
    assert first["path"] == "images/001.Bird_1/Bird_1_0000_1.jpg"
    assert (first["x_1"], first["y_1"], first["x_2"], first["y_2"]) == (10, 20, 111, 70)  # x + width, y + height
    assert df[df["split"] == "validation"][["is_query", "is_gallery"]].all().all()
    assert df[df["split"] == "train"][["is_query", "is_gallery"]].isna().all().all()
    assert "x_1" not in _read(root, "df.csv").columns
    _valid(df, root)


def test_cub_oml_split_follows_train_test_split_file(tmp_path: Path) -> None:
    root = make_cub(tmp_path)
    convert_dataset("cub", root, split="oml")
    df = _read(root)
    # OML 4.0 splits the images of every class: the same labels on both sides
    assert set(df[df["split"] == "train"]["label"]) == set(df[df["split"] == "validation"]["label"]) == {1, 2, 3, 4}
    assert (df["split"] == "train").sum() == 8


def test_cub_malformed_line_is_named(tmp_path: Path) -> None:
    root = make_cub(tmp_path)
    lines = (root / "bounding_boxes.txt").read_text().splitlines()
    lines[6] = "7 10.0 20.0 wide 50.0"
    (root / "bounding_boxes.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"bounding_boxes.txt, line 7: field 'width' = 'wide'"):
        convert_dataset("cub", root)
    lines[6] = "7 10.0 20.0"
    (root / "bounding_boxes.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"bounding_boxes.txt, line 7: expected 5 fields"):
        convert_dataset("cub", root)


def test_cub_missing_image_and_missing_file(tmp_path: Path) -> None:
    root = make_cub(tmp_path)
    (root / "images/002.Bird_2/Bird_2_0001_6.jpg").unlink()
    with pytest.raises(OMLError, match=r"1 of the 16 images .* missing .*Bird_2_0001_6.jpg"):
        convert_dataset("cub", root)
    convert_dataset("cub", root, check_files=False)
    (root / "train_test_split.txt").unlink()
    with pytest.raises(OMLError, match="missing train_test_split.txt"):
        convert_dataset("cub", root)


# ------------------------------------------------------------------------------------------------- SOP
def make_sop(root: Path) -> Path:
    header = "image_id class_id super_class_id path"
    train, test = [header], [header]
    image_id = 0
    for class_id, category, super_id in [
        (1, "bicycle_final", 1),
        (2, "bicycle_final", 1),
        (3, "cabinet_final", 2),
        (4, "cabinet_final", 2),
    ]:
        for k in range(3):
            image_id += 1
            path = f"{category}/{100 + class_id}_{k}.JPG"
            _touch(root, path)
            (train if class_id <= 2 else test).append(f"{image_id} {class_id} {super_id} {path}")
    (root / "Ebay_train.txt").write_text("\n".join(train) + "\n")
    (root / "Ebay_test.txt").write_text("\n".join(test) + "\n")
    return root


def test_sop_split_and_categories(tmp_path: Path) -> None:
    root = make_sop(tmp_path)
    report = convert_dataset("sop", root)
    assert [p.name for p in report.written] == ["df.csv"]  # SOP has no boxes
    df = _read(root, "df.csv")
    assert list(df.columns) == ["label", "path", "split", "is_query", "is_gallery", "category"]
    assert set(df[df["split"] == "train"]["label"]) == {1, 2} and set(df[df["split"] == "validation"]["label"]) == {3, 4}
    assert set(df[df["label"] == 3]["category"]) == {"cabinet_final"}
    convert_dataset("sop", root, split="oml")
    pd.testing.assert_frame_equal(df, _read(root, "df.csv"))  # OML's split is the standard one
    _valid(df, root)


def test_sop_bad_header_and_bad_label(tmp_path: Path) -> None:
    root = make_sop(tmp_path)
    text = (root / "Ebay_test.txt").read_text()
    (root / "Ebay_test.txt").write_text(text.replace("image_id class_id", "image class", 1))
    with pytest.raises(AnnotationError, match=r"Ebay_test.txt, line 1: expected the header"):
        convert_dataset("sop", root)
    lines = text.splitlines()
    lines[2] = lines[2].replace(" 3 2 ", " three 2 ")
    (root / "Ebay_test.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"Ebay_test.txt, line 3: field 'label' = 'three'"):
        convert_dataset("sop", root)


# ------------------------------------------------------------------------------------------------- InShop
def make_inshop(root: Path, folder: str = "img_highres") -> Path:
    rows = []  # (image_name, item, status)
    for item, cloth, statuses in [
        (1, "MEN/Denim", ["train", "train"]),
        (2, "WOMEN/Dresses", ["train"]),  # a single training image
        (3, "WOMEN/Dresses", ["query", "gallery", "gallery"]),
        (4, "MEN/Shirts_Polos", ["query", "gallery"]),
    ]:
        for k, status in enumerate(statuses):
            rows.append((f"img/{cloth}/id_{item:08d}/{k:02d}_1_front.jpg", item, status))
    partition = [str(len(rows)), "image_name item_id evaluation_status"]
    boxes = [str(len(rows)), "image_name  clothes_type  pose_type  x_1  y_1  x_2  y_2"]
    for n, (name, item, status) in enumerate(rows):
        _touch(root, folder + name[3:])
        partition.append(f"{name}    id_{item:08d} {status}")
        boxes.append(f"{name}  1  1  0{40 + n}  049  208  235")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    (root / "list_bbox_inshop.txt").write_text("\n".join(boxes) + "\n")
    return root


def test_inshop_query_gallery_boxes_categories(tmp_path: Path) -> None:
    root = make_inshop(tmp_path)
    convert_dataset("inshop", root)
    df = _read(root)
    assert list(df.columns) == ["label", "path", "split", "is_query", "is_gallery", "category", "x_1", "y_1", "x_2", "y_2"]
    assert len(df) == 8 and set(df[df["split"] == "train"]["label"]) == {1, 2}
    val = df[df["split"] == "validation"]
    assert val["is_query"].tolist() == [True, False, False, True, False]
    assert val["is_gallery"].tolist() == [False, True, True, False, True]
    assert df.iloc[0]["path"] == "img_highres/MEN/Denim/id_00000001/00_1_front.jpg"
    assert df.iloc[0]["category"] == "Denim" and (df.iloc[0]["x_1"], df.iloc[0]["y_2"]) == (40, 235)
    _valid(df, root)


def test_inshop_oml_split_drops_single_image_train_items(tmp_path: Path) -> None:
    root = make_inshop(tmp_path)
    convert_dataset("inshop", root, split="oml")
    df = _read(root)
    assert 2 not in set(df["label"]) and len(df) == 7


def test_inshop_low_resolution_folder(tmp_path: Path) -> None:
    root = make_inshop(tmp_path, folder="img")
    convert_dataset("inshop", root)
    assert _read(root).iloc[0]["path"] == "img/MEN/Denim/id_00000001/00_1_front.jpg"


def test_inshop_errors_name_file_and_line(tmp_path: Path) -> None:
    root = make_inshop(tmp_path)
    text = (root / "list_eval_partition.txt").read_text()
    (root / "list_eval_partition.txt").write_text(text.replace("id_00000003 gallery", "id_00000003 galery", 1))
    with pytest.raises(AnnotationError, match=r"list_eval_partition.txt, line 7: evaluation_status must be one of"):
        convert_dataset("inshop", root)
    (root / "list_eval_partition.txt").write_text("9\n" + text.split("\n", 1)[1])
    with pytest.raises(
        AnnotationError, match=r"list_eval_partition.txt, line 1: the first line says 9 images but the file lists 8"
    ):
        convert_dataset("inshop", root)
    (root / "list_eval_partition.txt").write_text(text.replace(" id_00000004 ", " item4 ", 1))
    with pytest.raises(AnnotationError, match=r"line 9: field 'label' = 'item4'"):
        convert_dataset("inshop", root)


# ------------------------------------------------------------------------------------------------- Cars


def _annotations(records: list[tuple[int, int, int, int, int, str]]) -> np.ndarray:
    dtype = [(name, "O") for name in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    array = np.empty((1, len(records)), dtype=dtype)
    for i, record in enumerate(records):
        array[0, i] = tuple(np.array([[v]]) if not isinstance(v, str) else np.array([v]) for v in record)
    return array


def make_cars(root: Path, n_classes: int = 4) -> Path:
    (root / "devkit").mkdir(parents=True)
    names = np.empty((1, n_classes), dtype="O")
    for c in range(n_classes):
        names[0, c] = np.array([f"Make{c} Model {2000 + c}"])
    scipy_io.savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    train, test = [], []
    for c in range(1, n_classes + 1):
        for k in range(2):
            train.append((5 + k, 6, 100 + c, 90, c, f"{len(train) + 1:05d}.jpg"))
            test.append((7, 8, 110 + c, 95 + k, c, f"{len(test) + 1:05d}.jpg"))
    for name, folder, records in [
        ("devkit/cars_train_annos.mat", "cars_train", train),
        ("cars_test_annos_withlabels.mat", "cars_test", test),
    ]:
        scipy_io.savemat(root / name, {"annotations": _annotations(records)})
        for record in records:
            _touch(root, f"{folder}/{record[5]}")
    return root


def test_cars_standard_split_by_model_from_both_folders(tmp_path: Path) -> None:
    root = make_cars(tmp_path)
    report = convert_dataset("cars", root)
    df = _read(root)
    assert report.n_images == 16 and (report.n_train_labels, report.n_val_labels) == (2, 2)
    train = df[df["split"] == "train"]
    assert set(train["label"]) == {1, 2} and set(p.split("/")[0] for p in train["path"]) == {"cars_train", "cars_test"}
    row = df[df["path"] == "cars_train/00001.jpg"].iloc[0]
    assert (row["x_1"], row["y_1"], row["x_2"], row["y_2"], row["label"]) == (5, 6, 101, 90, 1)
    _valid(df, root)


def test_cars_oml_split_by_folder(tmp_path: Path) -> None:
    root = make_cars(tmp_path)
    convert_dataset("cars", root, split="oml")
    df = _read(root)
    assert set(df[df["split"] == "train"]["path"].str.split("/").str[0]) == {"cars_train"}
    assert set(df[df["split"] == "train"]["label"]) == set(df[df["split"] == "validation"]["label"])


def test_cars_malformed_annotations(tmp_path: Path) -> None:
    root = make_cars(tmp_path)
    scipy_io.savemat(root / "cars_test_annos_withlabels.mat", {"annotations": _annotations([(1, 2, 3, 4, 9, "00001.jpg")])})
    with pytest.raises(
        AnnotationError, match=r"cars_test_annos_withlabels.mat: annotation 1 \(00001.jpg\) has class 9, not in 1..4"
    ):
        convert_dataset("cars", root)
    (root / "cars_test_annos_withlabels.mat").write_text("not a MATLAB file")
    with pytest.raises(AnnotationError, match=r"cars_test_annos_withlabels.mat: is not a readable MATLAB file"):
        convert_dataset("cars", root)


def test_unknown_dataset_and_split(tmp_path: Path) -> None:
    with pytest.raises(OMLError, match="no converter for dataset 'mnist'; available: cars, cub, inshop, sop"):
        convert_dataset("mnist", tmp_path)
    with pytest.raises(OMLError, match="unknown split 'random'"):
        convert_dataset("cub", tmp_path, split="random")
    with pytest.raises(OMLError, match="missing images.txt"):
        convert_dataset("CUB_200_2011", tmp_path)
