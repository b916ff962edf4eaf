"""Run by test_lightning_ddp.py: ``python lightning_ddp_script.py OUT_DIR`` trains with ``strategy="ddp"`` on 2 CPU
processes (gloo) and writes what each rank saw and computed to ``OUT_DIR/rank<r>.json`` (rank 0 also saves the
trained weights). Lightning starts the second process by running this file again."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from oml_lightning import ExtractorModuleDDP, MetricValCallback
from oml_losses import TripletLossWithMiner
from oml_miners import AllTripletsMiner
from oml_samplers import BalanceSampler
from torch import nn
from torch.utils.data import DataLoader, Dataset

from oml_core.retrieval import EmbeddingMetrics

METRIC_ARGS = {"cmc_top_k": (1, 3), "precision_top_k": (3,), "map_top_k": (3,), "pcf_variance": ()}


class Blobs(Dataset):
    """``n_labels x n_instances`` noisy copies of a random centre per label (fixed by ``seed``)."""

    def __init__(self, n_labels: int, n_instances: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n_labels).repeat_interleave(n_instances)
        centres = torch.randn(n_labels, 12, generator=generator)
        self.x = centres[self.labels] + 0.8 * torch.randn(len(self.labels), 12, generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        # every item is both a query and a gallery item; the last of each label is a query only
        last = i % 3 == 2
        return {"input_tensors": self.x[i], "labels": int(self.labels[i]), "idx": i, "is_query": True, "is_gallery": not last}


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.feat_dim = 4
        self.net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SeenBatches(pl.Callback):
    def __init__(self) -> None:
        self.seen: dict[int, list[list[int]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.setdefault(trainer.current_epoch, []).append(batch["idx"].tolist())


def main(out: Path) -> None:
    torch.manual_seed(0)
    train, val = Blobs(8, 4, seed=1), Blobs(5, 3, seed=2)  # 15 validation items: not divisible by 2 processes
    process = int(os.environ.get("LOCAL_RANK", "0"))
    # a different sampler seed in each process: rank 0 draws the batches for everyone
    sampler = BalanceSampler(train.labels.tolist(), n_labels=2, n_instances=2, seed=100 + process)
    model = Embedder()
    module = ExtractorModuleDDP(
        extractor=model,
        criterion=TripletLossWithMiner(margin=0.2, miner=AllTripletsMiner()),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        loaders_train=DataLoader(train, batch_sampler=sampler),
        loaders_val=DataLoader(val, batch_size=4),
    )
    metric_callback = MetricValCallback(metric=EmbeddingMetrics(**METRIC_ARGS))
    seen = SeenBatches()
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, use_distributed_sampler=False,
        callbacks=[metric_callback, seen], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module)
    rank = trainer.global_rank
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("OVERALL/")}
    report = {
        "rank": rank,
        "world_size": trainer.world_size,
        "process": process,
        "sampler_seed": sampler.seed,
        "metric_history": metric_callback.metric_history,
        "logged": logged,
        "seen": seen.seen,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    if rank == 0:
        torch.save(model.state_dict(), out / "model.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
