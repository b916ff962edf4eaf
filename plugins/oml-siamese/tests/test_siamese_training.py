"""Training a re-ranker through the engine (``oml train-postprocessor``) on the generated mock dataset.

The retrieval model is a small, untrained CNN (no weights can be downloaded here), so the embeddings alone are weak;
a ConcatSiamese trained for a few hundred steps on the training identities must re-rank the unseen validation
identities better than those embeddings. Runs on one thread with fixed seeds: the numbers are reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
import yaml
from oml_siamese.training import load_config, train_postprocessor

from oml_core import hookimpl
from oml_core.data import download_mock_dataset
from oml_core.errors import ConfigError
from oml_core.host import Host
from oml_core.models import SimpleCNNExtractor

REPO = Path(__file__).resolve().parents[3]


class MaxPoolCNN(SimpleCNNExtractor):
    """SimpleCNN with global max pooling: "is this colour / this edge anywhere" features, which a ConcatSiamese head
    compares better than averages over a mostly-background image pair."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).amax(dim=(-2, -1))


@attrs.frozen(kw_only=True)
class MaxPoolCNNConfig:
    channels: tuple[int, ...] = (16, 32, 64, 128)


class TinyBackbonePlugin:
    @hookimpl
    def oml_register_extractors(self, registry: Any) -> None:
        registry.add("max_pool_cnn", config=MaxPoolCNNConfig, factory=lambda channels: MaxPoolCNN(channels), summary="test")


@pytest.fixture(scope="module")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("siamese_mock")
    download_mock_dataset(root, im_size=32)  # 24 training and 12 validation identities, 8 images each
    return root


def _config(root: Path, run_dir: Path, **changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "pipeline": "train_postprocessor",
        "name": "test",
        "seed": 0,
        "epochs": 34,  # 6 batches per epoch: about 200 steps
        "device": "cpu",
        "run_dir": str(run_dir),
        "top_n": 5,
        "progress_bar": False,
        "data": {
            "dataframe": str(root / "df.csv"),
            "dataset_root": str(root),
            "im_size": 32,
            "transforms_train": [{"type": "norm_resize_torch", "im_size": 32}],
        },
        "extractor": {"type": "simple_cnn", "channels": [16, 32, 64]},
        "pairwise_model": {
            "type": "concat_siamese",
            "extractor": {"type": "max_pool_cnn"},
            "mlp_hidden_dims": [100],
            "dropout": 0.0,
            "use_tta": True,
        },
        "miner": {"type": "pairs", "hard_mining": False},
        "sampler": {"type": "balance", "n_labels": 4, "n_instances": 4},
        "optimizer": {"type": "adam", "lr": 3e-3},
        "validation": {"before_training": True, "every_n_epochs": 34, "batch_size": 128, "cmc_top_k": [1, 5]},
        "checkpoint": {"every_n_epochs": 0},
    }
    cfg.update(changes)
    return cfg


def _write(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible sums, and no oversubscription when tests run in parallel
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_trained_concat_siamese_improves_cmc1_over_embeddings(mock_root: Path, tmp_path: Path, one_thread: None) -> None:
    config = _write(tmp_path / "cfg.yaml", _config(mock_root, tmp_path / "runs"))
    result = train_postprocessor(config, host=Host(plugins=[TinyBackbonePlugin()]))

    assert result.status == "completed" and result.steps == 34 * 6
    embeddings, after = result.metrics_embeddings["OVERALL/cmc/1"], result.metrics_after["OVERALL/cmc/1"]
    top5 = result.metrics_embeddings["OVERALL/cmc/5"]
    print(f"CMC@1 embeddings alone {embeddings:.4f}, untrained siamese {result.metrics_before['OVERALL/cmc/1']:.4f}, "
          f"trained siamese {after:.4f} (ceiling: CMC@5 {top5:.4f})")  # fmt: skip
    assert after >= embeddings + 0.1, (embeddings, after)
    # re-ranking the top 5 can move items only inside the top 5
    assert result.metrics_after["OVERALL/cmc/5"] == pytest.approx(top5)

    summary = json.loads((result.run_dir / "metrics.json").read_text())
    assert summary["embeddings"]["OVERALL/cmc/1"] == embeddings and summary["after"]["OVERALL/cmc/1"] == after
    best = torch.load(result.run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert any(key.startswith("head.") for key in best["model"]), "the checkpoint holds the pairwise model"


def test_cli_trains_and_reports_before_after(
    mock_root: Path, tmp_path: Path, one_thread: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from oml_core.cli import main

    cfg = _config(mock_root, tmp_path / "runs", epochs=1)
    cfg["pairwise_model"]["extractor"] = {"type": "simple_cnn", "channels": [8, 16]}
    cfg["validation"]["every_n_epochs"] = 1
    cfg["checkpoint"] = {"every_n_epochs": 1}
    config = _write(tmp_path / "cfg.yaml", cfg)

    assert main(["train-postprocessor", str(config), "--set", "top_n=3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed"
    assert set(summary["embeddings"]) >= {"OVERALL/cmc/1", "OVERALL/cmc/5"}
    assert set(summary["before"]) == set(summary["after"]) >= {"OVERALL/cmc/1", "OVERALL/map/5"}
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "config.yaml").is_file()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["top_n"] == 3
    metrics_csv = (run_dir / "metrics.csv").read_text()
    assert "train/pair_accuracy" in metrics_csv and "val/embeddings/OVERALL/cmc/1" in metrics_csv


def test_cli_reports_config_errors_by_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oml_core.cli import main

    cfg = _config(tmp_path, tmp_path / "runs")
    cfg["pairwise_model"]["mlp_hidden_dims"] = [1.5]
    cfg["miner"]["hard_minig"] = True
    config = _write(tmp_path / "bad.yaml", cfg)
    assert main(["train-postprocessor", str(config)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "$.pairwise_model.mlp_hidden_dims[0]: expected an integer" in err
    assert "$.pairwise_model.extractor" in err and "max_pool_cnn" in err  # the test's extractor is not installed
    assert "did you mean 'hard_mining'" in err

    cfg = _config(tmp_path, tmp_path / "runs", top_n=0)
    cfg["pairwise_model"]["extractor"] = {"type": "simple_cnn"}
    config = _write(tmp_path / "bad_top_n.yaml", cfg)
    assert main(["train-postprocessor", str(config)]) == 2
    assert "top_n must be >= 1, got 0" in capsys.readouterr().err


def test_load_config_refuses_another_pipeline(tmp_path: Path) -> None:
    config = _write(tmp_path / "train.yaml", {"pipeline": "train", "epochs": 1})
    with pytest.raises(ConfigError, match="train_postprocessor"):
        load_config(Host(), config)


def test_repository_mock_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    from oml_core.cli import main

    config = REPO / "configs" / "train_postprocessor_mock.yaml"
    cfg = load_config(Host(), config)
    assert cfg.pairwise_model.type == "concat_siamese" and cfg.miner.type == "pairs"
    assert main(["train-postprocessor", str(config), "--check", "--set", "epochs=2"]) == 0
    assert "OK" in capsys.readouterr().out
