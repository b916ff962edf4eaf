"""The audio datasets on generated audio: mono down-mix, resampling, fixed length, start_time, and errors naming
the row for unreadable, empty and wrongly-rated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
from audio_signals import dominant_frequency, tone
from oml_audio import (
    AudioBaseDataset,
    AudioLabeledDataset,
    AudioQueryGalleryDataset,
    AudioQueryGalleryLabeledDataset,
    AudioReadError,
    get_mock_audios_dataset,
)
from torch.utils.data import DataLoader

from oml_core.data.frames import FrameDataError


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    soundfile.write(tmp_path / "a440.wav", tone(440, 2.0, 16000), 16000)
    soundfile.write(tmp_path / "b1000_44k.flac", tone(1000, 1.0, 44100), 44100)
    left, right = tone(300, 1.0, 16000, 0.6), tone(300, 1.0, 16000, 0.2)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    two_tones = np.concatenate([tone(500, 1.0, 16000), tone(2000, 1.0, 16000)])
    soundfile.write(tmp_path / "two_tones.ogg", two_tones, 16000)
    soundfile.write(tmp_path / "noise.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32), 16000)
    return tmp_path


def test_mono_resampling_and_fixed_length(clips: Path) -> None:
    dataset = AudioBaseDataset(["a440.wav", "b1000_44k.flac", "stereo.wav"], dataset_root=clips, max_num_seconds=1.5)
    a, b, stereo = (dataset[i]["input_tensors"] for i in range(3))
    assert a.shape == b.shape == stereo.shape == (1, 24000) and a.dtype == torch.float32
    assert dominant_frequency(a[0].numpy(), 16000) == pytest.approx(440, abs=2)
    # 1 s at 44.1 kHz resampled to 16 kHz, then zero-padded at the end to 1.5 s
    assert dominant_frequency(b[0, :16000].numpy(), 16000) == pytest.approx(1000, abs=2)
    assert b[0, 16100:].abs().max() == 0 and b[0, 1000:15000].abs().max() > 0.45
    # the two channels (amplitudes 0.6 and 0.2) averaged
    assert stereo[0, :16000].abs().max() == pytest.approx(0.4, abs=0.01)
    channels = AudioBaseDataset(["stereo.wav"], dataset_root=clips, convert_to_mono=False, max_num_seconds=1.0)[0]
    assert channels["input_tensors"].shape == (2, 16000)
    assert channels["input_tensors"][0].abs().max() == pytest.approx(0.6, abs=0.01)


def test_start_time_column_and_sample_rates(clips: Path) -> None:
    df = pd.DataFrame({"path": ["two_tones.ogg", "two_tones.ogg"], "label": [0, 0], "start_time": [0.0, 1.0]})
    dataset = AudioLabeledDataset(df, dataset_root=clips, max_num_seconds=0.5)
    first, second = dataset[0]["input_tensors"][0].numpy(), dataset[1]["input_tensors"][0].numpy()
    assert dominant_frequency(first, 16000) == pytest.approx(500, abs=5)
    assert dominant_frequency(second, 16000) == pytest.approx(2000, abs=5)
    at_8k = AudioLabeledDataset(df, dataset_root=clips, sample_rate=8000, max_num_seconds=0.5)[1]["input_tensors"]
    assert at_8k.shape == (1, 4000) and dominant_frequency(at_8k[0].numpy(), 8000) == pytest.approx(2000, abs=5)
    with_nan = AudioLabeledDataset(df.assign(start_time=[None, 1.0]), dataset_root=clips, max_num_seconds=0.5)
    assert torch.equal(with_nan[0]["input_tensors"], dataset[0]["input_tensors"])


def test_query_gallery_datasets_and_batches(clips: Path) -> None:
    df = pd.DataFrame({
        "path": ["a440.wav", "noise.wav", "stereo.wav"], "label": [0, 1, 0],
        "is_query": [True, True, False], "is_gallery": [True, False, True], "category": ["x", "y", "x"],
    })  # fmt: skip
    labeled = AudioQueryGalleryLabeledDataset(df, dataset_root=clips, max_num_seconds=0.25)
    assert labeled.get_query_ids().tolist() == [0, 1] and labeled.get_gallery_ids().tolist() == [0, 2]
    batch = next(iter(DataLoader(labeled, batch_size=3)))
    assert batch["input_tensors"].shape == (3, 1, 4000) and batch["labels"].tolist() == [0, 1, 0]
    assert batch["is_gallery"].tolist() == [True, False, True] and batch["categories"] == ["x", "y", "x"]
    unlabeled = AudioQueryGalleryDataset(df.drop(columns=["label"]), dataset_root=clips, max_num_seconds=0.25)
    assert "labels" not in unlabeled[0] and unlabeled.get_paths()[0] == str(clips / "a440.wav")


def test_bad_files_are_errors_naming_the_row(clips: Path) -> None:
    (clips / "garbage.wav").write_bytes(b"this is not a RIFF file at all" * 10)
    soundfile.write(clips / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    soundfile.write(clips / "at_8k.wav", tone(440, 1.0, 8000), 8000)
    soundfile.write(clips / "odd_rate.wav", tone(10, 1.0, 200), 200)
    df = pd.DataFrame(
        {"path": ["a440.wav", "garbage.wav", "empty.wav", "at_8k.wav", "odd_rate.wav"], "label": [0, 1, 2, 3, 4]},
        index=[100, 101, 102, 103, 104],
    )
    dataset = AudioLabeledDataset(df, dataset_root=clips, resample=False)
    assert dataset[0]["input_tensors"].shape == (1, 48000)
    with pytest.raises(AudioReadError, match=r"cannot read the audio of row 101 \(.*garbage\.wav\)"):
        dataset[1]
    with pytest.raises(AudioReadError, match=r"row 102 \(.*empty\.wav\) is empty \(zero samples\)"):
        dataset[2]
    with pytest.raises(AudioReadError, match=r"row 103 \(.*at_8k\.wav\) is at 8000 Hz but the dataset expects 16000 Hz"):
        dataset[3]
    with pytest.raises(AudioReadError, match=r"row 104 .* sample rate of 200 Hz"):
        dataset[4]
    resampling = AudioLabeledDataset(df, dataset_root=clips)
    assert dominant_frequency(resampling[3]["input_tensors"][0, :16000].numpy(), 16000) == pytest.approx(440, abs=2)
    late = AudioLabeledDataset(df.iloc[:1].assign(start_time=[5.0]), dataset_root=clips)
    with pytest.raises(AudioReadError, match=r"start time 5 s of row 100 .* past the end of the audio \(2\.000 s long\)"):
        late[0]


def test_bad_dataframes_are_refused_when_the_dataset_is_created(clips: Path) -> None:
    df = pd.DataFrame({"path": ["a440.wav", "missing.wav", "notes.txt", None], "label": [0, 1, 2, 3]}, index=[7, 8, 9, 10])
    with pytest.raises(FrameDataError) as error:
        AudioLabeledDataset(df, dataset_root=clips)
    message = str(error.value)
    assert "'path' is empty in row 10" in message and "audio extension" in message and "in row 9" in message
    assert "files not found under" in message and "in row 8" in message
    bad_start = pd.DataFrame({"path": ["a440.wav", "a440.wav"], "label": [0, 0], "start_time": [-1.0, "soon"]})
    with pytest.raises(FrameDataError, match="'start_time' must be a non-negative number of seconds .* in rows 0, 1"):
        AudioLabeledDataset(bad_start, dataset_root=clips)
    with pytest.raises(FrameDataError, match="sample_rate must be"):
        AudioBaseDataset(["a440.wav"], dataset_root=clips, sample_rate=0)
    with pytest.raises(FrameDataError, match="max_num_seconds must be positive"):
        AudioBaseDataset(["a440.wav"], dataset_root=clips, max_num_seconds=0)
    with pytest.raises(FrameDataError, match="2 start_times for 1 paths"):
        AudioBaseDataset(["a440.wav"], dataset_root=clips, start_times=[0.0, 1.0])


def test_variable_length_when_max_num_seconds_is_none(clips: Path) -> None:
    with pytest.warns(UserWarning, match="collate_fn"):
        dataset = AudioBaseDataset(["a440.wav", "noise.wav"], dataset_root=clips, max_num_seconds=None)
    assert dataset[0]["input_tensors"].shape == (1, 32000) and dataset[1]["input_tensors"].shape == (1, 8000)


def test_mock_dataset_is_generated_once_and_read_like_oml(tmp_path: Path) -> None:
    df_train, df_val = get_mock_audios_dataset(tmp_path / "mock", global_paths=True)
    assert sorted(df_train["label"].unique()) == [0, 1, 2, 3] and sorted(df_val["label"].unique()) == [4, 5, 6, 7]
    assert df_val["is_query"].all() and df_val["is_gallery"].all() and Path(df_train["path"][0]).is_absolute()
    rates = {soundfile.info(p).samplerate for p in [*df_train["path"], *df_val["path"]]}
    assert rates == {16000, 22050}
    stamp = (tmp_path / "mock" / "df.csv").stat().st_mtime_ns
    again_train, _ = get_mock_audios_dataset(tmp_path / "mock")
    assert (tmp_path / "mock" / "df.csv").stat().st_mtime_ns == stamp and not Path(again_train["path"][0]).is_absolute()
    dataset = AudioLabeledDataset(df_train)
    item = dataset[3]
    assert item["input_tensors"].shape == (1, 48000) and item["labels"] == 0
    assert df_train["start_time"].max() == 0.25
