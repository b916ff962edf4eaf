"""``oml index`` and ``oml search`` in-process: folders and dataframes, resuming, recorded models, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from oml_core import Host
from oml_core.builtin.stores import build_model, items_from_dataframe, items_from_folder, path_id
from oml_core.cli import main
from oml_core.stores import open_store

MODEL = ["--extractor", "simple_cnn", "--im-size", "32", "--no-progress"]


def _images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i // 4}" / f"img_{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _embed_directly(paths):
    """What the index must hold: the seeded simple_cnn applied to each image (the obviously-correct way)."""
    host = Host(env={})
    model, transform, _ = build_model(host, {"extractor": {"type": "simple_cnn"}, "im_size": 32})
    model.eval()
    with torch.no_grad():
        return torch.cat([model(transform(Image.open(p).convert("RGB"))[None]) for p in paths])


@pytest.mark.parametrize("store_kind", ["sqlite", "faiss"])
def test_cli_index_folder_then_search_prints_and_draws(tmp_path, capsys, store_kind):
    paths = _images(tmp_path / "gallery", 10)
    url = str(tmp_path / "g.db") if store_kind == "sqlite" else f"faiss://{tmp_path}/g"
    assert main(["index", "--store", url, *MODEL, "--batch-size", "3", str(tmp_path / "gallery")]) == 0
    assert "10 to embed" in capsys.readouterr().out
    with open_store(Host(env={}), url) as store:
        assert store.count() == 10
        ids = [path_id(p.relative_to(tmp_path / "gallery").as_posix()) for p in paths]
        stored, meta = store.get(ids)
        assert torch.allclose(stored, _embed_directly(paths), atol=1e-5)
        assert [m["path"] for m in meta] == [str(p.resolve()) for p in paths]
        assert store.info["model"]["spec"]["extractor"]["type"] == "simple_cnn"
        assert store.info["model"]["fingerprint"]["embedding_size"] == 32

    out = tmp_path / "results.png"
    queries = [str(paths[4]), str(paths[7])]
    assert main(["search", "--store", url, *queries, "-k", "3", "--out", str(out), "--json"]) == 0  # model from the store
    printed = capsys.readouterr().out
    results = json.loads(printed[: printed.rindex("]") + 1])
    assert [r["query"] for r in results] == queries
    for result, query in zip(results, (paths[4], paths[7])):
        assert result["matches"][0]["path"] == str(query.resolve()) and result["matches"][0]["distance"] < 1e-4
        assert [m["rank"] for m in result["matches"]] == [1, 2, 3]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(out).size[0] > 400


def test_cli_index_resumes_and_skips_stored_ids(tmp_path, capsys):
    paths = _images(tmp_path / "gallery", 8)
    url = str(tmp_path / "g.db")
    with open_store(Host(env={}), url, dim=32) as store:  # as if a first run had stored two images
        first = [path_id(p.relative_to(tmp_path / "gallery").as_posix()) for p in paths[:2]]
        store.add(first, _embed_directly(paths[:2]), metadata=[{"path": "kept"}] * 2)
    assert main(["index", "--store", url, *MODEL, str(tmp_path / "gallery")]) == 0
    assert "2 already in" in capsys.readouterr().out
    with open_store(Host(env={}), url) as store:
        assert store.count() == 8
        assert store.get(first)[1] == [{"path": "kept"}, {"path": "kept"}]  # not embedded again


def test_cli_index_dataframe_ids_metadata_and_filter(tmp_path, capsys):
    paths = _images(tmp_path / "data" / "images", 6)
    rows = [f"{100 + i},{p.relative_to(tmp_path / 'data').as_posix()},{i % 2},{'train' if i < 3 else 'validation'}"
            for i, p in enumerate(paths)]
    (tmp_path / "data" / "df.csv").write_text("id,path,label,split\n" + "\n".join(rows) + "\n")
    items = items_from_dataframe(tmp_path / "data" / "df.csv")
    assert [i.id for i in items] == [100, 101, 102, 103, 104, 105]
    assert items[1].metadata == {"path": str(paths[1].resolve()), "row": 1, "label": 1, "split": "train"}
    url = f"sqlite:///{tmp_path}/df.db"
    assert main(["index", "--store", url, *MODEL, "--metric", "cosine", str(tmp_path / "data" / "df.csv")]) == 0
    capsys.readouterr()
    assert main(["search", "--store", url, str(paths[0]), "-k", "6", "--filter", "split=validation", "--json"]) == 0
    printed = capsys.readouterr().out
    matches = json.loads(printed)[0]["matches"]
    assert sorted(m["id"] for m in matches) == [103, 104, 105]
    assert all(m["split"] == "validation" for m in matches)


def test_cli_index_refuses_another_model_and_bad_input(tmp_path, capsys):
    _images(tmp_path / "gallery", 3)
    url = str(tmp_path / "g.db")
    assert main(["index", "--store", url, *MODEL, str(tmp_path / "gallery")]) == 0
    capsys.readouterr()
    code = main(["index", "--store", url, *MODEL, "--set", "extractor.channels=[4, 32]", str(tmp_path / "gallery")])
    assert code == 2 and "another model" in capsys.readouterr().err  # same dimension, other weights: not comparable
    code = main(["index", "--store", url, *MODEL, "--set", "extractor.channels=[4, 8]", str(tmp_path / "gallery")])
    assert code == 2 and "holds 32-d embeddings, but dim=8" in capsys.readouterr().err
    assert main(["index", "--store", url, *MODEL, str(tmp_path / "nowhere")]) == 2
    assert "neither a dataframe" in capsys.readouterr().err
    assert main(["index", "--store", str(tmp_path / "x.store"), *MODEL, str(tmp_path / "gallery")]) == 2
    assert "cannot tell which store" in capsys.readouterr().err
    assert main(["index", "--store", url, "--no-progress", str(tmp_path / "gallery")]) == 2
    assert "--run RUN_DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["index", "--store", url, *MODEL, str(tmp_path / "empty")]) == 2
    assert "no images" in capsys.readouterr().err
    (tmp_path / "dup.csv").write_text("id,path\n1,a.png\n1,b.png\n")
    with pytest.raises(Exception, match="id 1 is given to both"):
        items_from_dataframe(tmp_path / "dup.csv")
    assert main(["search", "--store", url, str(tmp_path / "missing.png")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_index_folder_ids_are_stable_when_files_are_added(tmp_path):
    paths = _images(tmp_path / "g", 4)
    before = {i.path: i.id for i in items_from_folder(tmp_path / "g")}
    _images(tmp_path / "g2", 1)
    (tmp_path / "g2" / "0" / "img_000.png").rename(tmp_path / "g" / "0" / "aaa_new.png")
    after = {i.path: i.id for i in items_from_folder(tmp_path / "g")}
    assert all(after[p] == i for p, i in before.items()) and len(after) == len(paths) + 1
