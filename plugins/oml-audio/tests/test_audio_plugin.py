"""The plugin through the host and the CLI (``oml train`` / ``validate`` / ``index`` / ``search`` on a CSV of audio
files), and spectrogram pictures of retrieval results."""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
import yaml
from audio_signals import tone
from oml_audio import (
    AudioBaseDataset,
    AudioQueryGalleryLabeledDataset,
    ECAPATDNNExtractor,
    default_spec_repr_func,
    get_mock_audios_dataset,
    visualize_audio,
)
from oml_audio.pretrained import WEIGHTS

from oml_core import Host
from oml_core.cli import main
from oml_core.data.frames import FrameDataError
from oml_core.inference import inference
from oml_core.pipelines import load_pipeline_config
from oml_core.pipelines.train import build_datasets
from oml_core.retrieval.results import RetrievalResults

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mock_audio")
    get_mock_audios_dataset(root)
    return root


def test_registered_through_the_entry_point() -> None:
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="oml")}
    assert points.get("oml_audio") == "oml_audio.plugin"
    host = Host(env={})
    info = next(p for p in host.plugins if p.name == "oml_audio")
    assert (info.status, info.distribution) == ("loaded", "oml-audio")
    assert info.components == {"extractors": ["ecapa_tdnn"], "modalities": ["audio"], "weights": [e.name for e in WEIGHTS]}
    entry = host.weights.get("ecapa_tdnn_taoruijie")
    assert (entry.extractor, entry.arch, entry.verified) == ("ecapa_tdnn", "ecapa_tdnn_taoruijie", True)
    extractor = host.registries.extractors.create("ecapa_tdnn", {"normalise_features": True})
    assert isinstance(extractor, ECAPATDNNExtractor) and extractor.normalise_features
    modality = host.registries.modalities.create("audio", {"max_num_seconds": 0.5})
    with pytest.raises(FrameDataError, match=r"the paths given to AudioBaseDataset cannot be used .* audio extension"):
        modality.query_dataset([__file__])


def test_spectrogram_picture_of_a_tone() -> None:
    audio = torch.from_numpy(tone(1000, 1.0, 16000))[None]
    spec = default_spec_repr_func(audio)
    assert spec.shape == (128, 32)
    loudest_bin = int(spec.mean(dim=1).argmax())
    low, high = 2595 * np.log10(1 + 1000 / 700) / (2595 * np.log10(1 + 8000 / 700)) * 129 + np.array([-3, 3])
    assert low <= loudest_bin <= high  # 1 kHz sits where the mel scale puts it
    picture = visualize_audio(spec, color=(255, 0, 0))
    assert picture.shape == (256, 256, 3) and (picture[2, 128] == (255, 0, 0)).all()
    brightness = picture[10:-10, 10:-10].astype(float).sum(axis=2).mean(axis=1)
    brightest_row = 10 + int(brightness.argmax())
    assert abs(brightest_row - (1 - (loudest_bin + 0.5) / 128) * 256) <= 6  # drawn low frequencies at the bottom
    assert brightness.max() > 3 * np.median(brightness)


def test_retrieval_results_drawn_as_spectrograms_and_html(mock_root: Path, tmp_path: Path) -> None:
    _, df_val = get_mock_audios_dataset(mock_root, global_paths=True)
    dataset = AudioQueryGalleryLabeledDataset(df_val, max_num_seconds=1.0)
    torch.manual_seed(0)
    embeddings = inference(ECAPATDNNExtractor(None), dataset, batch_size=8, progress=False)
    results = RetrievalResults.from_embeddings(embeddings, dataset, n_items=3)
    figure = results.visualize(query_ids=[0, 5], dataset=dataset, path=str(tmp_path / "audio.png"))
    shown = [ax.get_images()[0].get_array() for ax in figure.axes if ax.get_images()]
    assert len(shown) == 8 and (tmp_path / "audio.png").stat().st_size > 10_000
    assert any((picture[:, :, :3] == dataset.visualize(0, color=(0, 0, 255))).all() for picture in shown)
    block = dataset.visualize_as_html(1, title="query <1>", color=(0, 255, 0))
    assert "query &lt;1&gt;" in block and "data:image/png;base64," in block
    wav = base64.b64decode(block.split("data:audio/wav;base64,")[1].split("'")[0])
    decoded, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    assert rate == 16000 and np.allclose(decoded, dataset.get_audio(1)[0].numpy(), atol=1e-4)


def _config(tmp_path: Path, csv: Path, root: Path) -> Path:
    config = {
        "pipeline": "train",
        "name": "voices",
        "epochs": 1,
        "device": "cpu",
        "run_dir": str(tmp_path / "runs"),
        "progress_bar": False,
        "data": {"dataframe": str(csv), "dataset_root": str(root), "modality": {"type": "audio", "max_num_seconds": 1.0}},
        "extractor": {"type": "ecapa_tdnn"},
        "criterion": {"type": "arcface", "m": 0.2, "s": 30.0},
        "sampler": {"type": "balance", "n_labels": 2, "n_instances": 2},
        "optimizer": {"type": "adam", "lr": 1e-4},
        "validation": {"cmc_top_k": [1], "precision_top_k": [3], "map_top_k": [3], "batch_size": 8},
    }
    path = tmp_path / "voices.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.slow
def test_train_and_validate_on_a_csv_of_audio(tmp_path: Path, mock_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, mock_root / "df.csv", mock_root)
    assert main(["train", str(config)]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2  # 4 training labels, 2 per batch
    assert set(summary["after"]) >= {"OVERALL/cmc/1", "OVERALL/map/3"} and 0 <= summary["after"]["OVERALL/cmc/1"] <= 1
    capsys.readouterr()
    assert main(["validate", str(config), "--checkpoint", str(run_dir / "checkpoints" / "last.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["OVERALL/cmc/1"] == pytest.approx(summary["after"]["OVERALL/cmc/1"])


def test_train_names_the_unreadable_file(tmp_path: Path, mock_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    df = pd.read_csv(mock_root / "df.csv")
    df.loc[6, "path"] = "voices/missing.wav"
    csv = tmp_path / "df.csv"
    df.to_csv(csv, index=False)
    assert main(["train", str(_config(tmp_path, csv, mock_root))]) == 2
    err = capsys.readouterr().err
    assert "files not found under" in err and "in row 6" in err and "Traceback" not in err


def test_train_keeps_audio_paths_inside_the_dataset_root(tmp_path: Path, mock_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "elsewhere" / "voice.wav"
    outside.parent.mkdir()
    soundfile.write(outside, tone(440, 0.5, 16000), 16000)
    df = pd.read_csv(mock_root / "df.csv")
    df.loc[6, "path"] = str(outside)  # exists, but is not under the dataset root
    df.loc[9, "path"] = "../../secrets.wav"
    csv = tmp_path / "df.csv"
    df.to_csv(csv, index=False)
    config = _config(tmp_path, csv, mock_root)
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(csv) in err and "absolute paths are refused" in err and "(row 6)" in err
    assert "climb out of it" in err and "(row 9)" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))
    # data.allow_outside_root accepts the absolute path (as for images); '..' stays refused
    assert main(["train", str(config), "--set", "data.allow_outside_root=true"]) == 2
    err = capsys.readouterr().err
    assert "absolute paths" not in err and "(row 9)" in err
    df.loc[9, "path"] = df.loc[8, "path"]
    df.to_csv(csv, index=False)
    cfg = load_pipeline_config(Host(), config, overrides=["data.allow_outside_root=true"])
    train_set, _ = build_datasets(cfg, Host())
    assert str(outside) in train_set.df["path"].tolist()


def test_index_and_search_audio(tmp_path: Path, mock_root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "voices.db"
    args = ["--modality", "audio", "--model", "ecapa_tdnn", "--set", "modality.max_num_seconds=1.0", "--no-progress"]
    assert main(["index", str(mock_root / "df.csv"), "--store", str(store), *args]) == 0
    assert "32 items, 0 already in" in capsys.readouterr().out
    df = pd.read_csv(mock_root / "df.csv")
    query = str(mock_root / df["path"][9])
    assert main(["search", "--store", str(store), "-k", "2", "--json", query]) == 0
    top = json.loads(capsys.readouterr().out)[0]["matches"][0]
    assert top["id"] == 9 and top["path"] == query and top["label"] == int(df["label"][9]) and top["distance"] < 1e-2
    assert main(["search", "--store", str(store), "-k", "2", "--out", str(tmp_path / "voices.png"), query]) == 0
    drawn = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "voices.png").convert("RGB"))
    assert drawn.shape[1] > 500 and len(np.unique(drawn.reshape(-1, 3), axis=0)) > 100  # spectrograms, in colour
    assert main(["search", "--store", str(store), str(tmp_path / "nothing.wav")]) == 2
    assert "files not found" in capsys.readouterr().err


def test_base_dataset_of_query_files(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "q.wav", tone(440, 0.5, 8000), 8000)
    item = AudioBaseDataset([str(tmp_path / "q.wav")], max_num_seconds=1.0)[0]["input_tensors"]
    assert item.shape == (1, 16000) and item[0, 8200:].abs().max() == 0
