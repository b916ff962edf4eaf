"""Code that says ``import pytorch_lightning as pl`` (seed 001's line) uses ``oml_lightning.pytorch_lightning``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from torch.utils.data import DataLoader

from oml_core.retrieval import EmbeddingMetrics

sys.path.insert(0, str(Path(__file__).parent))
from lightning_ddp_script import Blobs, Embedder  # noqa: E402
from lightning_helpers import reference_metrics  # noqa: E402

ARGS = {"cmc_top_k": (1,), "precision_top_k": (), "map_top_k": (2,), "pcf_variance": ()}


def test_pytorch_lightning_trainer_with_the_pytorch_lightning_classes(tmp_path):
    from oml_lightning.pytorch_lightning import ExtractorModule, MetricValCallback

    torch.manual_seed(0)
    model = Embedder()
    pl_model = ExtractorModule(
        model, TripletLossWithMiner(margin=0.2, miner=AllTripletsMiner()), torch.optim.SGD(model.parameters(), lr=0.05)
    )
    metric_callback = MetricValCallback(metric=EmbeddingMetrics(**ARGS))
    assert isinstance(pl_model, pl.LightningModule) and isinstance(metric_callback, pl.Callback)
    trainer = pl.Trainer(
        max_epochs=1, callbacks=[metric_callback], logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, num_sanity_val_steps=0,
    )  # fmt: skip
    val = Blobs(5, 3, seed=2)
    trainer.fit(
        pl_model, train_dataloaders=DataLoader(Blobs(4, 4, seed=1), batch_size=8), val_dataloaders=DataLoader(val, batch_size=4)
    )
    assert metric_callback.metric_result == pytest.approx(reference_metrics(model, val, **ARGS), abs=1e-6)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    state = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(state["model.net.0.weight"], model.net[0].weight)


def test_each_lightning_package_accepts_only_its_own_classes():
    from oml_lightning import ExtractorModule as LightningExtractorModule

    model = Embedder()
    module = LightningExtractorModule(model, TripletLossWithMiner(margin=0.2), torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="LightningModule"):
        pl.Trainer(logger=False, enable_progress_bar=False).fit(module, train_dataloaders=DataLoader(Blobs(2, 2, seed=0)))


def test_a_clear_error_when_pytorch_lightning_is_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)  # what importing a missing package looks like
    monkeypatch.delitem(sys.modules, "oml_lightning.pytorch_lightning", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"import lightning.pytorch as pl"):
        importlib.import_module("oml_lightning.pytorch_lightning")
