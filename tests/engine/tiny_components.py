"""Tiny, fast stand-ins for real components, so engine tests exercise the engine and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from oml_core import Host, hookimpl
from oml_core.engine import Engine, EngineOptions


class NoisyBlobs(torch.utils.data.Dataset):
    """Items are label-dependent vectors plus random noise drawn at read time (a random augmentation)."""

    def __init__(self, n_labels: int = 6, n_instances: int = 4, dim: int = 12) -> None:
        generator = torch.Generator().manual_seed(123)
        self.centres = torch.randn(n_labels, dim, generator=generator)
        self.labels = torch.arange(n_labels).repeat_interleave(n_instances)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        label = int(self.labels[index])
        return {"input_tensors": self.centres[label] + 0.5 * torch.randn(self.centres.shape[1]), "labels": label, "idx": index}


class SeededBatches:
    """A deterministic batch sampler: a permutation per (seed, epoch), cut into batches."""

    def __init__(self, n_items: int, batch_size: int, seed: int = 0) -> None:
        self.n_items, self.batch_size, self.seed, self.epoch = n_items, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n_items, generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch)).tolist()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        return self.n_items // self.batch_size


class PullTogether(nn.Module):
    """Same-label embeddings closer than different-label ones by a margin; dropout-free, with random pair choice
    (global RNG) so that RNG restoration matters for exact resume."""

    def __init__(self) -> None:
        super().__init__()
        self.last_logs: dict[str, float] = {}

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(embeddings, embeddings)
        same = labels[:, None] == labels[None, :]
        weights = torch.rand(len(labels), len(labels))  # random weighting: exercises the global RNG
        positive = (distances * same * weights).mean()
        negative = torch.relu(1.0 - distances)[~same].mean()
        self.last_logs = {"positive": positive.item(), "negative": negative.item()}
        return positive + negative


class Embedder(nn.Module):
    def __init__(self, dim: int = 12, feat_dim: int = 4) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.net = nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, feat_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ProbeValidation:
    """A cheap, deterministic validation: minus the mean distance of the model's embeddings of fixed probes to
    their label centre (higher is better), so that monitors, best.pt and the history have something to follow."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(7)
        self.probes = torch.randn(12, 12, generator=generator)
        self.labels = torch.arange(3).repeat_interleave(4)

    @hookimpl
    def oml_validate(self, engine) -> dict:
        engine.model.eval()
        with torch.no_grad():
            embeddings = engine.model(self.probes)
        centres = torch.stack([embeddings[self.labels == c].mean(0) for c in range(3)])
        spread = (embeddings - centres[self.labels]).norm(dim=1).mean()
        return {"OVERALL": {"probe": {"score": -float(spread)}}}


class FlatValidation:
    """Validation that always gives the same metric: nothing ever improves after the first one."""

    @hookimpl
    def oml_validate(self, engine):
        return {"OVERALL": {"cmc": {1: 0.5}}}


def make_engine(
    run_dir: Path | None, *, plugins=(), epochs: int = 3, host=None, validate: bool = False, csv: bool = False, **options
) -> Engine:
    from oml_core.engine.loggers import CSVLogger

    torch.manual_seed(0)
    model = Embedder()
    dataset = NoisyBlobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    options.setdefault("progress_bar", False)
    if validate:
        options.setdefault("monitor", "OVERALL/probe/score")
        plugins = [ProbeValidation(), *plugins]
    engine = Engine(
        model=model,
        criterion=PullTogether(),
        optimizer=optimizer,
        scheduler=scheduler,
        train_dataset=dataset,
        batch_sampler=SeededBatches(len(dataset), batch_size=6),
        options=EngineOptions(max_epochs=epochs, run_dir=str(run_dir) if run_dir else None, **options),
        plugins=plugins,
        host=host if host is not None else Host(entry_points=False, env={}),
        loggers=[CSVLogger(run_dir=run_dir)] if csv and run_dir is not None else [],
    )
    if validate:
        engine.val_dataset = dataset  # only switches the built-in schedule on: ProbeValidation computes the metrics
    return engine
