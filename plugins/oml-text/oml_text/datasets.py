"""Datasets of texts over OML's dataframe (a ``text`` column instead of ``path``), with OML 4.0's names and call
shapes: ``TextBaseDataset(texts, tokenizer)``, ``TextLabeledDataset(df, tokenizer)``,
``TextQueryGalleryDataset(df, tokenizer)``, ``TextQueryGalleryLabeledDataset(df, tokenizer)``.

Items: ``input_tensors = {"input_ids": (max_length,), "attention_mask": (max_length,)}`` (padded to
``max_length``, so the default collate stacks them), ``idx``, and ``labels`` / ``is_query`` / ``is_gallery`` /
``categories`` / ``sequence`` / ``extra_data`` keys as the image datasets have them.

Bad input is refused with the row named: an empty or missing text when the dataset is created, a text longer than
``max_length`` tokens when it is read (``on_long_text="truncate"`` keeps OML 4.0's silent truncation instead).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from oml_core.data.const import INDEX_KEY, INPUT_TENSORS_KEY, LABELS_KEY
from oml_core.data.frames import FrameDataError, FrameDataset, FrameMode, describe_rows

TEXTS_COLUMN = "text"
LongText = Literal["error", "truncate"]


class _TextFrameDataset(FrameDataset):
    """The text logic of every text dataset: checking, tokenizing and drawing the ``text`` column."""

    def __init__(
        self,
        df: pd.DataFrame,
        tokenizer: Any,
        *,
        mode: FrameMode,
        max_length: int = 128,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        index_key: str = INDEX_KEY,
        on_long_text: LongText = "error",
        source: str | None = None,
    ) -> None:
        super().__init__(
            df,
            source=source,
            mode=mode,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            labels_key=labels_key,
            index_key=index_key,
        )
        if not callable(tokenizer):
            got = type(tokenizer).__name__
            raise FrameDataError(f"{type(self).__name__}: tokenizer must be a Hugging Face tokenizer, got {got}")
        if max_length < 2:
            raise FrameDataError(f"{type(self).__name__}: max_length must be at least 2 tokens, got {max_length}")
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < 1_000_000 and max_length > limit:  # transformers uses ~1e30 for "no limit"
            raise FrameDataError(
                f"{type(self).__name__}: max_length={max_length} is more than the tokenizer's model_max_length={limit} "
                f"(the model has no positions beyond it); use max_length <= {limit}"
            )
        if on_long_text not in ("error", "truncate"):
            raise FrameDataError(f"{type(self).__name__}: on_long_text must be 'error' or 'truncate', got {on_long_text!r}")
        if getattr(tokenizer, "pad_token", "") is None:
            raise FrameDataError(
                f"{type(self).__name__}: the tokenizer has no padding token, which fixed-length batches need; "
                f"set one, e.g. tokenizer.pad_token = tokenizer.eos_token"
            )
        self._texts = self._check_texts()
        self._tokenizer = tokenizer
        self._max_length = int(max_length)
        self.on_long_text = on_long_text

    def _check_texts(self) -> list[str]:
        if TEXTS_COLUMN not in self.df.columns:
            raise FrameDataError(
                f"{self.source} cannot be used by {type(self).__name__}: it has no {TEXTS_COLUMN!r} column "
                f"(columns: {', '.join(map(str, self.df.columns))})"
            )
        values = self.df[TEXTS_COLUMN].tolist()
        not_text = [self.row_names[i] for i, v in enumerate(values) if not isinstance(v, str)]
        empty = [self.row_names[i] for i, v in enumerate(values) if isinstance(v, str) and not v.strip()]
        problems = []
        if not_text:
            problems.append(f"the {TEXTS_COLUMN!r} is missing or not a string in {describe_rows(not_text)}")
        if empty:
            problems.append(f"the {TEXTS_COLUMN!r} is empty in {describe_rows(empty)}")
        if problems:
            raise FrameDataError(
                f"{self.source} cannot be used by {type(self).__name__}: {'; '.join(problems)}. Every row needs a non-empty text."
            )
        return [str(v) for v in values]

    # -------------------------------------------------------------------------------------------- items
    def encode(self, idx: int) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}`` of item ``idx``, each ``(max_length,)``."""
        text = self._texts[idx]
        if self.on_long_text == "error":
            n_tokens = len(self._tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
            if n_tokens > self._max_length:
                raise FrameDataError(
                    f"{self.source}: the text of row {self.row_name(idx)} has {n_tokens} tokens, more than max_length="
                    f"{self._max_length} ({text[:60]!r}{'...' if len(text) > 60 else ''}). Shorten it, raise max_length "
                    f"(up to the model's limit), or pass on_long_text='truncate' to cut it as OML 4.0 did."
                )
        encoded = self._tokenizer(
            text,
            truncation=True,
            padding="max_length",
            max_length=self._max_length,
            return_tensors="pt",
            add_special_tokens=True,
        )
        return {"input_ids": encoded["input_ids"].reshape(-1), "attention_mask": encoded["attention_mask"].reshape(-1)}

    def load_input(self, idx: int) -> dict[str, torch.Tensor]:
        return self.encode(idx)

    def get_texts(self) -> list[str]:
        """The texts, in item order."""
        return list(self._texts)

    def visualize(self, item: int, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """Item ``item``'s text drawn on a 256x256 picture framed in ``color`` (for ``RetrievalResults.visualize``)."""
        from oml_text.visualize import visualize_text

        return visualize_text(self._texts[item], color=color)


class TextBaseDataset(_TextFrameDataset):
    """Texts without annotations (OML 4.0: ``TextBaseDataset(texts, tokenizer, max_length=128, extra_data=None)``).

    Example:
        >>> TextBaseDataset(["a red chair", "a blue table"], tokenizer)[0]["input_tensors"]["input_ids"].shape  # doctest: +SKIP
        torch.Size([128])
    """

    def __init__(
        self,
        texts: Sequence[str] | pd.Series,
        tokenizer: Any,
        max_length: int = 128,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        *,
        on_long_text: LongText = "error",
    ) -> None:
        index: list[Hashable] = list(texts.index) if isinstance(texts, pd.Series) else list(range(len(texts)))
        df = pd.DataFrame({TEXTS_COLUMN: list(texts)}, index=index)
        super().__init__(
            df,
            tokenizer,
            mode="base",
            max_length=max_length,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            index_key=index_key,
            on_long_text=on_long_text,
            source="the texts given to TextBaseDataset",
        )


class TextLabeledDataset(_TextFrameDataset):
    """Texts with labels, for training: a dataframe with ``text`` and ``label`` (and optionally ``category``).

    Example:
        >>> df = pd.DataFrame({"text": ["a red chair", "a blue chair"], "label": [0, 0]})
        >>> TextLabeledDataset(df, tokenizer).get_labels().tolist()  # doctest: +SKIP
        [0, 0]
    """

    def __init__(
        self,
        df: pd.DataFrame,
        tokenizer: Any,
        max_length: int = 128,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        index_key: str = INDEX_KEY,
        *,
        on_long_text: LongText = "error",
    ) -> None:
        super().__init__(
            df,
            tokenizer,
            mode="labeled",
            max_length=max_length,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            labels_key=labels_key,
            index_key=index_key,
            on_long_text=on_long_text,
        )


class TextQueryGalleryLabeledDataset(_TextFrameDataset):
    """Annotated texts split into queries and gallery (``text``, ``label``, ``is_query``, ``is_gallery``); mark an
    item both query and gallery for 1-vs-rest validation."""

    def __init__(
        self,
        df: pd.DataFrame,
        tokenizer: Any,
        max_length: int = 128,
        extra_data: Mapping[str, Any] | None = None,
        labels_key: str = LABELS_KEY,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        *,
        on_long_text: LongText = "error",
    ) -> None:
        super().__init__(
            df,
            tokenizer,
            mode="query_gallery",
            max_length=max_length,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            labels_key=labels_key,
            index_key=index_key,
            on_long_text=on_long_text,
        )
        self.get_labels()  # labeled: refuse a dataframe without labels now, not at validation


class TextQueryGalleryDataset(_TextFrameDataset):
    """Texts split into queries and gallery without labels (``text``, ``is_query``, ``is_gallery``): retrieval only."""

    def __init__(
        self,
        df: pd.DataFrame,
        tokenizer: Any,
        max_length: int = 128,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        *,
        on_long_text: LongText = "error",
    ) -> None:
        super().__init__(
            df,
            tokenizer,
            mode="query_gallery",
            max_length=max_length,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            index_key=index_key,
            on_long_text=on_long_text,
        )


__all__ = [
    "TEXTS_COLUMN",
    "TextBaseDataset",
    "TextLabeledDataset",
    "TextQueryGalleryDataset",
    "TextQueryGalleryLabeledDataset",
]
