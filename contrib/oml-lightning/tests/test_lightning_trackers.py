"""Trackers chosen by name in the Lightning adapter: ``OMLLogger("mlflow", ...)`` with a real local MLflow store."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from oml_lightning import ExtractorModule, MetricValCallback, OMLLogger
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_samplers import BalanceSampler

from oml_core.errors import UnknownComponentError
from oml_core.models import SimpleCNNExtractor
from oml_core.retrieval import EmbeddingMetrics

sys.path.insert(0, str(Path(__file__).parent))
from lightning_helpers import mock_datasets  # noqa: E402


def test_mlflow_chosen_by_name_gets_metrics_figures_params_and_best_checkpoint(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    train_dataset, val_dataset = mock_datasets(tmp_path / "mock")
    torch.manual_seed(0)
    model = SimpleCNNExtractor(channels=(8, 16))
    sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2, seed=0)
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_sampler=sampler)
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=8)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    logger = OMLLogger("mlflow", save_dir=tmp_path / "run", tracking_uri=uri, experiment="lightning", log_checkpoint=True)
    pl_model = ExtractorModule(model, TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner()),
                               torch.optim.SGD(model.parameters(), lr=1e-2))  # fmt: skip
    callback = MetricValCallback(metric=EmbeddingMetrics(extra_keys=["paths"]), log_images=True)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="OVERALL/cmc/5", mode="max")
    trainer = pl.Trainer(max_epochs=2, callbacks=[callback, checkpoints], logger=logger, num_sanity_val_steps=0,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)  # fmt: skip
    trainer.fit(pl_model, train_dataloaders=train_loader, val_dataloaders=val_loader)

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("lightning").experiment_id])
    cmc = client.get_metric_history(run.info.run_id, "OVERALL/cmc/5")
    assert len(cmc) == 2 and cmc[-1].value == pytest.approx(callback.metric_result["OVERALL/cmc/5"], abs=1e-6)
    assert client.get_metric_history(run.info.run_id, "triplet_loss_step")
    images = {f.path for f in client.list_artifacts(run.info.run_id, "images")}
    assert any("worst" in path for path in images), images
    assert [f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")] == [
        f"checkpoints/{Path(checkpoints.best_model_path).name}"
    ]
    assert callback.figure_paths == []  # the figures went to the tracker, not to PNG files


def test_unknown_logger_name_lists_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownComponentError, match="mlflow"):
        OMLLogger("mlfow", save_dir=tmp_path)
