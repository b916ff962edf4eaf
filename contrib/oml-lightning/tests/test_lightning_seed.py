"""Seed 001 with only its import lines changed: ExtractorModule + a MetricValCallback subclass + pl.Trainer, metrics
every epoch, figures of the worst queries, save_checkpoint and loading the state_dict back."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

# changed import lines (seed 001 imported these from oml.*, and `import pytorch_lightning as pl`)
import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from oml_lightning import ExtractorModule, MetricValCallback
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_samplers import BalanceSampler

from oml_core.models import SimpleCNNExtractor
from oml_core.retrieval import EmbeddingMetrics

sys.path.insert(0, str(Path(__file__).parent))
from lightning_helpers import mock_datasets, reference_metrics  # noqa: E402


# ------------------------------------------------------------------------------------- the seed's own code, verbatim
class CustomMetricValCallback(MetricValCallback):
    def __init__(self, *args, log_metrics_every_epoch=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_metrics_every_epoch = log_metrics_every_epoch

    def on_epoch_end(self, trainer, pl_module):
        if self.log_metrics_every_epoch:
            super().on_epoch_end(trainer, pl_module)
        else:
            # 에포크마다 결과를 구별하여 출력
            print(f"Metrics for epoch {trainer.current_epoch}:")
            for key, value in self.metric_result.items():
                print(f"{key}: {value}")


# -------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return mock_datasets(tmp_path_factory.mktemp("mock_dataset"))


def _parts(train_dataset, seed=0):
    torch.manual_seed(seed)
    model = SimpleCNNExtractor(channels=(8, 16)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)
    sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2, seed=seed)
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_sampler=sampler)
    return model, optimizer, criterion, train_loader


def test_seed_001_trains_logs_metrics_and_figures_every_epoch_and_reloads(datasets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_dataset, val_dataset = datasets
    model, optimizer, criterion, train_loader = _parts(train_dataset)
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=5)  # 16 items: the last batch is short
    logger = CSVLogger("logs")

    # 방법 02 then 방법 01, as in the seed
    metric_callback = CustomMetricValCallback(metric=EmbeddingMetrics(extra_keys=["paths"]), log_images=True)
    pl_model = ExtractorModule(model, criterion, optimizer)
    trainer = pl.Trainer(
        max_epochs=2, callbacks=[metric_callback], num_sanity_val_steps=0, logger=logger, check_val_every_n_epoch=1,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(pl_model, train_dataloaders=train_loader, val_dataloaders=val_loader)

    # metrics of every epoch; the last ones equal metrics computed without Lightning on the trained model
    assert sorted(metric_callback.metric_history) == [0, 1]
    assert metric_callback.metric_result == metric_callback.metric_history[1]
    expected = reference_metrics(model, val_dataset, extra_keys=["paths"])
    assert metric_callback.metric_result.keys() == expected.keys()
    assert {"OVERALL/cmc/5", "OVERALL/precision/5", "OVERALL/map/5"} <= expected.keys()
    for name, value in expected.items():
        assert metric_callback.metric_result[name] == pytest.approx(value, abs=1e-5), name

    # ...and they reached the Lightning logger, one row per epoch
    with open(Path(logger.log_dir) / "metrics.csv") as file:
        all_rows = list(csv.DictReader(file))
    rows = [row for row in all_rows if row.get("OVERALL/cmc/5")]
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for row in rows:
        logged = {name: float(row[name]) for name in expected}
        assert logged == pytest.approx(metric_callback.metric_history[int(row["epoch"])], abs=1e-6)
    losses = [float(row["triplet_loss_epoch"]) for row in all_rows if row.get("triplet_loss_epoch")]
    assert len(losses) == 2 and all(loss >= 0 for loss in losses)

    # figures of the worst queries, per metric and epoch, as PNG files next to the CSV logs
    figures = metric_callback.figure_paths
    assert len(figures) == 2 * 3  # epochs x (cmc, precision, map)
    for path in figures:
        assert path.is_relative_to(Path(logger.log_dir)) and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p.parent.name for p in figures} == {
        "top_5_worst_by_OVERALL_cmc_5",
        "top_5_worst_by_OVERALL_precision_5",
        "top_5_worst_by_OVERALL_map_5",
    }

    # 02. 모델 파라미터 저장: save, then torch.load and load_state_dict (seed's lines), then also safely
    checkpoint_path = "trained_model.ckpt"
    trainer.save_checkpoint(checkpoint_path)
    checkpoint = torch.load(checkpoint_path)
    pl_model.load_state_dict(checkpoint["state_dict"])
    safe = torch.load(checkpoint_path, weights_only=True)
    fresh = ExtractorModule(SimpleCNNExtractor(channels=(8, 16)), TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner()))
    fresh.load_state_dict(safe["state_dict"])
    assert any(key.startswith("model.") for key in safe["state_dict"])
    images = torch.stack([val_dataset[i]["input_tensors"] for i in range(4)])
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(images), model.eval()(images), atol=1e-6)


def test_seed_001_custom_callback_can_print_instead_of_logging(datasets, tmp_path, capsys):
    train_dataset, val_dataset = datasets
    model, optimizer, criterion, train_loader = _parts(train_dataset, seed=1)
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=8)
    metric = EmbeddingMetrics(extra_keys=["paths"], cmc_top_k=(1,), precision_top_k=(), map_top_k=(), pcf_variance=())
    metric_callback = CustomMetricValCallback(metric=metric, log_metrics_every_epoch=False)
    logger = CSVLogger(tmp_path / "logs")
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[metric_callback],
        logger=logger,
        enable_progress_bar=False,
        enable_model_summary=False,
    )  # the default num_sanity_val_steps=2: the sanity check must not count as an epoch
    trainer.fit(ExtractorModule(model, criterion, optimizer), train_dataloaders=train_loader, val_dataloaders=val_loader)
    printed = capsys.readouterr().out
    cmc1 = metric_callback.metric_result["OVERALL/cmc/1"]
    assert f"Metrics for epoch 0:\nOVERALL/cmc/1: {cmc1}\n" in printed and printed.count("Metrics for epoch") == 1
    assert cmc1 == pytest.approx(
        reference_metrics(model, val_dataset, cmc_top_k=(1,), precision_top_k=(), map_top_k=(), pcf_variance=())["OVERALL/cmc/1"]
    )
    with open(Path(logger.log_dir) / "metrics.csv") as file:
        assert "OVERALL/cmc/1" not in file.readline()  # this subclass chose not to log
