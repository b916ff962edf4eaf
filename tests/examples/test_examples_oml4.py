"""OML 4.0's documented image examples (``examples/oml4/*.py``) run against this project, and what they compute.

Each example is OML's snippet with only its imports changed and a few lines marked ``# set-up`` (random weights
where the snippet downloads a checkpoint, no ``show=True``). They run with ``runpy`` in a fresh working directory;
OML's default mock-dataset folder, checkpoint folder and cache point into temporary folders, and the mock dataset
there is a small one (12 identities x 4 images), which ``get_mock_images_dataset`` uses as it finds it.
``test_examples_import_nothing_from_oml`` checks that no line imports OML itself.
"""

from __future__ import annotations

import ast
import math
import runpy
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "oml4"


@pytest.fixture(scope="module")
def small_mock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oml_core.data import generate_mock_dataset

    root = tmp_path_factory.mktemp("oml4_mock") / "mock_dataset"
    generate_mock_dataset(root, n_labels=12, n_instances=4, im_size=32)
    return root


@pytest.fixture
def workdir(tmp_path: Path, small_mock: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import oml_core.data
    import oml_core.data.mock
    import oml_core.weights

    monkeypatch.setattr(oml_core.data.mock, "MOCK_DATASET_PATH", small_mock)
    monkeypatch.setattr(oml_core.data, "MOCK_DATASET_PATH", small_mock)
    monkeypatch.setattr(oml_core.weights, "CKPT_SAVE_ROOT", tmp_path / "checkpoints")
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    torch.manual_seed(0)
    return work


def run_example(name: str) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    plt.close("all")
    return runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def slow_cmc_at_1(rr: Any) -> float:
    hits = [len(r) > 0 and int(r[0]) in set(g.tolist()) for r, g in zip(rr.retrieved_ids, rr.gt_ids)]
    return sum(hits) / len(hits)


def test_examples_import_nothing_from_oml() -> None:
    for path in sorted(EXAMPLES.glob("*.py")):  # the image examples and the text/audio ones alike
        tree = ast.parse(path.read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in modules if m == "oml" or m.startswith("oml.")], path.name
    # 14 image examples (this file's tests) and the text/audio ones (tests/examples/test_examples_oml4_modal.py)
    images = [p for p in EXAMPLES.glob("*.py") if not p.name.startswith(("text_", "audio_"))]
    assert len(images) == 14


# ================================================================================================ retrieval
@pytest.mark.slow
def test_train_val(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = run_example("train_val.py")
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("{'active_tri'")]) == len(g["sampler"])
    rr, val = g["rr"], g["val"]
    assert len(rr) == len(val.get_query_ids()) and all(len(r) <= 3 for r in rr.retrieved_ids)
    assert out[-1].startswith("{'cmc': {1: tensor(") and "'map': {3:" in out[-1]
    metrics = g["calc_retrieval_metrics_rr"](rr, map_top_k=(3,), cmc_top_k=(1,))
    assert float(metrics["cmc"][1]) == pytest.approx(slow_cmc_at_1(rr))


def test_retrieval_usage_without_labels(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = run_example("retrieval_usage.py")
    rr, embeddings = g["rr"], g["embeddings"]
    assert rr.gt_ids is None and len(rr) == len(g["df_test"]) and embeddings.shape == (len(g["df_test"]), 384)
    for q, (ids, distances) in enumerate(zip(rr.retrieved_ids, rr.distances)):
        assert q not in ids.tolist() and 1 <= len(ids) <= 5
        assert torch.allclose(distances, torch.cdist(embeddings[q : q + 1], embeddings[ids])[0], atol=1e-4)
    assert capsys.readouterr().out == f"{rr}\n"


def test_retrieval_streaming(workdir: Path) -> None:
    g = run_example("retrieval_streaming.py")
    rr, queries, gallery = g["rr"], g["embeddings_query"], g["embeddings_gallery"]
    assert len(rr) == 2 and gallery.shape[0] == 20
    expected = torch.cdist(queries, gallery)
    for q, (ids, distances) in enumerate(zip(rr.retrieved_ids, rr.distances)):
        assert ids.tolist() == [int(i) for i in torch.argsort(expected[q]) if expected[q, i] < 80][: len(ids)]
        assert bool((distances < 80).all())


def test_postprocessing_algo(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = run_example("postprocessing_algo.py")
    out = capsys.readouterr().out
    rr = g["rr"]
    assert out.count("'cmc'") == 3 and out.endswith(f"{rr} {g['calc_retrieval_metrics_rr'](rr)} \n\n")
    assert all(bool((d < 75).all()) for d in rr.distances)


def test_sequences_are_left_out(workdir: Path) -> None:
    g = run_example("sequences.py")
    rr, df = g["rr"], g["df_val"]
    sequences = df["sequence"].tolist()
    query_ids, gallery_ids = g["dataset"].get_query_ids().tolist(), g["dataset"].get_gallery_ids().tolist()
    for q, ids in enumerate(rr.retrieved_ids):
        assert all(sequences[gallery_ids[i]] != sequences[query_ids[q]] for i in ids.tolist())
    assert float(g["metrics"]["cmc"][3]) == pytest.approx(
        np.mean([any(int(i) in set(gt.tolist()) for i in r[:3]) for r, gt in zip(rr.retrieved_ids, rr.gt_ids)])
    )


@pytest.mark.slow
def test_categories(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = run_example("categories.py")
    out = capsys.readouterr().out
    assert out.count("'active_tri'") == 5  # epoch_size=5
    categories = set(g["df_val"]["category"])
    assert all(f"'{c}'" in out for c in categories) and "'OVERALL'" in out


def test_dataset_format(workdir: Path) -> None:
    g = run_example("dataset_format.py")
    assert len(g["df_train"]) == 32 and len(g["df_val"]) == 16


def test_zoo(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oml_vit import ViTExtractor

    import oml_core.data
    import oml_core.weights
    from oml_core.data import read_image

    # what the README's snippet expects on disk: an image of the mock dataset, a checkpoint saved by the user
    source = sorted((oml_core.data.MOCK_DATASET_PATH / "images").rglob("*.png"))[0]
    read_image(source).save(oml_core.data.MOCK_DATASET_PATH / "images" / "circle_1.jpg")
    saved = ViTExtractor(None, arch="vits16")
    oml_core.weights.CKPT_SAVE_ROOT.mkdir(parents=True)
    torch.save(saved.state_dict(), oml_core.weights.CKPT_SAVE_ROOT / "vits16_dino.ckpt")

    g = run_example("zoo.py")
    assert g["features"].shape == (1, 384) and g["img_tensor"].shape == (3, 224, 224)
    assert "'vits16_dino'" in capsys.readouterr().out
    loaded = g["model_"].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.state_dict().items())
    (oml_core.data.MOCK_DATASET_PATH / "images" / "circle_1.jpg").unlink()


# ================================================================================================ post-processing by NN
@pytest.mark.slow
def test_postprocessing_predict(workdir: Path) -> None:
    g = run_example("postprocessing_predict.py")
    rr, rr_upd = g["rr"], g["rr_upd"]
    for before, after in zip(rr.retrieved_ids, rr_upd.retrieved_ids):
        assert sorted(before[:3].tolist()) == sorted(after[:3].tolist()) and before[3:].tolist() == after[3:].tolist()


@pytest.mark.slow
def test_postprocessing_train_val(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = run_example("postprocessing_train_val.py")
    assert g["embeddings_train"].shape == (32, 384) and g["embeddings_valid"].shape == (16, 384)
    assert not torch.equal(g["embeddings_train"][:16], g["embeddings_valid"])  # two datasets, two cache entries
    out = capsys.readouterr().out
    assert "Before postprocessing:" in out and "After postprocessing:" in out
    assert math.isfinite(g["loss"].item())


# ================================================================================================ Lightning and PML
@pytest.mark.slow
def test_lightning_with_tensorboard(workdir: Path) -> None:
    g = run_example("lightning.py")
    trainer, callback = g["trainer"], g["metric_callback"]
    assert trainer.current_epoch == 3
    metrics = callback.metric.metrics
    assert "OVERALL" in metrics and set(g["df_val"]["category"]) <= set(metrics)  # categories come from the dataset
    assert list(workdir.rglob("events.out.tfevents.*"))


def test_two_validation_loaders(workdir: Path) -> None:
    g = run_example("two_val_loaders.py")
    first, second = g["metric_callback_1"].metric, g["metric_callback_2"].metric
    n_queries = len(g["val_dataset_1"].get_query_ids())
    assert len(first.retrieval_results) == len(second.retrieval_results) == n_queries
    assert first.retrieval_results.distances[0].tolist() != second.retrieval_results.distances[0].tolist()


@pytest.mark.parametrize("name", ["pml.py", pytest.param("pml_advanced.py", marks=pytest.mark.slow)])
def test_pml_losses_on_our_dataset_and_sampler(workdir: Path, name: str) -> None:
    g = run_example(name)
    assert math.isfinite(g["loss"].item()) and len(g["train_loader"]) == len(g["sampler"]) > 1
