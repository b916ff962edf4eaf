"""Texts for OML: ``HFWrapper`` (a Hugging Face ``transformers`` encoder as an extractor), the text datasets with
OML 4.0's names, ``get_mock_texts_dataset`` and ``visualize_text``.

Example:
    >>> df_train, df_val = get_mock_texts_dataset()
    >>> len(df_train), len(df_val)
    (18, 14)
"""

from oml_text.datasets import (
    TEXTS_COLUMN,
    TextBaseDataset,
    TextLabeledDataset,
    TextQueryGalleryDataset,
    TextQueryGalleryLabeledDataset,
)
from oml_text.extractor import HFTextConfig, HFWrapper
from oml_text.mock import get_mock_texts_dataset
from oml_text.modality import TextModality, TextModalityConfig
from oml_text.visualize import visualize_text

__all__ = [
    "TEXTS_COLUMN",
    "HFTextConfig",
    "HFWrapper",
    "TextBaseDataset",
    "TextLabeledDataset",
    "TextModality",
    "TextModalityConfig",
    "TextQueryGalleryDataset",
    "TextQueryGalleryLabeledDataset",
    "get_mock_texts_dataset",
    "visualize_text",
]
