"""Engine overhead: the same model, loss, sampler and data for the same steps, through the Engine (progress bar,
CSV + TensorBoard loggers, per-epoch checkpoints, per-item seeding) versus a hand-written PyTorch loop.

    .venv/bin/python bench/engine/bench_engine.py [--repeats 3] [--epochs 2]

After one untimed epoch of each (imports, allocator and CPU warm-up), runs alternate (engine, plain, plain, engine,
...) in one process. Two figures are printed: the ratio of the medians, and the median of the per-repeat ratios
(each engine run against the plain run next to it in time, which cancels a machine that drifts faster or slower
during the benchmark). CPU time of this process with one torch thread is the measure (wall time on a shared 2-core
machine is noise); ``--wall`` uses wall-clock time instead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from oml_core import Host
from oml_core.data import DatasetWithLabels, download_mock_dataset
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.engine import Engine, EngineOptions, seed_everything


def components(host: Host, df, root: Path):
    seed_everything(0)
    dataset = DatasetWithLabels(df, dataset_root=root, transform=get_normalisation_resize_torch(64))
    model = host.registries.extractors.create("resnet", {"arch": "resnet18"})
    criterion = host.registries.losses.create("triplet_with_miner", {"margin": 0.2, "miner": {"type": "hard_triplets"}})
    sampler = host.registries.samplers.create("balance", {"n_labels": 8, "n_instances": 4}, labels=dataset.get_labels(), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return dataset, model, criterion, sampler, optimizer


def run_plain(host: Host, df, root: Path, epochs: int) -> int:
    dataset, model, criterion, sampler, optimizer = components(host, df, root)
    steps = 0
    model.train()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in torch.utils.data.DataLoader(dataset, batch_sampler=sampler):
            loss = criterion(model(batch["input_tensors"]), batch["labels"])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
    return steps


def run_engine(host: Host, df, root: Path, epochs: int, run_dir: Path) -> int:
    dataset, model, criterion, sampler, optimizer = components(host, df, root)
    loggers = [
        host.registries.loggers.create("csv", run_dir=run_dir),
        host.registries.loggers.create("tensorboard", run_dir=run_dir),
    ]
    options = EngineOptions(max_epochs=epochs, run_dir=str(run_dir), progress_bar=True, device="cpu", amp=False)
    engine = Engine(model=model, criterion=criterion, optimizer=optimizer, train_dataset=dataset, batch_sampler=sampler,
                    options=options, loggers=loggers, host=host)  # fmt: skip
    state = engine.fit()
    engine.close()
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    return state.step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--labels", type=int, default=240, help="mock identities (2/3 train); 240 -> 20 steps an epoch")
    parser.add_argument("--wall", action="store_true")
    parser.add_argument("--warmup", type=int, default=1, help="untimed 1-epoch runs of each before measuring")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clock = time.perf_counter if args.wall else time.process_time
    tmp = Path(tempfile.mkdtemp(prefix="oml-bench-engine-"))
    df_train, _ = download_mock_dataset(tmp / "mock", n_labels=args.labels, n_instances=4, im_size=64)
    host = Host()
    for _ in range(args.warmup):
        run_engine(host, df_train, tmp / "mock", 1, tmp / "warmup")
        run_plain(host, df_train, tmp / "mock", 1)
    times: dict[str, list[float]] = {"engine": [], "plain": []}
    steps = {}
    for repeat in range(args.repeats):
        for kind in ("engine", "plain") if repeat % 2 == 0 else ("plain", "engine"):  # alternate to cancel drift
            start = clock()
            if kind == "engine":
                steps[kind] = run_engine(host, df_train, tmp / "mock", args.epochs, tmp / f"run{repeat}")
            else:
                steps[kind] = run_plain(host, df_train, tmp / "mock", args.epochs)
            times[kind].append(clock() - start)
            print(f"  {kind:<6} run {repeat + 1}: {times[kind][-1]:.2f} s ({steps[kind]} steps)", file=sys.stderr)
    assert steps["engine"] == steps["plain"], steps
    engine, plain = statistics.median(times["engine"]), statistics.median(times["plain"])
    measure = "wall" if args.wall else "CPU"
    print(f"steps per run: {steps['plain']}  ({args.epochs} epochs, resnet18 64px, hard-triplet loss, balance sampler 8x4)")
    print(f"median {measure} time: engine {engine:.2f} s, plain loop {plain:.2f} s")
    paired = statistics.median(e / p for e, p in zip(times["engine"], times["plain"], strict=True))
    print(f"engine overhead: {100 * (engine / plain - 1):+.2f}% by the medians, {100 * (paired - 1):+.2f}% by the "
          "median of per-repeat ratios  (target: at most +3%)")  # fmt: skip


if __name__ == "__main__":
    main()
