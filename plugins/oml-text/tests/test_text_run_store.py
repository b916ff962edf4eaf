"""A run trained on texts is used by ``oml calibrate``, ``oml index --run`` and ``oml search`` like a run of images: the run's
``data.modality`` says that the rows are texts, and the store's model identity refuses another text pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from oml_text import get_mock_texts_dataset

from oml_core.cli import main


def test_index_and_search_with_the_run_of_a_text_model(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    df_train, df_val = get_mock_texts_dataset()
    csv = tmp_path / "texts.csv"
    pd.concat([df_train, df_val], ignore_index=True).to_csv(csv, index=False)
    config = {
        "pipeline": "train", "name": "texts", "epochs": 1, "device": "cpu", "run_dir": str(tmp_path / "runs"),
        "progress_bar": False,
        "data": {"dataframe": str(csv), "modality": {"type": "text", "tokenizer": str(tiny_model_dir), "max_length": 48}},
        "extractor": {"type": "hf_text", "model": str(tiny_model_dir), "pooling": "mean"},
        "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
        "sampler": {"type": "balance", "n_labels": 2, "n_instances": 2},
        "validation": {"cmc_top_k": [1]},
    }  # fmt: skip
    (tmp_path / "texts.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["train", str(tmp_path / "texts.yaml")]) == 0
    run = next((tmp_path / "runs").iterdir())
    # calibration embeds the validation rows as texts, through the run's modality (not as image paths)
    assert main(["calibrate", "--run", str(run)]) == 0
    calibration = json.loads((run / "calibration.json").read_text())
    assert calibration["n_positive_pairs"] > 0 and calibration["n_negative_pairs"] > calibration["n_positive_pairs"]
    capsys.readouterr()
    store = tmp_path / "texts.db"
    assert main(["index", str(csv), "--run", str(run), "--store", str(store), "--no-progress"]) == 0
    assert "32 items, 0 already in" in capsys.readouterr().out
    query = str(pd.read_csv(csv)["text"][7])
    assert main(["search", "--store", str(store), "-k", "2", "--json", query]) == 0  # the model recorded: the run
    top = json.loads(capsys.readouterr().out)[0]
    assert top["matches"][0]["text"] == query and top["matches"][0]["id"] == 7 and top["query_label"] is not None
    assert main(["search", "--store", str(store), "-k", "2", "--json", "--exclude-self", query]) == 0
    assert all(m["id"] != 7 for m in json.loads(capsys.readouterr().out)[0]["matches"])
    # the same weights with another tokenizer length make other embeddings: refused, both named
    other = ["--modality", "text", "--extractor", "hf_text", "--set", f"extractor.model={tiny_model_dir}",
             "--set", f"modality.tokenizer={tiny_model_dir}", "--set", "modality.max_length=32"]  # fmt: skip
    assert main(["search", "--store", str(store), *other, query]) == 2
    err = capsys.readouterr().err
    assert "another model" in err and "max_length" in err
    assert main(["index", str(csv), "--run", str(run), "--modality", "text", "--store", str(store)]) == 2
    assert "leave out --modality" in capsys.readouterr().err
