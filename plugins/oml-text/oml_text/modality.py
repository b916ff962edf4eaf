"""The ``text`` modality: ``oml train`` / ``validate`` / ``predict`` / ``index`` / ``search`` on a CSV of texts.

In a config: ``data: {dataframe: texts.csv, modality: {type: text, tokenizer: DIR_OR_NAME, max_length: 64}}``;
on the command line: ``oml index texts.csv --modality text --set modality.tokenizer=DIR ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pandas as pd

from oml_core.errors import OMLError
from oml_text.datasets import (
    TEXTS_COLUMN,
    LongText,
    TextBaseDataset,
    TextLabeledDataset,
    TextQueryGalleryDataset,
    TextQueryGalleryLabeledDataset,
)


@attrs.frozen(kw_only=True)
class TextModalityConfig:
    """``tokenizer``: a Hugging Face tokenizer by hub name or local folder (``save_pretrained`` output);
    ``max_length``: tokens per text (padded to it); ``on_long_text``: ``error`` (name the row) or ``truncate``."""

    tokenizer: str
    """A hub name (read from the local Hugging Face cache when offline) or a folder written by ``save_pretrained``."""
    max_length: int = 128
    """Tokens per text, special tokens included; shorter texts are padded to it."""
    on_long_text: LongText = "error"
    """``error``: a longer text stops with its row named; ``truncate``: cut it (OML 4.0's behaviour)."""


class TextModality:
    """Builds the text datasets for the pipelines and the store commands (``protocols.Modality``)."""

    content_columns: tuple[str, ...] = (TEXTS_COLUMN,)

    def __init__(self, *, tokenizer: str, max_length: int = 128, on_long_text: LongText = "error") -> None:
        self.tokenizer = load_tokenizer(tokenizer)
        self.options: dict[str, Any] = {"max_length": max_length, "on_long_text": on_long_text}

    def labeled_dataset(self, df: pd.DataFrame, dataset_root: Any = None) -> TextLabeledDataset:
        return TextLabeledDataset(df, self.tokenizer, **self.options)

    def query_gallery_dataset(self, df: pd.DataFrame, dataset_root: Any = None) -> Any:
        if "label" in df.columns:
            return TextQueryGalleryLabeledDataset(df, self.tokenizer, **self.options)
        return TextQueryGalleryDataset(df, self.tokenizer, **self.options)

    def base_dataset(self, df: pd.DataFrame, dataset_root: Any = None) -> TextBaseDataset:
        if TEXTS_COLUMN not in df.columns:
            raise OMLError(f"the dataframe has no {TEXTS_COLUMN!r} column (columns: {', '.join(map(str, df.columns))})")
        return TextBaseDataset(df[TEXTS_COLUMN], self.tokenizer, **self.options)

    def query_dataset(self, queries: Sequence[str]) -> TextBaseDataset:
        return TextBaseDataset(list(queries), self.tokenizer, **self.options)


def load_tokenizer(name_or_path: str) -> Any:
    """``AutoTokenizer.from_pretrained`` with one clear error when it cannot be found (e.g. offline).

    Example:
        >>> load_tokenizer("/path/to/tokenizer_dir")   # doctest: +SKIP
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OMLError(
            f"text modality: cannot load the tokenizer {name_or_path!r} ({first}). Give a folder written by "
            f"tokenizer.save_pretrained, or a hub name that is in the local Hugging Face cache when offline."
        ) from None


__all__ = ["TextModality", "TextModalityConfig", "load_tokenizer"]
