"""Datasets of audio clips over OML's dataframe, with OML 4.0's names and call shapes: ``AudioBaseDataset(paths)``,
``AudioLabeledDataset(df)``, ``AudioQueryGalleryDataset(df)``, ``AudioQueryGalleryLabeledDataset(df)``.

Each item's ``input_tensors`` is a float waveform ``(channels, samples)`` at ``sample_rate``: down-mixed to one
channel (``convert_to_mono``), resampled (soxr), starting at the row's ``start_time`` (seconds, optional column)
and cut or zero-padded (at the end) to ``max_num_seconds``. Only the needed part of a file is read.

Bad input names the row: a missing or unsupported path when the dataset is created; an unreadable, empty or
implausibly-rated file, or a ``start_time`` past the end, when the item is read; with ``resample=False`` a file
at another rate than ``sample_rate`` is an error instead of being resampled.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from oml_audio.io import AUDIO_EXTENSIONS, AudioReadError, read_audio, resample
from oml_audio.visualize import default_spec_repr_func, visualize_audio, visualize_audio_with_player
from oml_core.data.const import INDEX_KEY, INPUT_TENSORS_KEY, LABELS_KEY, PATHS_COLUMN
from oml_core.data.frames import FrameDataError, FrameDataset, FrameMode, describe_rows

START_TIME_COLUMN = "start_time"
DEFAULT_SAMPLE_RATE = 16_000
MAX_AUDIO_LEN = 3.0
DEFAULT_CONVERT_TO_MONO = True


class _AudioFrameDataset(FrameDataset):
    """The audio logic of every audio dataset: checking paths and start times, reading and shaping clips."""

    def __init__(
        self,
        df: pd.DataFrame,
        *,
        mode: FrameMode,
        dataset_root: str | os.PathLike[str] | None = None,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        labels_key: str = LABELS_KEY,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        max_num_seconds: float | None = MAX_AUDIO_LEN,
        convert_to_mono: bool = DEFAULT_CONVERT_TO_MONO,
        spec_repr_func: Callable[[Tensor], Tensor] | None = None,
        resample: bool = True,
        source: str | None = None,
    ) -> None:
        super().__init__(
            df,
            mode=mode,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            labels_key=labels_key,
            index_key=index_key,
            source=source,
        )
        name = type(self).__name__
        if not isinstance(sample_rate, int) or sample_rate < 1000:
            raise FrameDataError(f"{name}: sample_rate must be an integer number of Hz (at least 1000), got {sample_rate!r}")
        if max_num_seconds is not None and not max_num_seconds > 0:
            raise FrameDataError(f"{name}: max_num_seconds must be positive or None, got {max_num_seconds!r}")
        if not isinstance(convert_to_mono, bool):
            raise FrameDataError(f"{name}: convert_to_mono must be True or False, got {convert_to_mono!r}")
        if max_num_seconds is None:
            warnings.warn(
                f"{name}: max_num_seconds is None, so clips keep their lengths; batches of several clips then need a "
                "collate_fn that pads them",
                UserWarning,
                stacklevel=3,
            )
        self.dataset_root = Path(dataset_root) if dataset_root is not None else None
        self._sample_rate = sample_rate
        self._num_frames = None if max_num_seconds is None else int(max_num_seconds * sample_rate)
        self._max_num_seconds = max_num_seconds
        self._convert_to_mono = convert_to_mono
        self._resample = resample
        self._spectral_function = spec_repr_func
        self._paths = self._check_paths()
        self._start_times = self._check_start_times()

    def _check_paths(self) -> list[str]:
        if PATHS_COLUMN not in self.df.columns:
            raise FrameDataError(
                f"{self.source} cannot be used by {type(self).__name__}: it has no {PATHS_COLUMN!r} column "
                f"(columns: {', '.join(map(str, self.df.columns))})"
            )
        paths, empty, suffix, missing = [], [], [], []
        for position, value in enumerate(self.df[PATHS_COLUMN].tolist()):
            row = self.row_names[position]
            if not isinstance(value, str | os.PathLike) or not os.fspath(value).strip():
                empty.append(row)
                paths.append("")
                continue
            path = Path(value) if self.dataset_root is None or Path(value).is_absolute() else self.dataset_root / value
            paths.append(str(path))
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                suffix.append(row)
            elif not path.is_file():
                missing.append(row)
        problems = []
        if empty:
            problems.append(f"the {PATHS_COLUMN!r} is empty in {describe_rows(empty)}")
        if suffix:
            problems.append(f"files without an audio extension ({', '.join(AUDIO_EXTENSIONS)}) in {describe_rows(suffix)}")
        if missing:
            root = f" under {self.dataset_root}" if self.dataset_root is not None else ""
            first = paths[self.row_names.index(missing[0])]
            problems.append(f"files not found{root} in {describe_rows(missing)} (e.g. {first})")
        if problems:
            raise FrameDataError(f"{self.source} cannot be used by {type(self).__name__}: " + "; ".join(problems))
        self.df[PATHS_COLUMN] = paths
        return paths

    def _check_start_times(self) -> list[float]:
        if START_TIME_COLUMN not in self.df.columns:
            return [0.0] * len(self.df)
        raw = self.df[START_TIME_COLUMN]
        values = pd.to_numeric(raw, errors="coerce")
        bad = [self.row_names[i] for i in np.flatnonzero((values.isna() & raw.notna()).to_numpy() | (values < 0).to_numpy())]
        if bad:
            raise FrameDataError(
                f"{self.source} cannot be used by {type(self).__name__}: '{START_TIME_COLUMN}' must be a non-negative number "
                f"of seconds (or empty for 0) in {describe_rows(bad)}"
            )
        self.df[START_TIME_COLUMN] = values.fillna(0.0).astype(float)
        return self.df[START_TIME_COLUMN].tolist()

    # -------------------------------------------------------------------------------------------- items
    def get_audio(self, item: int) -> Tensor:
        """The waveform of item ``item``: ``(channels, samples)`` float32 at the dataset's sample rate."""
        path, row = self._paths[item], self.row_name(item)
        audio, rate = read_audio(path, start=self._start_times[item], duration=self._max_num_seconds, row=row)
        if rate != self._sample_rate:
            if not self._resample:
                raise AudioReadError(
                    f"the audio of row {row} ({path}) is at {rate} Hz but the dataset expects {self._sample_rate} Hz; "
                    f"resample the file, or let the dataset do it (resample=True)"
                )
            audio = resample(audio, rate, self._sample_rate)
        if self._convert_to_mono and audio.shape[0] > 1:
            audio = audio.mean(axis=0, keepdims=True)
        tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        if self._num_frames is not None:
            tensor = tensor[:, : self._num_frames]
            if tensor.shape[1] < self._num_frames:
                tensor = torch.nn.functional.pad(tensor, (0, self._num_frames - tensor.shape[1]))
        return tensor

    def load_input(self, idx: int) -> Tensor:
        return self.get_audio(idx)

    def get_paths(self) -> list[str]:
        """The audio files, in item order."""
        return list(self._paths)

    def _spectrum(self, audio: Tensor) -> Tensor:
        if self._spectral_function is not None:
            return self._spectral_function(audio)
        return default_spec_repr_func(audio, self._sample_rate)

    def visualize(self, item: int, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """Item ``item``'s spectrogram as a 256x256 picture framed in ``color`` (for ``RetrievalResults.visualize``)."""
        return visualize_audio(self._spectrum(self.get_audio(item)), color=color)

    def visualize_as_html(self, item: int, title: str, color: tuple[int, int, int] = (0, 0, 0)) -> str:
        """Item ``item``'s spectrogram and a player, as an HTML block."""
        audio = self.get_audio(item)
        return visualize_audio_with_player(audio, self._spectrum(audio), self._sample_rate, title=title, color=color)


class AudioBaseDataset(_AudioFrameDataset):
    """Audio files without annotations (OML 4.0: ``AudioBaseDataset(paths, dataset_root=None, ...,
    start_times=None)``).

    Example:
        >>> dataset = AudioBaseDataset(["a.wav", "b.flac"], dataset_root="clips", max_num_seconds=1.0)  # doctest: +SKIP
        >>> dataset[0]["input_tensors"].shape   # doctest: +SKIP
        torch.Size([1, 16000])
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        dataset_root: str | os.PathLike[str] | None = None,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        max_num_seconds: float | None = MAX_AUDIO_LEN,
        convert_to_mono: bool = DEFAULT_CONVERT_TO_MONO,
        start_times: Sequence[float] | None = None,
        spec_repr_func: Callable[[Tensor], Tensor] | None = None,
        *,
        resample: bool = True,
    ) -> None:
        index = list(paths.index) if isinstance(paths, pd.Series) else list(range(len(paths)))
        columns: dict[str, Any] = {PATHS_COLUMN: [os.fspath(p) for p in paths]}
        if start_times is not None:
            if len(start_times) != len(columns[PATHS_COLUMN]):
                raise FrameDataError(
                    f"AudioBaseDataset: {len(start_times)} start_times for {len(columns[PATHS_COLUMN])} paths; give one per path"
                )
            columns[START_TIME_COLUMN] = list(start_times)
        super().__init__(
            pd.DataFrame(columns, index=index),
            mode="base",
            dataset_root=dataset_root,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            index_key=index_key,
            sample_rate=sample_rate,
            max_num_seconds=max_num_seconds,
            convert_to_mono=convert_to_mono,
            spec_repr_func=spec_repr_func,
            resample=resample,
            source="the paths given to AudioBaseDataset",
        )


class AudioLabeledDataset(_AudioFrameDataset):
    """Audio clips with labels, for training: a dataframe with ``path`` and ``label`` (``start_time`` optional)."""

    def __init__(
        self,
        df: pd.DataFrame,
        dataset_root: str | os.PathLike[str] | None = None,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        labels_key: str = LABELS_KEY,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        max_num_seconds: float | None = MAX_AUDIO_LEN,
        convert_to_mono: bool = DEFAULT_CONVERT_TO_MONO,
        spec_repr_func: Callable[[Tensor], Tensor] | None = None,
        *,
        resample: bool = True,
    ) -> None:
        super().__init__(
            df,
            mode="labeled",
            dataset_root=dataset_root,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            index_key=index_key,
            labels_key=labels_key,
            sample_rate=sample_rate,
            max_num_seconds=max_num_seconds,
            convert_to_mono=convert_to_mono,
            spec_repr_func=spec_repr_func,
            resample=resample,
        )


class AudioQueryGalleryDataset(_AudioFrameDataset):
    """Audio clips split into queries and gallery without labels (``path``, ``is_query``, ``is_gallery``)."""

    def __init__(
        self,
        df: pd.DataFrame,
        dataset_root: str | os.PathLike[str] | None = None,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        max_num_seconds: float | None = MAX_AUDIO_LEN,
        convert_to_mono: bool = DEFAULT_CONVERT_TO_MONO,
        spec_repr_func: Callable[[Tensor], Tensor] | None = None,
        *,
        resample: bool = True,
    ) -> None:
        super().__init__(
            df,
            mode="query_gallery",
            dataset_root=dataset_root,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            index_key=index_key,
            sample_rate=sample_rate,
            max_num_seconds=max_num_seconds,
            convert_to_mono=convert_to_mono,
            spec_repr_func=spec_repr_func,
            resample=resample,
        )


class AudioQueryGalleryLabeledDataset(_AudioFrameDataset):
    """Annotated audio clips split into queries and gallery (``path``, ``label``, ``is_query``, ``is_gallery``)."""

    def __init__(
        self,
        df: pd.DataFrame,
        dataset_root: str | os.PathLike[str] | None = None,
        extra_data: Mapping[str, Any] | None = None,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        index_key: str = INDEX_KEY,
        labels_key: str = LABELS_KEY,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        max_num_seconds: float | None = MAX_AUDIO_LEN,
        convert_to_mono: bool = DEFAULT_CONVERT_TO_MONO,
        spec_repr_func: Callable[[Tensor], Tensor] | None = None,
        *,
        resample: bool = True,
    ) -> None:
        super().__init__(
            df,
            mode="query_gallery",
            dataset_root=dataset_root,
            extra_data=extra_data,
            input_tensors_key=input_tensors_key,
            index_key=index_key,
            labels_key=labels_key,
            sample_rate=sample_rate,
            max_num_seconds=max_num_seconds,
            convert_to_mono=convert_to_mono,
            spec_repr_func=spec_repr_func,
            resample=resample,
        )
        self.get_labels()


__all__ = [
    "DEFAULT_CONVERT_TO_MONO",
    "DEFAULT_SAMPLE_RATE",
    "MAX_AUDIO_LEN",
    "START_TIME_COLUMN",
    "AudioBaseDataset",
    "AudioLabeledDataset",
    "AudioQueryGalleryDataset",
    "AudioQueryGalleryLabeledDataset",
]
