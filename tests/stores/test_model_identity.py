"""Model identity in stores and the unified model options of ``oml index`` / ``oml search`` / ``oml embed``:
a store refuses any other model (one paragraph naming both), moving a checkpoint or a run changes nothing, ``--run``
takes everything from a run, ``--exclude-self``, pictures with frames, no ``-0.0000``, no store created by a search,
image paths confined to the dataset root."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from PIL import Image

from oml_core import Host, hookimpl
from oml_core.builtin.stores import _frame_color, clean_distance
from oml_core.cli import build_parser, collect_commands, main
from oml_core.models import SimpleCNNExtractor
from oml_core.runs import load_run
from oml_core.stores import open_store

SIMPLE = ["--extractor", "simple_cnn", "--set", "extractor.channels=[8, 16]", "--im-size", "32", "--no-progress"]


def _images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(SimpleCNNExtractor(channels=(8, 16)).state_dict(), path)
    return path


def make_run(folder: Path, seed: int = 1, metric: str = "euclidean", threshold: float | None = None) -> Path:
    """A run directory as `oml train` leaves it (config.yaml, checkpoints/best.pt), plus calibration.json."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        "pipeline: train\nextractor: {type: simple_cnn, channels: [8, 16]}\n"
        f"data: {{dataframe: df.csv, im_size: 32}}\nvalidation: {{metric: {metric}}}\n"
    )
    _weights(folder / "checkpoints" / "best.pt", seed)
    if threshold is not None:
        (folder / "calibration.json").write_text(json.dumps({"distance": metric, "threshold": threshold, "thresholds": []}))
    return folder


def _labelled_gallery(root: Path, n: int = 8) -> Path:
    paths = _images(root / "images", n)
    rows = [f"{p.relative_to(root).as_posix()},{i // 2}" for i, p in enumerate(paths)]
    (root / "df.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root / "df.csv"


def _json_out(text: str) -> list[dict]:
    return json.loads(text[text.index("[") : text.rindex("]") + 1])


MLP = ["--extractor", "extractor_with_mlp", "--set", "extractor.extractor={type: simple_cnn, channels: [8, 16]}",
       "--set", "extractor.mlp_features=[8]", "--im-size", "32", "--no-progress"]


def _mlp_weights(path: Path, seed: int) -> Path:
    from oml_core.models import ExtractorWithMLP

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ExtractorWithMLP(SimpleCNNExtractor(channels=(8, 16)), [8]).state_dict(), path)
    return path


def test_identity_survives_moving_the_checkpoint_and_refuses_other_weights(tmp_path, capsys):
    gallery = _images(tmp_path / "gallery", 4)
    ckpt = _mlp_weights(tmp_path / "ckpt.pt", seed=1)
    url = str(tmp_path / "g.db")
    assert main(["index", "--store", url, *MLP, "--weights", str(ckpt), str(tmp_path / "gallery")]) == 0
    capsys.readouterr()

    moved = tmp_path / "elsewhere" / "renamed.pt"
    moved.parent.mkdir()
    shutil.move(ckpt, moved)
    assert main(["search", "--store", url, str(gallery[0]), "--json", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no longer there" in err and "--weights" in err and "Traceback" not in err

    assert main(["search", "--store", url, str(gallery[0]), *MLP, "--weights", str(moved), "--json"]) == 0
    first = _json_out(capsys.readouterr().out)[0]["matches"][0]
    assert first["path"] == str(gallery[0].resolve()) and first["distance"] < 1e-5  # same weights, another path: fine

    _mlp_weights(moved, seed=2)  # overwritten with other weights: the distance 0 -> 17 of the report must be refused
    assert main(["search", "--store", url, str(gallery[0]), *MLP, "--weights", str(moved)]) == 2
    err = capsys.readouterr().err
    assert "another model" in err and "weights sha256" in err and "Store: " in err and "Given: " in err
    assert err.count("\n") == 1 and "Traceback" not in err  # one paragraph
    assert main(["index", "--store", url, *MLP, "--weights", str(moved), str(tmp_path / "gallery")]) == 2
    assert "another model" in capsys.readouterr().err

    _mlp_weights(moved, seed=1)
    command = ["search", "--store", url, str(gallery[0]), *MLP, "--weights", str(moved)]
    command[command.index("32")] = "48"  # same weights, other preprocessing
    assert main(command) == 2
    assert "preprocessing" in capsys.readouterr().err


def test_run_gives_model_preprocessing_and_threshold_and_may_move(tmp_path, capsys):
    df = _labelled_gallery(tmp_path / "data")
    run = make_run(tmp_path / "runs" / "a", metric="cosine", threshold=0.05)
    loaded = load_run(run, host=Host(env={}))
    assert loaded.distance == "cosine" and loaded.threshold == 0.05 and loaded.im_size == 32
    assert loaded.checkpoint == (run / "checkpoints" / "best.pt").resolve() and loaded.embedding_size == 16

    url = f"faiss://{tmp_path}/store"
    assert main(["index", "--store", url, "--run", str(run), "--no-progress", str(df)]) == 0
    capsys.readouterr()
    with open_store(Host(env={}), url) as store:
        assert store.metric == "cosine"  # the run's distance
        assert store.info["model"]["fingerprint"] == attrs.asdict(loaded.fingerprint)

    moved = tmp_path / "archive" / "run-a"
    shutil.move(run, moved)
    query = str(tmp_path / "data" / "images" / "img_000.png")
    assert main(["search", "--store", url, query, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no longer exists" in err and "--run" in err
    assert main(["search", "--store", url, query, "--run", str(moved), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "same" in out and "distance <= 0.0500" in out and "-0.0000" not in out
    assert main(["search", "--store", url, query, "--run", str(moved), "--json", "-k", "2"]) == 0
    matches = _json_out(capsys.readouterr().out)[0]["matches"]
    assert matches[0]["same_identity"] is True and matches[0]["distance"] == 0.0

    assert main(["search", "--store", url, query, "--run", str(moved), "--extractor", "simple_cnn"]) == 2
    assert "leave out --extractor" in capsys.readouterr().err
    other = make_run(tmp_path / "runs" / "b", seed=3, metric="cosine")
    assert main(["search", "--store", url, query, "--run", str(other)]) == 2
    assert "another model" in capsys.readouterr().err
    euclidean = make_run(tmp_path / "runs" / "c", metric="euclidean")
    assert main(["search", "--store", url, query, "--run", str(euclidean)]) == 2
    assert "distance" in capsys.readouterr().err


def test_embed_and_predict_take_the_run(tmp_path, capsys, monkeypatch):
    df = _labelled_gallery(tmp_path / "data", n=4)
    run = make_run(tmp_path / "run")
    monkeypatch.chdir(tmp_path)  # relative paths of the dataframe are resolved from its folder, not from here
    assert main(["embed", str(df), "--run", str(run), "--out", "e.pt", "--no-progress"]) == 0
    saved = torch.load(tmp_path / "e.pt", weights_only=True)
    loaded = load_run(run, host=Host(env={}))
    with torch.no_grad():
        expected = loaded.extractor(torch.stack([loaded.transform(Image.open(p).convert("RGB")) for p in saved["paths"]]))
    assert torch.allclose(saved["embeddings"], expected, atol=1e-5)
    assert main(["embed", str(df), "--run", str(run), "--weights", "x.pt"]) == 2
    assert "leave out" in capsys.readouterr().err
    (tmp_path / "data" / "images" / "img_001.png").write_bytes(b"not an image")
    assert main(["embed", str(df), "--run", str(run), "--out", "f.pt", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--skip-unreadable" in err and "skip_unreadable=True" not in err
    assert main(["embed", str(df), "--run", str(run), "--out", "f.pt", "--no-progress", "--skip-unreadable"]) == 0
    assert torch.load(tmp_path / "f.pt", weights_only=True)["embeddings"].shape == (3, 16)
    assert main(["predict", "--run", str(tmp_path / "nowhere"), "--out", "p.pt"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["path", "sqlite", "faiss"])
def test_search_on_a_missing_store_creates_nothing(tmp_path, capsys, kind):
    image = _images(tmp_path / "q", 1)[0]
    url = {"path": str(tmp_path / "missing.db"), "sqlite": f"sqlite:///{tmp_path}/m.db", "faiss": f"faiss://{tmp_path}/f"}[kind]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["search", "--store", url, str(image), *SIMPLE]) == 2
    err = capsys.readouterr().err
    assert "there is no" in err and "oml index" in err and "dim=" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_search_exclude_self_labels_frames_and_distances(tmp_path, capsys):
    df = _labelled_gallery(tmp_path / "data")
    url = str(tmp_path / "g.db")
    assert main(["index", "--store", url, *SIMPLE, "--metric", "cosine", str(df)]) == 0
    capsys.readouterr()
    query = tmp_path / "data" / "images" / "img_002.png"
    assert main(["search", "--store", url, str(query), "-k", "3"]) == 0
    assert "-0.0000" not in capsys.readouterr().out
    out_png = tmp_path / "s.png"
    assert main(["search", "--store", url, str(query), "-k", "3", "--exclude-self", "--json", "--out", str(out_png)]) == 0
    result = _json_out(capsys.readouterr().out)[0]
    assert result["query_label"] == 1
    assert [m["rank"] for m in result["matches"]] == [1, 2, 3]
    assert all(m["path"] != str(query.resolve()) for m in result["matches"])
    assert all(m["distance"] >= 0 for m in result["matches"])
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    assert _frame_color(1, 1) == "green" and _frame_color(1, 2) == "red" and _frame_color(None, 2) == "black"
    assert str(clean_distance(-1e-9, "euclidean")) == "0.0" and f"{clean_distance(-0.0, 'dot'):.4f}" == "0.0000"


def test_index_keeps_image_paths_inside_the_dataset_root(tmp_path, capsys):
    root = tmp_path / "data"
    _images(root / "images", 2)
    outside = _images(tmp_path / "outside", 1)[0]
    os.symlink(outside, root / "images" / "link.png")
    url = str(tmp_path / "g.db")
    (root / "df.csv").write_text("path\nimages/img_000.png\n../../../../../../etc/passwd\n../outside/img_000.png\n")
    assert main(["index", "--store", url, *SIMPLE, str(root / "df.csv")]) == 2
    err = capsys.readouterr().err
    assert "outside the dataset root" in err and "row 1 '../../../../../../etc/passwd'" in err and "row 2" in err
    assert "--allow-outside-root" in err and not Path(url).exists()
    (root / "df.csv").write_text("path\nimages/img_000.png\nimages/link.png\n")
    assert main(["index", "--store", url, *SIMPLE, str(root / "df.csv")]) == 2
    assert "images/link.png" in capsys.readouterr().err  # a symlink out of the root counts as outside
    assert main(["index", "--store", url, *SIMPLE, str(root / "images")]) == 2
    assert "link.png" in capsys.readouterr().err
    assert main(["index", "--store", url, *SIMPLE, "--allow-outside-root", str(root / "df.csv")]) == 0
    with open_store(Host(env={}), url) as store:
        assert store.count() == 2


# ------------------------------------------------------------------------------------------ a third-party store
@attrs.frozen(kw_only=True)
class ShelfStoreConfig:
    """A store of another distribution, opened by its own URL scheme ``shelf://NAME`` (kept in SQLite here)."""

    url_schemes = ("shelf",)
    name: str
    folder: str = ""
    dim: int | None = None
    metric: str | None = None
    create: bool = True

    @classmethod
    def locate(cls, url: str) -> dict | None:
        return {"name": url[len("shelf://") :]} if url.startswith("shelf://") else None


class ShelfPlugin:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def oml_register_stores(self, registry):
        from oml_store_sql import SqlStore

        def create(name, folder, dim, metric, create):
            return SqlStore(f"sqlite:///{self.folder}/{name}.db", dim=dim, metric=metric, create=create)

        registry.add("shelf", config=ShelfStoreConfig, factory=create, summary="test store")


def test_a_third_party_store_opens_by_its_own_url_scheme(tmp_path, oml_host_factory, capsys):
    host = oml_host_factory(plugins=[ShelfPlugin(tmp_path)])
    with open_store(host, "shelf://books", dim=3) as store:
        store.add([1], torch.ones(1, 3))
    with open_store(host, "shelf://books") as store:
        assert store.count() == 1
    _images(tmp_path / "gallery", 2)
    args = build_parser(collect_commands(host)).parse_args(
        ["index", "--store", "shelf://gallery", *SIMPLE, str(tmp_path / "gallery")]
    )
    assert args._command.run(args, host) == 0
    assert (tmp_path / "gallery.db").is_file()
    with pytest.raises(Exception, match="no installed store opens URLs of the scheme 'nosuch'.*shelf://"):
        open_store(host, "nosuch://x")
