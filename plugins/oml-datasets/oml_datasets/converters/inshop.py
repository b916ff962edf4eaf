"""DeepFashion In-shop Clothes Retrieval: 52,712 images of 7,982 clothing items, with a bounding box per image.

Layout (the benchmark's folder, with ``img.zip`` or the high-resolution ``img_highres.zip`` unpacked)::

    DeepFashion_InShop/
        list_eval_partition.txt   line 1: number of images; line 2: image_name item_id evaluation_status
        list_bbox_inshop.txt      line 1: number of images; line 2: image_name clothes_type pose_type x_1 y_1 x_2 y_2
        img_highres/WOMEN/Dresses/id_00000002/02_1_front.jpg ...   (or img/...)

Splits: ``standard`` = the benchmark's: ``train`` items (3,997) train; ``query`` and ``gallery`` images of the other
3,985 items are validation queries and gallery items (by identity). ``oml`` = the same, and like OML 4.0 it drops
train items with a single image (samplers need two). The label is the item number (``id_00000002`` -> 2), the
category the clothes type folder (``Dresses``). Paths point into ``img_highres/`` as OML's do when that folder
exists, into ``img/`` otherwise.
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
    read_table,
    require_files,
)

FILES = ("list_eval_partition.txt", "list_bbox_inshop.txt")
PARTITION_HEADER = ("image_name", "item_id", "evaluation_status")
BBOX_HEADER = ("image_name", "clothes_type", "pose_type", "x_1", "y_1", "x_2", "y_2")
STATUSES = ("train", "query", "gallery")


def _item_number(text: str) -> int:
    if not text.startswith("id_") or not text[3:].isdigit():
        raise ValueError("expected id_ and digits, e.g. id_00000002")
    return int(text[3:])


def _read_counted(path: Path, columns: list[Column], header: tuple[str, ...]) -> pd.DataFrame:
    table = read_table(path, columns, skip_lines=1, header=header)
    first = path.read_text(encoding="utf-8").splitlines()[0].strip()
    if not first.isdigit():
        raise AnnotationError(path, f"the first line should be the number of images, found {first!r}", line=1)
    if int(first) != len(table):
        raise AnnotationError(path, f"the first line says {first} images but the file lists {len(table)}", line=1)
    check_unique(table, "image_name", path, first_line=3)
    return table


def convert_inshop(root: Path, split: str) -> pd.DataFrame:
    """InShop's partition and box lists under ``root`` as an OML dataframe with boxes and categories."""
    require_files(root, FILES)
    partition = _read_counted(
        root / FILES[0],
        [Column("image_name"), Column("label", _item_number), Column("evaluation_status")],
        PARTITION_HEADER,
    )
    bad = partition.index[~partition["evaluation_status"].isin(STATUSES)]
    if len(bad):
        row = int(bad[0])
        raise AnnotationError(
            root / FILES[0],
            f"evaluation_status must be one of {', '.join(STATUSES)}, got {partition['evaluation_status'][row]!r}",
            line=row + 3,
        )
    int_columns = [Column(name, int) for name in BBOX_HEADER[1:]]
    boxes = _read_counted(root / FILES[1], [Column("image_name"), *int_columns], BBOX_HEADER)
    missing = partition.index[~partition["image_name"].isin(set(boxes["image_name"]))]
    if len(missing):
        row = int(missing[0])
        raise AnnotationError(root / FILES[1], f"has no box for {partition['image_name'][row]} (line {row + 3} of {FILES[0]})")
    df = partition.merge(boxes, on="image_name", how="left")
    folder = "img_highres" if (root / "img_highres").is_dir() or not (root / "img").is_dir() else "img"
    df["path"] = df["image_name"].map(lambda name: folder + name[len("img") :] if name.startswith("img/") else name)
    df["category"] = df["path"].map(lambda p: Path(p).parent.parent.name)
    status = df["evaluation_status"]
    df["split"] = status.map(lambda s: "train" if s == "train" else "validation")
    df["is_query"] = status == "query"
    df["is_gallery"] = status == "gallery"
    if split == OML_SPLIT:
        train = df["split"] == "train"
        sizes = df.groupby("label")["label"].transform("size")
        df = df[~train | (sizes > 1)]
    return finish(df, with_bboxes=True, category=True)
