"""OML's data layer: the dataframe format and its validator, the datasets, image reading, transforms and a
locally generated mock dataset.

Example:
    >>> import tempfile
    >>> from oml_core.data import DatasetWithLabels, download_mock_dataset
    >>> from oml_core.data.transforms import get_normalisation_resize_torch
    >>> root = tempfile.mkdtemp()
    >>> df_train, df_val = download_mock_dataset(root, n_labels=3, n_instances=2, im_size=32)
    >>> dataset = DatasetWithLabels(df_train, dataset_root=root, transform=get_normalisation_resize_torch(32))
    >>> dataset[0]["input_tensors"].shape
    torch.Size([3, 32, 32])
"""

from oml_core.data.const import (
    BBOX_COLUMN_ALIASES,
    BBOXES_COLUMNS,
    BBOXES_KEYS,
    CATEGORIES_COLUMN,
    CATEGORIES_KEY,
    EMBEDDINGS_KEY,
    INDEX_KEY,
    INPUT_TENSORS_KEY,
    IS_GALLERY_COLUMN,
    IS_GALLERY_KEY,
    IS_QUERY_COLUMN,
    IS_QUERY_KEY,
    LABELS_COLUMN,
    LABELS_KEY,
    MEAN,
    PATHS_COLUMN,
    PATHS_KEY,
    REQUIRED_COLUMNS,
    SEQUENCE_COLUMN,
    SEQUENCE_KEY,
    SPLIT_COLUMN,
    SPLITS,
    STD,
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
    X1_COLUMN,
    X1_KEY,
    X2_COLUMN,
    X2_KEY,
    Y1_COLUMN,
    Y1_KEY,
    Y2_COLUMN,
    Y2_KEY,
)
from oml_core.data.dataframe import (
    DataFrameError,
    Problem,
    ValidationReport,
    assign_split,
    check_paths_inside_root,
    check_retrieval_dataframe_format,
    read_dataframe,
    split_dataframe,
    validate_dataframe,
)
from oml_core.data.datasets import DatasetQueryGallery, DatasetWithLabels
from oml_core.data.image_datasets import (
    ImageBaseDataset,
    ImageLabeledDataset,
    ImageQueryGalleryDataset,
    ImageQueryGalleryLabeledDataset,
    PairDataset,
)
from oml_core.data.images import ImageReadError, read_image
from oml_core.data.mock import MOCK_DATASET_PATH, download_mock_dataset, generate_mock_dataset, get_mock_images_dataset
from oml_core.data.transforms import build_transforms, get_augs_torch, get_normalisation_resize_torch, get_normalisation_torch

__all__ = [
    "BBOXES_COLUMNS",
    "BBOXES_KEYS",
    "BBOX_COLUMN_ALIASES",
    "CATEGORIES_COLUMN",
    "CATEGORIES_KEY",
    "DataFrameError",
    "DatasetQueryGallery",
    "DatasetWithLabels",
    "EMBEDDINGS_KEY",
    "ImageBaseDataset",
    "ImageLabeledDataset",
    "ImageQueryGalleryDataset",
    "ImageQueryGalleryLabeledDataset",
    "INDEX_KEY",
    "INPUT_TENSORS_KEY",
    "IS_GALLERY_COLUMN",
    "IS_GALLERY_KEY",
    "IS_QUERY_COLUMN",
    "IS_QUERY_KEY",
    "ImageReadError",
    "LABELS_COLUMN",
    "LABELS_KEY",
    "MEAN",
    "MOCK_DATASET_PATH",
    "PATHS_COLUMN",
    "PATHS_KEY",
    "PairDataset",
    "Problem",
    "REQUIRED_COLUMNS",
    "SEQUENCE_COLUMN",
    "SEQUENCE_KEY",
    "SPLITS",
    "SPLIT_COLUMN",
    "STD",
    "TRAIN_SPLIT",
    "VALIDATION_SPLIT",
    "ValidationReport",
    "X1_COLUMN",
    "X1_KEY",
    "X2_COLUMN",
    "X2_KEY",
    "Y1_COLUMN",
    "Y1_KEY",
    "Y2_COLUMN",
    "Y2_KEY",
    "assign_split",
    "check_paths_inside_root",
    "build_transforms",
    "check_retrieval_dataframe_format",
    "download_mock_dataset",
    "generate_mock_dataset",
    "get_mock_images_dataset",
    "get_augs_torch",
    "get_normalisation_resize_torch",
    "get_normalisation_torch",
    "read_dataframe",
    "read_image",
    "split_dataframe",
    "validate_dataframe",
]
