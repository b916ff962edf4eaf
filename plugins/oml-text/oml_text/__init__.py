"""Texts for OML: ``HFWrapper`` (a Hugging Face ``transformers`` encoder as an extractor), the text datasets with
OML 4.0's names, ``get_mock_texts_dataset`` and ``visualize_text``.

Example:
    >>> from oml_text import get_mock_texts_dataset
    >>> df_train, df_val = get_mock_texts_dataset()
    >>> len(df_train), len(df_val)
    (18, 14)
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command, even `oml --help`) imports no torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TEXTS_COLUMN": "oml_text.datasets",
        "TextBaseDataset": "oml_text.datasets",
        "TextLabeledDataset": "oml_text.datasets",
        "TextQueryGalleryDataset": "oml_text.datasets",
        "TextQueryGalleryLabeledDataset": "oml_text.datasets",
        "HFTextConfig": "oml_text.extractor",
        "HFWrapper": "oml_text.extractor",
        "get_mock_texts_dataset": "oml_text.mock",
        "TextModality": "oml_text.modality",
        "TextModalityConfig": "oml_text.modality",
        "visualize_text": "oml_text.visualize",
    },
)

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
