"""CUB-200-2011 (Caltech-UCSD Birds): 11,788 images of 200 species, with a bounding box per image.

Layout (the archive ``CUB_200_2011.tgz`` unpacked)::

    CUB_200_2011/
        images.txt               <image_id> <image_name>
        image_class_labels.txt   <image_id> <class_id>
        train_test_split.txt     <image_id> <is_training_image>
        bounding_boxes.txt       <image_id> <x> <y> <width> <height>
        images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg ...

Splits: ``standard`` = the metric-learning split by identity (classes 1-100 train, 101-200 validation: 5,864 and
5,924 images); ``oml`` = OML 4.0's, the file ``train_test_split.txt``, which splits the images of every class
(a classification split: the same 200 labels in train and validation).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oml_datasets.converters._common import (
    OML_SPLIT,
    AnnotationError,
    Column,
    check_unique,
    finish,
    integer,
    read_table,
    require_files,
)

FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")


def convert_cub(root: Path, split: str) -> pd.DataFrame:
    """CUB's annotation files under ``root`` as an OML dataframe with boxes (``x_1, y_1, x_2, y_2`` in pixels)."""
    require_files(root, FILES)
    images = read_table(root / "images.txt", [Column("image_id", int), Column("path")])
    labels = read_table(root / "image_class_labels.txt", [Column("image_id", int), Column("label", int)])
    is_train = read_table(root / "train_test_split.txt", [Column("image_id", int), Column("is_training_image", int)])
    boxes = read_table(
        root / "bounding_boxes.txt",
        [
            Column("image_id", int),
            Column("x", integer),
            Column("y", integer),
            Column("width", integer),
            Column("height", integer),
        ],
    )
    for name, table in zip(FILES, (images, labels, is_train, boxes), strict=True):
        check_unique(table, "image_id", root / name, first_line=1)
    bad = is_train.index[~is_train["is_training_image"].isin([0, 1])]
    if len(bad):
        row = int(bad[0])
        raise AnnotationError(
            root / "train_test_split.txt",
            f"is_training_image must be 0 or 1, got {is_train['is_training_image'][row]}",
            line=row + 1,
        )
    known = set(images["image_id"])
    for name, table in zip(FILES[1:], (labels, is_train, boxes), strict=True):
        unknown = table.index[~table["image_id"].isin(known)]
        if len(unknown):
            row = int(unknown[0])
            raise AnnotationError(root / name, f"image_id {table['image_id'][row]} is not in images.txt", line=row + 1)
        absent = known - set(table["image_id"])
        if absent:
            raise AnnotationError(root / name, f"has no line for image_id {min(absent)} (of images.txt)")
    df = images.merge(labels, on="image_id").merge(is_train, on="image_id").merge(boxes, on="image_id")
    df["path"] = "images/" + df["path"]
    df["x_1"], df["y_1"] = df["x"], df["y"]
    df["x_2"], df["y_2"] = df["x"] + df["width"], df["y"] + df["height"]
    if split == OML_SPLIT:
        train = df["is_training_image"] == 1
    else:
        train = df["label"] <= df["label"].max() // 2  # the first half of the classes: 1-100 of 200
    df["split"] = train.map({True: "train", False: "validation"})
    df["is_query"] = df["is_gallery"] = True
    return finish(df, with_bboxes=True, category=False)
