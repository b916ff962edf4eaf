"""The ``audio`` modality: ``oml train`` / ``validate`` / ``predict`` / ``index`` / ``search`` on a CSV of audio
files. In a config: ``data: {dataframe: clips.csv, modality: {type: audio, max_num_seconds: 3.0}}``; on the command
line: ``oml index clips.csv --modality audio --model ecapa_tdnn ...``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import pandas as pd

from oml_audio.datasets import (
    DEFAULT_SAMPLE_RATE,
    MAX_AUDIO_LEN,
    START_TIME_COLUMN,
    AudioBaseDataset,
    AudioLabeledDataset,
    AudioQueryGalleryDataset,
    AudioQueryGalleryLabeledDataset,
)


@attrs.frozen(kw_only=True)
class AudioModalityConfig:
    """``sample_rate``: what the model expects (16000 for ECAPA-TDNN); files at other rates are resampled unless
    ``resample`` is false; ``max_num_seconds``: clips are cut or zero-padded to it; ``convert_to_mono``: average the
    channels."""

    sample_rate: int = DEFAULT_SAMPLE_RATE
    """The rate the model expects, in Hz (16000 for ECAPA-TDNN)."""
    max_num_seconds: float = MAX_AUDIO_LEN
    """Every clip is cut or zero-padded (at the end) to this length, from its row's ``start_time``."""
    convert_to_mono: bool = True
    """Average the channels."""
    resample: bool = True
    """Resample files at other rates (soxr); ``false``: such a file is an error naming its row."""


class AudioModality:
    """Builds the audio datasets for the pipelines and the store commands (``protocols.Modality``)."""

    content_columns: tuple[str, ...] = ("path", START_TIME_COLUMN)

    def __init__(self, *, sample_rate: int, max_num_seconds: float, convert_to_mono: bool, resample: bool) -> None:
        self.options: dict[str, Any] = {
            "sample_rate": sample_rate,
            "max_num_seconds": max_num_seconds,
            "convert_to_mono": convert_to_mono,
            "resample": resample,
        }

    def labeled_dataset(self, df: pd.DataFrame, dataset_root: Any = None) -> AudioLabeledDataset:
        return AudioLabeledDataset(df, dataset_root=dataset_root, **self.options)

    def query_gallery_dataset(self, df: pd.DataFrame, dataset_root: Any = None) -> Any:
        if "label" in df.columns:
            return AudioQueryGalleryLabeledDataset(df, dataset_root=dataset_root, **self.options)
        return AudioQueryGalleryDataset(df, dataset_root=dataset_root, **self.options)

    def base_dataset(self, df: pd.DataFrame, dataset_root: Any = None) -> AudioBaseDataset:
        starts = df[START_TIME_COLUMN].tolist() if START_TIME_COLUMN in df.columns else None
        return AudioBaseDataset(df["path"], dataset_root=dataset_root, start_times=starts, **self.options)

    def query_dataset(self, queries: Sequence[str]) -> AudioBaseDataset:
        return AudioBaseDataset(list(queries), **self.options)


__all__ = ["AudioModality", "AudioModalityConfig"]
