"""The user's documents (/work/shared/seeds/*.txt, copied into ``examples/seeds/*.py``) run against this project.

Each example runs with ``runpy`` in a fresh working directory holding a copy of the default mock dataset, and its
results are checked against slow, obviously-correct recomputations. No weights can be downloaded here, and the zoo's
``vits16_dino`` / ``resnet50_moco_v2`` entries carry no verified sha256 yet, so the harness (and only the harness)
points those two zoo entries at locally generated checkpoints with the official key layouts (random weights), served
through ``file://`` URLs with their real sha256: the examples' ``ViTExtractor("vits16_dino", ...)`` go through the
real download, checksum, safe-load and strict-load path (the tests check the verified copy in the cache and, where
nothing was trained, that the model holds exactly the served weights).

``test_examples_keep_the_seed_code_verbatim`` checks that every code block of every seed is in an example, line for
line, apart from import lines, lines marked ``# set-up (not in the seed)`` and the few lines marked ``# seed edit``.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import re
import runpy
import shutil
from collections.abc import Iterator
from itertools import permutations
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from oml_core.data import download_mock_dataset, read_image

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "seeds"
SEEDS = EXAMPLES / "documents"  # copies of the user's documents (/work/shared/seeds), checked against them below
SHARED_SEEDS = Path("/work/shared/seeds")
VIT_FILE = "dino_deitsmall16_pretrain.pth"
MOCO_FILE = "moco_v2_800ep_pretrain.pth.tar"


# ================================================================================================ fixtures
@pytest.fixture(scope="module")
def mock_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default mock dataset, generated once and copied into each example's working directory."""
    root = tmp_path_factory.mktemp("seeds_mock") / "mock_dataset"
    download_mock_dataset(root)
    return root


def _serve(path: Path, state: Any) -> tuple[Path, str]:
    torch.save(state, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def vit_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, torch.Tensor]]:
    """A random ViT-S/16 with the key layout of DINO's dino_deitsmall16_pretrain.pth (a plain state_dict)."""
    from oml_vit import ViTExtractor

    torch.manual_seed(0)
    state = {k: v.clone() for k, v in ViTExtractor(None, arch="vits16").model.state_dict().items()}
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.11.mlp.fc2.bias", "norm.weight"} <= state.keys()
    path, sha = _serve(tmp_path_factory.mktemp("served_vit") / VIT_FILE, state)
    return path, sha, state


@pytest.fixture(scope="module")
def moco_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, torch.Tensor]]:
    """A random ResNet-50 in MoCo v2's layout: {"state_dict": {"module.encoder_q.<torchvision key>": ...}, ...}."""
    from oml_resnet import ResnetExtractor

    torch.manual_seed(1)
    backbone = {k: v.clone() for k, v in ResnetExtractor(None, arch="resnet50").model.state_dict().items()}
    state_dict = {f"module.encoder_q.{k}": v for k, v in backbone.items()}
    state_dict |= {
        "module.encoder_q.fc.0.weight": torch.randn(2048, 2048),
        "module.encoder_q.fc.0.bias": torch.randn(2048),
        "module.encoder_q.fc.2.weight": torch.randn(128, 2048),
        "module.encoder_q.fc.2.bias": torch.randn(128),
    }
    checkpoint = {"epoch": 800, "arch": "resnet50", "state_dict": state_dict}
    path, sha = _serve(tmp_path_factory.mktemp("served_moco") / MOCO_FILE, checkpoint)
    return path, sha, backbone


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mock_dataset: Path) -> Iterator[Path]:
    """A fresh working directory with ``mock_dataset/`` in it, a private weights cache and matplotlib's Agg backend."""
    work = tmp_path / "work"
    shutil.copytree(mock_dataset, work / "mock_dataset")
    monkeypatch.chdir(work)
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("PL_TRAINER_MAX_EPOCHS", raising=False)
    matplotlib.use("Agg")
    yield work
    import matplotlib.pyplot as plt

    plt.close("all")


def point_zoo_entry(monkeypatch: pytest.MonkeyPatch, plugin: Any, plugin_name: str, name: str, path: Path, sha: str) -> None:
    """For this test only, the plugin's zoo entry ``name`` downloads ``path`` (a ``file://`` URL) with ``sha``.

    The plugin's weights table (``<plugin>.pretrained.WEIGHTS``, which its extractors and its registration hook
    read) gets the new URL and sha256; it is restored afterwards.
    """
    import attrs

    table = plugin.pretrained.WEIGHTS
    patched = tuple(attrs.evolve(e, urls=(path.as_uri(),), sha256=sha) if e.name == name else e for e in table)
    monkeypatch.setattr(plugin.pretrained, "WEIGHTS", patched)


@pytest.fixture
def served_vit(vit_checkpoint: tuple[Path, str, dict[str, torch.Tensor]], monkeypatch: pytest.MonkeyPatch, workdir: Path):
    """Point the zoo entry ``vits16_dino`` at the local checkpoint (file:// URL, its real sha256)."""
    import oml_vit.pretrained

    path, sha, state = vit_checkpoint
    point_zoo_entry(monkeypatch, oml_vit, "oml_vit", "vits16_dino", path, sha)
    return sha, state


@pytest.fixture
def served_moco(moco_checkpoint: tuple[Path, str, dict[str, torch.Tensor]], monkeypatch: pytest.MonkeyPatch, workdir: Path):
    """Point the zoo entry ``resnet50_moco_v2`` at the local checkpoint (file:// URL, its real sha256)."""
    import oml_resnet.pretrained

    path, sha, state = moco_checkpoint
    point_zoo_entry(monkeypatch, oml_resnet, "oml_resnet", "resnet50_moco_v2", path, sha)
    return sha, state


def run_example(name: str) -> dict[str, Any]:
    """Run ``examples/seeds/<name>`` as a script in the current directory; returns its global variables."""
    return runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def assert_downloaded(workdir: Path, sha: str, filename: str) -> None:
    """The weights came through the download path: a verified copy (and its checksum marker) is in the cache."""
    cached = workdir.parent / "cache" / "weights" / filename
    assert cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    assert cached.with_name(filename + ".sha256").read_text().split()[0] == sha


def assert_same_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], **allclose: float) -> None:
    own = module.state_dict()
    assert own.keys() == state.keys()
    for key, value in state.items():
        if allclose:
            assert torch.allclose(own[key], value, **allclose), key
        else:
            assert torch.equal(own[key], value), key


# ================================================================================================ slow references
def slow_retrieval_metrics(
    embeddings: torch.Tensor, labels: list[int], is_query: list[bool], is_gallery: list[bool], k: int = 5
) -> dict[str, float]:
    """CMC@k and precision@k (OML's: relevant items in the top k / min(k, n_relevant)), one query at a time."""
    cmc, precision = [], []
    for q in range(len(labels)):
        if not is_query[q]:
            continue
        found = []
        for g in range(len(labels)):
            if is_gallery[g] and g != q:
                found.append((math.dist(embeddings[q].tolist(), embeddings[g].tolist()), g))
        ranked = [g for _, g in sorted(found)][:k]
        hits = [labels[g] == labels[q] for g in ranked]
        n_relevant = sum(labels[g] == labels[q] for _, g in found)
        cmc.append(float(any(hits)))
        precision.append(sum(hits) / min(k, n_relevant))
    return {"cmc": sum(cmc) / len(cmc), "precision": sum(precision) / len(precision)}


def embed(model: torch.nn.Module, dataset: Any) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.eval()(dataset[i]["input_tensors"][None]) for i in range(len(dataset))])


def dataset_columns(dataset: Any) -> tuple[list[int], list[bool], list[bool]]:
    items = [dataset[i] for i in range(len(dataset))]
    return [int(x["labels"]) for x in items], [bool(x["is_query"]) for x in items], [bool(x["is_gallery"]) for x in items]


# ================================================================================================ the seed text
def seed_blocks(number: str) -> list[list[str]]:
    """The fenced code blocks of seed ``number`` (e.g. "001"), as lists of lines."""
    (path,) = SEEDS.glob(f"{number}_*.txt")
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return blocks


_IMPORT = re.compile(r"^\s*(import\s|from\s+\S+\s+import\s)")
SETUP_MARK = "# set-up (not in the seed)"
EDIT_MARK = "# seed edit:"

# example -> (seed, its code blocks in the order the example runs them, number of lines marked "# seed edit")
VERBATIM: dict[str, tuple[str, list[int], int]] = {
    "seed000_training.py": ("000", [0, 1, 2, 3, 4, 5, 6, 7], 0),
    "seed001_lightning.py": ("001", [1, 0, 2], 0),
    "seed001_sql_1_create.py": ("001", [3], 0),
    "seed001_sql_2_print.py": ("001", [4], 0),
    "seed001_sql_3_topk.py": ("001", [5], 0),
    "seed001_postprocessing.py": ("001", [6, 7, 8, 9, 10], 0),
    "seed002_pytorch_training.py": ("002", [0], 5),
    "seed002_pytorch_validation.py": ("002", [1], 4),
    "seed002_lightning.py": ("002", [2], 5),
    "seed004_siamese_training.py": ("004", [0], 1),
    "seed004_rerank_predictions.py": ("004", [1], 1),
}


def example_code_lines(path: Path) -> list[str]:
    """The example's lines that should be the seed's: no docstring, imports, set-up lines or blank lines."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skip.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    first = tree.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        skip.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines = text.splitlines()
    return [
        line.rstrip() for number, line in enumerate(lines, 1) if number not in skip and line.strip() and SETUP_MARK not in line
    ]


def test_examples_keep_the_seed_code_verbatim() -> None:
    for name, (seed, blocks, n_edits) in VERBATIM.items():
        all_blocks = seed_blocks(seed)
        expected = [line.rstrip() for b in blocks for line in all_blocks[b] if line.strip() and not _IMPORT.match(line)]
        actual = example_code_lines(EXAMPLES / name)
        assert len(actual) == len(expected), f"{name}: {len(actual)} code lines, the seed's blocks have {len(expected)}"
        edits = 0
        for number, (mine, theirs) in enumerate(zip(actual, expected)):
            if EDIT_MARK in mine:
                edits += 1
                assert mine.split(EDIT_MARK)[0].strip() != theirs.strip(), f"{name}: line {number} is marked as edited but is not"
            else:
                assert mine == theirs, f"{name}: code line {number} differs from seed {seed}:\n  {mine!r}\n  {theirs!r}"
        assert edits == n_edits, f"{name}: {edits} lines marked '{EDIT_MARK}', expected {n_edits}"


def test_the_copied_documents_are_the_users() -> None:
    copies = sorted(p.name for p in SEEDS.glob("[0-9][0-9][0-9]_*.txt"))
    assert [name[:3] for name in copies] == ["000", "001", "002", "003", "004"]
    if SHARED_SEEDS.is_dir():  # the user's folder, where it exists (the copies keep the test self-contained elsewhere)
        assert copies == sorted(p.name for p in SHARED_SEEDS.glob("[0-9][0-9][0-9]_*.txt"))
        for name in copies:
            assert (SEEDS / name).read_bytes() == (SHARED_SEEDS / name).read_bytes(), name


def test_every_seed_code_block_has_an_example() -> None:
    covered: dict[str, set[int]] = {}
    for seed, blocks, _ in VERBATIM.values():
        covered.setdefault(seed, set()).update(blocks)
    for path in sorted(SEEDS.glob("[0-9][0-9][0-9]_*.txt")):
        seed = path.name[:3]
        assert covered.get(seed, set()) == set(range(len(seed_blocks(seed)))), f"seed {seed}: blocks without an example"
    assert seed_blocks("003") == []  # seed 003 (an early README) has prose only; see examples/seeds/README.md


# ================================================================================================ seed 000
def test_seed000_trains_vit_with_triplets_and_prints_last_logs(served_vit, workdir: Path, capsys) -> None:
    sha, state = served_vit
    g = run_example("seed000_training.py")
    out = capsys.readouterr().out.splitlines()
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    sampler, train_loader, criterion = g["sampler"], g["train_loader"], g["criterion"]

    assert g["df_train"].shape == (192, 5) and len(g["train_dataset"]) == 192
    assert out[0] == str(sampler.lbl2idx) and out[1] == "4" and sampler.batch_size == 4
    assert len(sampler.lbl2idx) == 24 and all(len(ids) == 8 for ids in sampler.lbl2idx.values())
    logs = [ast.literal_eval(line) for line in out[2:]]
    assert len(logs) == len(train_loader) == 12  # one print(criterion.last_logs) per batch
    for log in logs:
        assert log.keys() == {"active_tri", "pos_dist", "neg_dist"} and 0.0 <= log["active_tri"] <= 1.0
        assert all(math.isfinite(v) for v in log.values())
    assert math.isfinite(g["loss"].item())
    # trained with lr=1e-6 from exactly the served weights
    assert_same_weights(g["model"].model, state, atol=1e-4, rtol=0.0)

    # the last logs against all triplets of the last batch, one at a time
    emb, labels = g["embeddings"].detach(), g["batch"]["labels"].tolist()
    values, pos, neg = [], [], []
    for a, p, n in permutations(range(len(labels)), 3):
        if labels[a] == labels[p] and labels[a] != labels[n]:
            d_ap, d_an = float(torch.dist(emb[a], emb[p])), float(torch.dist(emb[a], emb[n]))
            values.append(d_ap - d_an + criterion.margin)
            pos.append(d_ap)
            neg.append(d_an)
    assert logs[-1]["active_tri"] == pytest.approx(sum(v > 0 for v in values) / len(values))
    assert logs[-1]["pos_dist"] == pytest.approx(sum(pos) / len(pos), rel=1e-4)
    assert logs[-1]["neg_dist"] == pytest.approx(sum(neg) / len(neg), rel=1e-4)


# ================================================================================================ seed 001
def test_seed001_lightning_validates_every_epoch_and_reloads_the_checkpoint(served_vit, workdir: Path) -> None:
    from oml_lightning.pytorch_lightning import ExtractorModule
    from oml_vit import ViTExtractor

    sha, state = served_vit
    g = run_example("seed001_lightning.py")
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    callback, pl_model, logger = g["metric_callback"], g["pl_model"], g["logger"]

    # 5 epochs, validated after each; the last metrics equal a slow recomputation with the trained model
    assert g["trainer"].current_epoch == 5 and sorted(callback.metric_history) == [0, 1, 2, 3, 4]
    assert callback.metric_result == callback.metric_history[4]
    for metrics in callback.metric_history.values():
        assert {"OVERALL/cmc/5", "OVERALL/precision/5", "OVERALL/map/5"} <= metrics.keys()
        assert all(0.0 <= float(metrics[f"OVERALL/{m}/5"]) <= 1.0 for m in ("cmc", "precision", "map"))
    val_dataset = g["val_dataset"]
    expected = slow_retrieval_metrics(embed(g["model"], val_dataset), *dataset_columns(val_dataset))
    assert float(callback.metric_result["OVERALL/cmc/5"]) == pytest.approx(expected["cmc"], abs=1e-6)
    assert float(callback.metric_result["OVERALL/precision/5"]) == pytest.approx(expected["precision"], abs=1e-6)

    # the logger got finite training losses and the metrics of every epoch; figures of the worst queries were drawn
    with open(Path(logger.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    losses = [float(r["triplet_loss_epoch"]) for r in rows if r.get("triplet_loss_epoch")]
    assert len(losses) == 5 and all(math.isfinite(x) and x >= 0 for x in losses)
    assert [int(r["epoch"]) for r in rows if r.get("OVERALL/cmc/5")] == [0, 1, 2, 3, 4]
    assert len(callback.figure_paths) == 5 * 3
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in callback.figure_paths)

    # the checkpoint loads (also safely) into a fresh module that then embeds exactly like the trained one
    checkpoint = torch.load(workdir / "trained_model.ckpt", weights_only=True)
    assert checkpoint["state_dict"].keys() == g["checkpoint"]["state_dict"].keys()
    assert {k for k in checkpoint["state_dict"] if k.startswith("model.")} == {f"model.{k}" for k in g["model"].state_dict()}
    fresh = ExtractorModule(ViTExtractor(None, arch="vits16"), g["criterion"])
    fresh.load_state_dict(checkpoint["state_dict"])
    images = torch.stack([val_dataset[i]["input_tensors"] for i in range(len(val_dataset))])
    with torch.no_grad():
        assert torch.allclose(fresh.eval().model(images), pl_model.eval().model(images), atol=1e-5)


def test_seed001_sql_example_runs_as_written(workdir: Path, capsys) -> None:
    import matplotlib.pyplot as plt

    created = run_example("seed001_sql_1_create.py")
    vector = created["embedding_vector"]
    run_example("seed001_sql_2_print.py")
    printed = capsys.readouterr().out.splitlines()
    row = f"INSERT INTO embeddings (id, embedding) VALUES (1, {vector.tobytes()!r});"  # noqa: S608 - printed, not run
    assert printed == ["SQL 형식으로 데이터 출력:", row]

    found = run_example("seed001_sql_3_topk.py")
    assert list(found["embeddings"]) == [1] and np.array_equal(found["embeddings"][1], vector)
    assert found["top_k_ids"] == [1]  # the table has one row
    axes = plt.gcf().axes
    assert [ax.get_title() for ax in axes] == ["Query Vector", "Top 1 Match (ID: 1)"]
    assert np.array_equal(axes[0].get_images()[0].get_array(), found["query_vector"].reshape(10, 10))
    assert np.array_equal(axes[1].get_images()[0].get_array(), vector.reshape(10, 10))


def test_seed001_sql_example_through_the_sql_store_and_retrieval_results(workdir: Path, capsys) -> None:
    import matplotlib.pyplot as plt

    from oml_core import Host
    from oml_core.stores import open_store

    run_example("seed001_sql_1_create.py")  # the seed's own table in the same database file is left alone
    g = run_example("seed001_sql_store.py")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "SQL 형식으로 데이터 출력:"
    pattern = re.compile(r"INSERT INTO oml_embeddings \(id, embedding\) VALUES \((\d+), \[.*\]\);")
    rows = [pattern.fullmatch(line) for line in printed[1:21]]
    assert [int(row.group(1)) for row in rows] == list(range(1, 21))

    with open_store(Host(), workdir / "embedding_database.db", table="oml_embeddings") as store:
        assert store.count() == 20 and store.dim == 100
        vectors, _ = store.get(list(range(1, 21)))
    # the store's top-5 equals the seed's own way: a Python loop of np.linalg.norm, then a sort
    query = g["query_vector"].astype(np.float32)
    distances = {i + 1: float(np.linalg.norm(query - v)) for i, v in enumerate(vectors.numpy())}
    top5 = sorted(distances, key=distances.get)[:5]
    rr = g["rr"]
    assert rr.retrieved_ids[0].tolist() == top5
    assert rr.distances[0].tolist() == pytest.approx([distances[i] for i in top5], rel=1e-5)
    assert printed[21].startswith("Top 5 matches") and str(top5[0]) in printed[21]

    # the figure: the query, then its five matches nearest first
    axes = plt.gcf().axes
    assert len(axes) == 6 and axes[0].get_title() == "Query #0"
    assert np.array_equal(axes[0].get_images()[0].get_array(), g["query_vector"].reshape(10, 10))
    for ax, item in zip(axes[1:], top5):
        assert ax.get_title().startswith(f"Gallery #{item} - ")
        assert np.array_equal(ax.get_images()[0].get_array(), vectors[item - 1].numpy().reshape(10, 10))
    # a second run reuses the store (no duplicate ids) and the seed's table still has its one row
    run_example("seed001_sql_store.py")
    assert capsys.readouterr().out.count("INSERT INTO oml_embeddings") == 20
    assert run_example("seed001_sql_3_topk.py")["top_k_ids"] == [1]


def test_seed001_postprocessing_parts(served_vit, workdir: Path) -> None:
    sha, state = served_vit
    g = run_example("seed001_postprocessing.py")
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    extractor, transform = g["extractor"], g["transform"]
    assert_same_weights(extractor.model, state)

    # embeddings of the whole dataframe, split by "split", aligned with the returned frames
    emb_train, emb_val, df_train, df_val = g["embeddings_train"], g["embeddings_val"], g["df_train"], g["df_val"]
    assert emb_train.shape == (192, 384) and emb_val.shape == (96, 384) and len(df_train) == 192 and len(df_val) == 96
    assert set(df_train["split"]) == {"train"} and set(df_val["split"]) == {"validation"}
    for emb, df in ((emb_train, df_train), (emb_val, df_val)):
        rows = [0, len(df) - 1]
        images = torch.stack([transform(read_image(df["path"][i])) for i in rows])
        assert images.shape == (2, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(emb[rows], extractor.eval()(images), atol=1e-4)

    # the siamese scores a pair of images with one logit, the loss takes it, the postprocessor holds both
    siamese, criterion, postprocessor = g["siamese"], g["criterion"], g["postprocessor"]
    images = torch.stack([transform(read_image(df_val["path"][i])) for i in range(4)])
    with torch.no_grad():
        logits = siamese.eval()(x1=images[:2], x2=images[2:])
    assert logits.shape == (2,) and bool(torch.isfinite(criterion(logits, torch.tensor([0.0, 1.0]))))
    assert postprocessor.top_n == 3 and postprocessor.model is siamese and postprocessor.transforms is transform


# ================================================================================================ seed 002
def test_seed002_pure_pytorch_training(served_vit, workdir: Path) -> None:
    sha, state = served_vit
    g = run_example("seed002_pytorch_training.py")
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    assert len(g["train_loader"]) == 1 and g["sampler"].batch_size == 16
    assert g["batch"]["input_tensors"].shape == (16, 3, 64, 64)
    assert math.isfinite(g["loss"].item())
    trained = g["model"].model.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in state.items()), "SGD changed nothing"


def test_seed002_pure_pytorch_validation(served_vit, workdir: Path) -> None:
    sha, state = served_vit
    g = run_example("seed002_pytorch_validation.py")
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    assert_same_weights(g["model"].model, state)
    metrics, val_dataset = g["metrics"], g["val_dataset"]
    assert {k: sorted(v) for k, v in metrics["OVERALL"].items()} == {"cmc": [5], "precision": [5], "map": [5], "pcf": [0.5]}
    expected = slow_retrieval_metrics(embed(g["model"], val_dataset), *dataset_columns(val_dataset))
    assert float(metrics["OVERALL"]["cmc"][5]) == pytest.approx(expected["cmc"], abs=1e-6)
    assert float(metrics["OVERALL"]["precision"][5]) == pytest.approx(expected["precision"], abs=1e-6)


def test_seed002_lightning(served_moco, workdir: Path) -> None:
    sha, backbone = served_moco
    g = run_example("seed002_lightning.py")
    assert_downloaded(workdir, sha, "moco_v2_800ep_pretrain.pth.tar")
    trainer, callback = g["trainer"], g["metric_callback"]
    assert trainer.current_epoch == 1 and sorted(callback.metric_history) == [0]  # PL_TRAINER_MAX_EPOCHS=1
    assert all(0.0 <= float(callback.metric_result[f"OVERALL/{m}/5"]) <= 1.0 for m in ("cmc", "precision", "map"))
    model = g["pl_model"].model
    assert model is g["model"] and model.feat_dim == 2048
    trained = model.model.state_dict()
    assert trained.keys() == backbone.keys()  # the MoCo query encoder, without its MLP head
    assert any(not torch.equal(trained[k], v) for k, v in backbone.items() if v.is_floating_point()), "SGD changed nothing"


def test_seed002_config_based_run_through_oml_train(served_vit, workdir: Path) -> None:
    """Seeds 002/003's "adjust the config file and run the experiment", as ``examples/seeds/seed002_config.yaml``."""
    from oml_vit import ViTExtractor

    from oml_core.cli import main
    from oml_core.data import DatasetQueryGallery, get_normalisation_resize_torch

    sha, _ = served_vit
    config = EXAMPLES / "seed002_config.yaml"
    assert main(["config", "check", str(config)]) == 0
    # the config as written, on 4 training and 3 validation identities of its mock dataset (1 step instead of 6)
    df = pd.read_csv("mock_dataset/df.csv")
    df[df["label"].isin([0, 1, 2, 3, 24, 25, 26])].to_csv("mock_dataset/small.csv", index=False)
    assert main(["train", str(config), "--set", "data.dataframe=mock_dataset/small.csv"]) == 0
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")

    (run,) = (workdir / "runs").iterdir()
    report = json.loads((run / "metrics.json").read_text())
    assert report["status"] == "completed" and report["epochs"] == 1 and report["steps"] == 1
    assert report["after"].keys() == {"OVERALL/cmc/5", "OVERALL/precision/5", "OVERALL/map/5"}
    # the reported metrics are those of the saved model, recomputed slowly
    model = ViTExtractor(None, arch="vits16")
    model.load_state_dict(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"])
    df_val = df[df["label"].isin([24, 25, 26])]
    val_dataset = DatasetQueryGallery(df_val, dataset_root="mock_dataset", transform=get_normalisation_resize_torch(64))
    expected = slow_retrieval_metrics(embed(model, val_dataset), *dataset_columns(val_dataset))
    assert report["after"]["OVERALL/cmc/5"] == pytest.approx(expected["cmc"], abs=1e-5)
    assert report["after"]["OVERALL/precision/5"] == pytest.approx(expected["precision"], abs=1e-5)


# ================================================================================================ seed 004
def test_seed004_siamese_training_and_reranked_metrics(served_vit, workdir: Path, capsys) -> None:
    sha, _ = served_vit
    g = run_example("seed004_siamese_training.py")
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    assert "'OVERALL'" in capsys.readouterr().out  # pprint(calculator.compute_metrics())

    assert len(g["df_train"]) == 8 and len(g["df_val"]) == 12 and len(g["train_loader"]) == 1
    assert math.isfinite(g["loss"].item())
    calculator = g["calculator"]
    metrics = calculator.metrics
    assert {k: sorted(v) for k, v in metrics["OVERALL"].items()} == {"cmc": [5], "precision": [5], "map": [5], "pcf": [0.5]}

    # the siamese re-ranked each query's 3 nearest galleries (its probabilities became their distances) ...
    rr, items = calculator.retrieval_results, calculator.items
    labels, is_query = g["df_val"]["label"].tolist(), g["df_val"]["is_query"].tolist()
    queries = [i for i, q in enumerate(is_query) if q]
    galleries = [i for i, q in enumerate(is_query) if not q]
    assert rr.query_item_ids.tolist() == queries and rr.gallery_item_ids.tolist() == galleries
    assert "paths" in items.keys()  # accumulated for the postprocessor without extra_keys (needed_keys)
    assert bool(((rr.padded_distances[:, :3] >= 0) & (rr.padded_distances[:, :3] <= 1)).all())
    # ... the same three galleries as the embeddings' own nearest ones
    emb = g["embeddings_val"]
    for row, q in enumerate(queries):
        by_distance = sorted(galleries, key=lambda gi: float(torch.dist(emb[q], emb[gi])))
        retrieved = [galleries[j] for j in rr.retrieved_ids[row].tolist()]
        assert set(retrieved[:3]) == set(by_distance[:3]) and retrieved[3:] == by_distance[3 : len(retrieved)]
    # and the CMC@5 reported is that of the re-ranked lists
    hits = [any(labels[galleries[j]] == labels[q] for j in rr.retrieved_ids[row][:5].tolist()) for row, q in enumerate(queries)]
    assert float(metrics["OVERALL"]["cmc"][5]) == pytest.approx(sum(hits) / len(queries))


# the seed indexes tensors with df[...].values, which pandas' copy-on-write makes read-only (torch warns, harmlessly)
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
def test_seed004_rerank_a_distance_matrix(served_vit, workdir: Path, capsys) -> None:
    sha, state = served_vit
    g = run_example("seed004_rerank_predictions.py")
    assert_downloaded(workdir, sha, "vits16_dino.ckpt")
    assert_same_weights(g["extractor"].model, state)  # from_pretrained loaded exactly the served weights
    assert g["dataset"][0]["input_tensors"].shape == (3, 224, 224)  # the transforms registered with vits16_dino
    assert len(g["loader"]) == 3

    distances, distances_upd = g["distances"], g["distances_upd"]
    assert distances.shape == distances_upd.shape == (3, 9)
    emb, is_query = g["emb_val"], g["is_query"]
    assert torch.allclose(distances, torch.cdist(emb[is_query], emb[~is_query]))
    before = torch.topk(distances, dim=1, k=3, largest=False)[1]
    after = torch.topk(distances_upd, dim=1, k=3, largest=False)[1]
    assert torch.equal(after.sort(dim=1).values, before.sort(dim=1).values)  # only the top 3 were re-ordered
    assert torch.equal(torch.argsort(distances_upd, dim=1)[:, 3:], torch.argsort(distances, dim=1)[:, 3:])
    out = capsys.readouterr().out
    assert f"\nOriginal predictions:\n {before}" in out and f"\nPredictions after postprocessing:\n {after}" in out


# ================================================================================================ the adapter
def test_embedding_metrics_accumulates_the_keys_its_postprocessor_needs() -> None:
    """OML 2.x's ``postprocessor.needed_keys`` (what seed 004 relies on): accumulated without ``extra_keys``."""
    from oml_core.retrieval import EmbeddingMetrics

    class Recorder:
        needed_keys = ("paths", "scores")
        seen: dict[str, Any] = {}

        def process(self, results: Any, items: Any) -> Any:
            Recorder.seen = {key: items[key] for key in self.needed_keys}
            return results

    calculator = EmbeddingMetrics(postprocessor=Recorder(), cmc_top_k=(1,), precision_top_k=(), map_top_k=(), pcf_variance=())
    calculator.setup(num_samples=4)
    calculator.update_data(
        data_dict={
            "embeddings": torch.tensor([[0.0], [0.1], [5.0], [5.2]]),
            "labels": torch.tensor([0, 0, 1, 1]),
            "is_query": torch.ones(4, dtype=torch.bool),
            "is_gallery": torch.ones(4, dtype=torch.bool),
            "paths": ["a", "b", "c", "d"],
            "scores": torch.tensor([1.0, 2.0, 3.0, 4.0]),
            "ignored": torch.zeros(4),
        }
    )
    assert float(calculator.compute_metrics()["OVERALL"]["cmc"][1]) == 1.0
    assert Recorder.seen["paths"] == ["a", "b", "c", "d"] and Recorder.seen["scores"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert "ignored" not in calculator.keys_to_accumulate
