"""Stanford Online Products: 120,053 product photos of 22,634 products from eBay, in 12 categories.

Layout (``Stanford_Online_Products.zip`` unpacked)::

    Stanford_Online_Products/
        Ebay_train.txt   image_id class_id super_class_id path   (header line, then one image per line)
        Ebay_test.txt    the same for the test products
        bicycle_final/111085122871_0.JPG ...

Splits: ``standard`` and ``oml`` are the same, by identity: the products of ``Ebay_train.txt`` (11,318, 59,551
images) train, those of ``Ebay_test.txt`` (11,316, 60,502 images) validation. The category is the image's folder
(``bicycle_final``, ...), as in OML.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from oml_datasets.converters._common import Column, check_unique, finish, read_table, require_files

FILES = ("Ebay_train.txt", "Ebay_test.txt")
HEADER = ("image_id", "class_id", "super_class_id", "path")


def convert_sop(root: Path, split: str) -> pd.DataFrame:
    """SOP's two lists under ``root`` as an OML dataframe with categories (``split`` changes nothing)."""
    require_files(root, FILES)
    columns = [Column("image_id", int), Column("label", int), Column("super_class_id", int), Column("path")]
    parts = []
    for name, split_name in zip(FILES, ("train", "validation"), strict=True):
        table = read_table(root / name, columns, header=HEADER)
        check_unique(table, "path", root / name, first_line=2)
        table["split"] = split_name
        parts.append(table)
    df = pd.concat(parts, ignore_index=True)
    df["category"] = df["path"].map(lambda p: Path(p).parent.name)
    df["is_query"] = df["is_gallery"] = True
    return finish(df, with_bboxes=False, category=True)
