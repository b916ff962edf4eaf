"""``oml train`` / ``validate`` / ``predict`` / ``index`` / ``search`` on a CSV of texts (the tiny local BERT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from oml_text import HFWrapper, TextQueryGalleryLabeledDataset, get_mock_texts_dataset

from oml_core.cli import main
from oml_core.engine import load_checkpoint_file
from oml_core.inference import inference
from oml_core.retrieval import calc_retrieval_metrics_rr
from oml_core.retrieval.results import RetrievalResults


@pytest.fixture
def texts_csv(tmp_path: Path) -> Path:
    df_train, df_val = get_mock_texts_dataset()
    path = tmp_path / "texts.csv"
    pd.concat([df_train, df_val], ignore_index=True).to_csv(path, index=False)
    return path


def _config(tmp_path: Path, csv: Path, model_dir: Path, **data: object) -> Path:
    config = {
        "pipeline": "train",
        "name": "texts",
        "epochs": 2,
        "device": "cpu",
        "run_dir": str(tmp_path / "runs"),
        "progress_bar": False,
        "data": {"dataframe": str(csv), "modality": {"type": "text", "tokenizer": str(model_dir), "max_length": 48}, **data},
        "extractor": {"type": "hf_text", "model": str(model_dir), "pooling": "mean"},
        "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
        "sampler": {"type": "balance", "n_labels": 2, "n_instances": 2},
        "optimizer": {"type": "adam", "lr": 1e-3},
        "validation": {"cmc_top_k": [1], "precision_top_k": [3], "map_top_k": [3]},
    }
    path = tmp_path / "texts.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_train_validate_predict_on_a_csv_of_texts(tmp_path: Path, texts_csv: Path, tiny_model_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = _config(tmp_path, texts_csv, tiny_model_dir)
    assert main(["config", "check", str(config)]) == 0
    assert main(["train", str(config)]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert 0 <= summary["after"]["OVERALL/cmc/1"] <= 1 and "OVERALL/precision/3" in summary["before"]
    # the run's last metrics equal a recomputation with its saved model, outside the pipeline
    model = HFWrapper(__import__("transformers").AutoModel.from_pretrained(tiny_model_dir), 32, pooling="mean")
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    model.load_state_dict(load_checkpoint_file(run_dir / "checkpoints" / "last.pt")["model"])
    # the model was trained (on 7 validation queries the metrics alone may come out equal before and after)
    assert any(not torch.equal(value, initial[name]) for name, value in model.state_dict().items())
    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(tiny_model_dir)
    _, df_val = get_mock_texts_dataset()
    val = TextQueryGalleryLabeledDataset(df_val, tokenizer=tokenizer, max_length=48)
    results = RetrievalResults.from_embeddings(inference(model, val, progress=False), val, n_items=5)
    expected = calc_retrieval_metrics_rr(results, cmc_top_k=(1,), precision_top_k=(3,), map_top_k=(3,))
    assert summary["after"]["OVERALL/cmc/1"] == pytest.approx(float(expected["cmc"][1]), abs=1e-6)
    assert summary["after"]["OVERALL/map/3"] == pytest.approx(float(expected["map"][3]), abs=1e-6)
    capsys.readouterr()
    assert main(["validate", str(config), "--checkpoint", str(run_dir / "checkpoints" / "last.pt")]) == 0
    validated = json.loads(capsys.readouterr().out)
    assert validated["OVERALL/cmc/1"] == pytest.approx(summary["after"]["OVERALL/cmc/1"], abs=1e-6)
    out = tmp_path / "embeddings.pt"
    assert main(["predict", str(config), "--checkpoint", str(run_dir / "checkpoints" / "last.pt"), "--out", str(out)]) == 0
    payload = torch.load(out, weights_only=True)
    assert payload["embeddings"].shape == (32, 32) and payload["labels"].tolist() == pd.read_csv(texts_csv)["label"].tolist()
    assert torch.allclose(payload["embeddings"][18:], inference(model, val, progress=False), atol=1e-5)


def test_train_refuses_an_empty_text_naming_the_row(tmp_path: Path, texts_csv: Path, tiny_model_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    df = pd.read_csv(texts_csv)
    df.loc[5, "text"] = "   "
    df.to_csv(texts_csv, index=False)
    assert main(["train", str(_config(tmp_path, texts_csv, tiny_model_dir))]) == 2
    err = capsys.readouterr().err
    assert "oml: error:" in err and "the 'text' is empty in row 5" in err and "Traceback" not in err


def test_index_and_search_texts(tmp_path: Path, texts_csv: Path, tiny_model_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "texts.db"
    model = ["--modality", "text", "--model", "hf_text", "--set", f"extractor.model={tiny_model_dir}",
             "--set", "extractor.pooling=mean",
             "--set", f"modality.tokenizer={tiny_model_dir}", "--set", "modality.max_length=48"]  # fmt: skip
    assert main(["index", str(texts_csv), "--store", str(store), *model, "--no-progress"]) == 0
    assert "32 items, 0 already in" in capsys.readouterr().out
    assert main(["index", str(texts_csv), "--store", str(store), *model, "--no-progress"]) == 0
    assert "32 items, 32 already in" in capsys.readouterr().out
    df = pd.read_csv(texts_csv)
    query = df["text"][20]
    assert main(["search", "--store", str(store), "-k", "3", "--json", query, "a gaming headset with a microphone"]) == 0
    results = json.loads(capsys.readouterr().out)
    top = results[0]["matches"][0]
    assert results[0]["query"] == query and top["text"] == query and top["id"] == 20 and top["distance"] < 1e-2
    assert results[0]["matches"][1]["distance"] > top["distance"] + 0.05
    assert top["label"] == int(df["label"][20]) and top["row"] == 20 and len(results[1]["matches"]) == 3
    assert main(["search", "--store", str(store), "-k", "2", query]) == 0
    printed = capsys.readouterr().out
    assert "text" in printed.splitlines()[1] and query in printed
    assert main(["search", "--store", str(store), "-k", "2", "--out", str(tmp_path / "texts.png"), query, "a red chair"]) == 0
    from PIL import Image

    drawn = np.asarray(Image.open(tmp_path / "texts.png").convert("RGB"))
    assert drawn.shape[0] > 400 and drawn.shape[1] > 500  # two rows of three cards
    assert ((drawn == (0, 0, 255)).all(axis=2)).sum() > 1000  # the queries' blue frames
    assert ((drawn < 80).all(axis=2)).sum() > 2000  # dark glyphs of the drawn texts
