"""Stanford Cars (Cars196): 16,185 images of 196 car models, with a bounding box per image.

Layout (``car_devkit.tgz``, ``cars_train.tgz``, ``cars_test.tgz`` and ``cars_test_annos_withlabels.mat`` in one folder)::

    stanford_cars/
        devkit/cars_meta.mat               class_names (196)
        devkit/cars_train_annos.mat        annotations: bbox_x1 bbox_y1 bbox_x2 bbox_y2 class fname
        cars_test_annos_withlabels.mat     the same for the test images
        cars_train/00001.jpg ...   cars_test/00001.jpg ...

Splits: ``standard`` = the metric-learning split by identity (models 1-98 train: 8,054 images; 99-196
validation: 8,131 images, from both folders); ``oml`` = OML 4.0's, the classification split of the files
(``cars_train`` train, ``cars_test`` validation: the same 196 labels in both). Reading ``.mat`` files needs SciPy
(``pip install 'oml-datasets[cars]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oml_core.errors import OMLError
from oml_datasets.converters._common import OML_SPLIT, AnnotationError, finish, require_files

META = "devkit/cars_meta.mat"
PARTS = (("devkit/cars_train_annos.mat", "cars_train"), ("cars_test_annos_withlabels.mat", "cars_test"))
FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def _loadmat(path: Path) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise OMLError("converting Stanford Cars reads MATLAB files with SciPy: pip install 'oml-datasets[cars]'") from exc
    try:
        return loadmat(str(path), squeeze_me=True)
    except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, TypeError, OSError... on a corrupt file
        raise AnnotationError(path, f"is not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc


def _annotations(path: Path, folder: str, n_classes: int) -> pd.DataFrame:
    mat = _loadmat(path)
    records = np.atleast_1d(mat.get("annotations", np.empty(0)))
    if records.dtype.names is None or not set(FIELDS) <= set(records.dtype.names):
        found = ", ".join(records.dtype.names or ()) or "nothing"
        raise AnnotationError(path, f"expected a struct array 'annotations' with fields {', '.join(FIELDS)}; found {found}")
    rows = []
    for number, record in enumerate(records, start=1):
        try:
            values = [int(np.asarray(record[f]).item()) for f in FIELDS[:5]]
            fname = str(np.asarray(record["fname"]).item())
        except (TypeError, ValueError) as exc:
            raise AnnotationError(path, f"annotation {number} has a field that is not a single value ({exc})") from exc
        if not 1 <= values[4] <= n_classes:
            raise AnnotationError(path, f"annotation {number} ({fname}) has class {values[4]}, not in 1..{n_classes}")
        rows.append([*values, f"{folder}/{fname}"])
    return pd.DataFrame(rows, columns=["x_1", "y_1", "x_2", "y_2", "label", "path"]).assign(folder=folder)


def convert_cars(root: Path, split: str) -> pd.DataFrame:
    """Cars' annotation files under ``root`` as an OML dataframe with boxes."""
    require_files(root, (META, *(name for name, _ in PARTS)))
    class_names = np.atleast_1d(_loadmat(root / META).get("class_names", np.empty(0)))
    if class_names.size == 0:
        raise AnnotationError(root / META, "has no 'class_names'")
    df = pd.concat([_annotations(root / name, folder, class_names.size) for name, folder in PARTS], ignore_index=True)
    if split == OML_SPLIT:
        train = df["folder"] == PARTS[0][1]
    else:
        train = df["label"] <= class_names.size // 2  # the first half of the models: 1-98 of 196
    df["split"] = train.map({True: "train", False: "validation"})
    df["is_query"] = df["is_gallery"] = True
    return finish(df, with_bboxes=True, category=False)
