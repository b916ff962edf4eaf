"""oml_lightning's parts one at a time, on tiny tensors: DDP splitting, figure routing, argument checks, schedulers
and freezing."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import matplotlib
import pytest
import torch
from oml_lightning import (
    ExtractorModule,
    LightningAdapterError,
    MetricValCallback,
    PairwiseModule,
    RankBatchSampler,
    loader_for_rank,
    log_figure,
)
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from torch.utils.data import DataLoader, DistributedSampler

from oml_core.retrieval import EmbeddingMetrics

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).parent))
from lightning_ddp_script import Blobs, Embedder  # noqa: E402

TRAINER_ARGS = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}


# ------------------------------------------------------------------------------------------------ DDP splitting
@pytest.mark.parametrize("n_batches", [0, 1, 3, 4, 7])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_rank_batch_sampler_gives_every_rank_as_many_batches_and_covers_the_epoch(n_batches, world_size):
    batches = [[10 * i, 10 * i + 1] for i in range(n_batches)]
    shares = [list(RankBatchSampler(batches, rank, world_size)) for rank in range(world_size)]
    per_rank = math.ceil(n_batches / world_size)
    assert all(len(share) == per_rank == len(RankBatchSampler(batches, rank, world_size)) for rank, share in enumerate(shares))
    seen = [batch for share in shares for batch in share]
    padding = [batches[j % n_batches] for j in range(n_batches, per_rank * world_size)]
    assert sorted(map(tuple, seen)) == sorted(map(tuple, batches + padding))  # every batch, plus repeats to even out
    # rank r takes global batches r, r + world_size, ... (in order)
    for rank, share in enumerate(shares):
        assert share == [batches[j % n_batches] for j in range(rank, per_rank * world_size, world_size)]


def test_rank_batch_sampler_refuses_a_bad_rank():
    with pytest.raises(LightningAdapterError, match="rank"):
        RankBatchSampler([[0]], rank=2, world_size=2)


def test_loader_for_rank_splits_plain_and_batch_sampler_loaders():
    dataset = Blobs(5, 3, seed=0)  # 15 items
    plain = DataLoader(dataset, batch_size=4)
    assert loader_for_rank(plain, 0, 1, train=False) is plain
    parts = [loader_for_rank(plain, rank, 2, train=False) for rank in (0, 1)]
    assert all(isinstance(p.sampler, DistributedSampler) and not p.sampler.shuffle for p in parts)
    indices = [i for p in parts for batch in p for i in batch["idx"].tolist()]
    assert len(indices) == 16 and set(indices) == set(range(15))  # one padded duplicate, nothing missing

    custom = DataLoader(dataset, batch_sampler=[[0, 1], [2, 3], [4, 5]])
    split = loader_for_rank(custom, 1, 2, train=False)
    assert isinstance(split.batch_sampler, RankBatchSampler) and not split.batch_sampler.broadcast
    assert [b["idx"].tolist() for b in split] == [[2, 3], [0, 1]]
    # for training, rank 0 draws the batches for everyone (seen working in test_lightning_ddp.py)
    assert loader_for_rank(custom, 1, 2, train=True).batch_sampler.broadcast
    with pytest.raises(LightningAdapterError, match="initialised torch.distributed"):
        list(loader_for_rank(custom, 1, 2, train=True))

    already = DataLoader(dataset, batch_sampler=SimpleNamespace(world_size=2, __iter__=None))
    assert loader_for_rank(already, 1, 2, train=True) is already


# ------------------------------------------------------------------------------------------------ figures
class _Experiment:
    def __init__(self):
        self.figures = []

    def add_figure(self, tag, figure, global_step=None, close=True):
        self.figures.append((tag, global_step, close))


def test_log_figure_uses_tensorboard_like_loggers_else_writes_png(tmp_path):
    import matplotlib.pyplot as plt

    figure = plt.figure()
    board = SimpleNamespace(experiment=_Experiment())
    assert log_figure(SimpleNamespace(loggers=[board]), figure, "images/worst", step=3) is None
    assert board.experiment.figures == [("images/worst", 3, False)]

    trainer = SimpleNamespace(loggers=[], default_root_dir=str(tmp_path))
    path = log_figure(trainer, figure, "images/top 5 worst by OVERALL/cmc/1", step=2)
    plt.close(figure)
    assert path == tmp_path / "images" / "top_5_worst_by_OVERALL" / "cmc" / "1" / "epoch=2.png"
    assert path.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------------------ argument checks
def test_arguments_are_checked_with_clear_messages():
    model = Embedder()
    with pytest.raises(LightningAdapterError, match=r"extra_keys=\(\"paths\",\)"):
        MetricValCallback(metric=EmbeddingMetrics(), log_images=True)
    with pytest.raises(LightningAdapterError, match="update_data"):
        MetricValCallback(metric=object())
    with pytest.raises(LightningAdapterError, match="nn.Module"):
        ExtractorModule(lambda x: x)
    with pytest.raises(LightningAdapterError, match="'step' or 'epoch'"):
        ExtractorModule(model, scheduler_interval="batch")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LightningAdapterError, match="scheduler_monitor_metric"):
        ExtractorModule(model, None, optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer))
    with pytest.raises(LightningAdapterError, match=r"freeze\(\) and unfreeze\(\)"):
        ExtractorModule(model, freeze_n_epochs=1)
    with pytest.raises(LightningAdapterError, match="no optimizer"):
        ExtractorModule(model).configure_optimizers()
    with pytest.raises(LightningAdapterError, match="no criterion"):
        ExtractorModule(model).training_step({"input_tensors": torch.zeros(2, 12), "labels": torch.zeros(2)}, 0)
    with pytest.raises(LightningAdapterError, match="no 'input_tensors'; it has images, labels"):
        ExtractorModule(model, TripletLossWithMiner(margin=0.1)).training_step({"images": 0, "labels": 0}, 0)
    with pytest.raises(LightningAdapterError, match="PairsMiner"):
        PairwiseModule(model, pairs_miner=None)


def test_configure_optimizers_passes_the_scheduler_as_oml_does():
    model = Embedder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    assert ExtractorModule(model, None, optimizer).configure_optimizers() is optimizer
    optimizers, schedulers = ExtractorModule(model, None, optimizer, step, scheduler_interval="epoch").configure_optimizers()
    assert optimizers == [optimizer] and schedulers == [{"scheduler": step, "interval": "epoch", "frequency": 1}]
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    _, (config,) = ExtractorModule(
        model, None, optimizer, plateau, scheduler_monitor_metric="OVERALL/cmc/1"
    ).configure_optimizers()
    assert config["monitor"] == "OVERALL/cmc/1"


class FreezableEmbedder(Embedder):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def freeze(self):
        self.calls.append("freeze")

    def unfreeze(self):
        self.calls.append("unfreeze")


def test_freeze_n_epochs_and_a_stepwise_scheduler_in_a_real_fit():
    torch.manual_seed(0)
    model = FreezableEmbedder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    loader = DataLoader(Blobs(4, 4, seed=0), batch_size=8, shuffle=True)  # 2 steps per epoch
    module = ExtractorModule(
        model, TripletLossWithMiner(margin=0.2, miner=AllTripletsMiner()), optimizer, scheduler, freeze_n_epochs=2
    )
    pl.Trainer(max_epochs=3, **TRAINER_ARGS).fit(module, train_dataloaders=loader)
    assert model.calls == ["freeze", "freeze", "unfreeze"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**6)  # stepped after each of the 6 steps
