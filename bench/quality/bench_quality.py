"""Quality on real data: the fonts dataset (identity = character, instances = font faces), unseen characters.

    .venv/bin/oml datasets fonts fonts_dataset                       # after: bash scripts/install_fonts.sh --full
    .venv/bin/python bench/quality/bench_quality.py fonts_dataset    # --steps 200 --seeds 0 1 2 (defaults)

Side by side, in one run, on the same split and the same preprocessed tensors (images normalised with ImageNet
statistics, grey replicated to 3 channels, no augmentation), at the same number of optimisation steps:

- ``raw``: the pixels as embeddings;
- ``random``: ResNet-18 with random initialisation, untrained;
- ``oml``: OML 4.0's recipe (ResNet-18 from scratch, TripletLossWithMiner(0.2, HardTripletsMiner()),
  BalanceSampler(16, 4), Adam 3e-4), run by OML 4.0 itself in the peers' venv (peer_worker.py);
- ``same``: the same recipe with this project's classes;
- ``best``: this project's best recipe, configs/fonts_best.yaml (its components built through the registries).

All use one training loop (sample a batch, forward, loss, backward, step), so the per-step times compare the
recipes, not data loading. Metrics on the validation characters, every image a query against all others (1 vs
rest): CMC@1, CMC@5, mAP@5; mean +- std over the seeds. Each seed fixes the initialisation and the batches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PEERS_PYTHON = Path(os.environ.get("OML_PEERS_PYTHON", "/work/peers-venv/bin/python"))
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
METHODS = ("raw", "random", "oml", "same", "best")
TRAINED = ("oml", "same", "best")


def load_split(dataset: Path, faces_limit: int | None) -> dict[str, Any]:
    df = pd.read_csv(dataset / "df.csv")
    if faces_limit:
        df = df.groupby("label", group_keys=False).head(faces_limit)

    def tensors(rows: pd.DataFrame) -> np.ndarray:
        grey = np.stack([np.asarray(Image.open(dataset / p).convert("L"), dtype=np.float32) / 255.0 for p in rows["path"]])
        return ((np.repeat(grey[:, None], 3, axis=1) - MEAN) / STD).astype(np.float32)

    train, val = df[df["split"] == "train"], df[df["split"] == "validation"]
    return {
        "train_x": tensors(train),
        "train_y": train["label"].to_numpy(np.int64),
        "val_x": tensors(val),
        "val_y": val["label"].to_numpy(np.int64),
    }


def retrieval_metrics(embeddings: torch.Tensor, labels: torch.Tensor, metric: str = "euclidean") -> dict[str, float]:
    """CMC@1, CMC@5, mAP@5, each item a query against all the others (this project's metric functions)."""
    from oml_core.retrieval.metrics import calc_cmc, calc_map

    x = embeddings.double()
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    tops = []
    for start in range(0, len(x), 1024):
        dist = torch.cdist(x[start : start + 1024], x)
        rows = torch.arange(start, min(start + 1024, len(x)))
        dist[torch.arange(len(rows)), rows] = float("inf")
        tops.append(dist.topk(5, dim=1, largest=False).indices)
    top = torch.cat(tops)
    correct = labels[top] == labels[:, None]
    n_gt = torch.bincount(labels)[labels] - 1
    cmc1, cmc5 = calc_cmc(correct, n_gt, (1, 5))
    (map5,) = calc_map(correct, n_gt, (5,))
    return {"cmc@1": float(cmc1.mean()), "cmc@5": float(cmc5.mean()), "map@5": float(map5.mean())}


def embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])


def train_loop(
    model: Any, criterion: Any, sampler: Any, optimizer: Any, scheduler: Any, data: dict[str, Any], steps: int
) -> dict[str, float]:
    x, y = torch.from_numpy(data["train_x"]), torch.from_numpy(data["train_y"])
    model.train()
    done, wall, cpu, epoch = 0, 0.0, 0.0, 0
    loss = torch.zeros(())
    while done < steps:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for batch in sampler:
            if done == steps:
                break
            idx = torch.as_tensor(batch)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            loss = criterion(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            wall += time.perf_counter() - start_wall
            cpu += time.process_time() - start_cpu
            done += 1
        epoch += 1
    return {"train_wall_s": wall, "train_cpu_s": cpu, "steps": done, "loss": float(loss.detach())}


def same_recipe(data: dict[str, Any], seed: int, steps: int) -> tuple[torch.nn.Module, dict[str, float], str]:
    from oml_losses import TripletLossWithMiner
    from oml_miners import HardTripletsMiner
    from oml_resnet import ResnetExtractor
    from oml_samplers import BalanceSampler

    torch.manual_seed(seed)
    model = ResnetExtractor(None, arch="resnet18")
    criterion = TripletLossWithMiner(margin=0.2, miner=HardTripletsMiner())
    sampler = BalanceSampler(data["train_y"].tolist(), n_labels=16, n_instances=4, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    return model, train_loop(model, criterion, sampler, optimizer, None, data, steps), "euclidean"


def best_recipe(data: dict[str, Any], seed: int, steps: int, config: Path) -> tuple[torch.nn.Module, dict[str, float], str]:
    """The components of ``config`` built as ``oml train`` builds them; the schedule spans ``steps``."""
    from oml_core.host import Host
    from oml_core.pipelines import load_pipeline_config
    from oml_core.pipelines.train import build_optimizer, build_scheduler

    host = Host()
    cfg = load_pipeline_config(host, config, pipeline="train")
    torch.manual_seed(seed)
    model = host.registries.extractors.create(cfg.extractor)
    labels = data["train_y"]
    criterion = host.registries.losses.create_in_context(
        cfg.criterion, in_features=int(model.feat_dim), num_classes=int(labels.max()) + 1
    )
    sampler = host.registries.samplers.create_in_context(cfg.sampler, labels=labels.tolist(), seed=seed)
    optimizer = build_optimizer(host, cfg.optimizer, {"backbone": model, "head": criterion})
    # one "epoch" of ``steps`` batches: a per-step schedule spans the run, as ``oml train`` sizes it for its epochs
    schedule = build_scheduler(host, cfg.scheduler, optimizer, 1, steps)
    if schedule is not None and schedule.interval != "step":
        raise SystemExit(f"{config}: the bench steps the scheduler every batch; set scheduler.interval: step")
    scheduler = schedule.scheduler if schedule is not None else None
    return model, train_loop(model, criterion, sampler, optimizer, scheduler, data, steps), cfg.validation.metric


def oml_recipe(data_file: Path, seed: int, steps: int, threads: int, workdir: Path) -> tuple[torch.Tensor, dict[str, float]]:
    out = workdir / f"oml_{seed}.npy"
    command = [
        str(PEERS_PYTHON),
        str(Path(__file__).with_name("peer_worker.py")),
        str(data_file),
        str(steps),
        str(seed),
        str(threads),
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"OML's run failed:\n{result.stderr[-3000:]}")
    info = json.loads(result.stdout.strip().splitlines()[-1])
    return torch.from_numpy(np.load(out)), info


def fmt(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def print_table(results: dict[str, list[dict[str, float]]], methods: list[str]) -> None:
    print("\n| method | CMC@1 | CMC@5 | mAP@5 | error 1-CMC@1 | train wall (s) | s/step (wall) | s/step (CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for method in methods:
        rows = results[method]
        cells = [fmt([r[k] for r in rows]) for k in ("cmc@1", "cmc@5", "map@5")]
        cells.append(fmt([1 - r["cmc@1"] for r in rows]))
        if method in TRAINED:
            cells.append(fmt([r["train_wall_s"] for r in rows], 0))
            cells.append(fmt([r["train_wall_s"] / r["steps"] for r in rows], 2))
            cells.append(fmt([r["train_cpu_s"] / r["steps"] for r in rows], 2))
        else:
            cells += ["-", "-", "-"]
        print(f"| {method} | " + " | ".join(cells) + " |")
    if "oml" in results and "best" in results and results["oml"] and results["best"]:
        err_oml = statistics.mean(1 - r["cmc@1"] for r in results["oml"])
        err_best = statistics.mean(1 - r["cmc@1"] for r in results["best"])
        step_oml = statistics.mean(r["train_cpu_s"] / r["steps"] for r in results["oml"])
        step_best = statistics.mean(r["train_cpu_s"] / r["steps"] for r in results["best"])
        print(
            f"\nbest / oml: error {err_best / err_oml:.2f}x (target <= 0.5), "
            f"CPU time per step {step_best / step_oml:.2f}x (target <= 1)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="folder written by 'oml datasets fonts'")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "fonts_best.yaml", help="the 'best' recipe")
    parser.add_argument("--faces", type=int, default=None, help="use at most this many faces per character")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="print the table of runs saved with --json")
    args = parser.parse_args()
    if args.merge:
        merged: dict[str, list[dict[str, float]]] = {}
        for path in args.merge:
            for method, rows in json.loads(path.read_text(encoding="utf-8")).items():
                merged.setdefault(method, []).extend(rows)
        print_table(merged, [m for m in METHODS if merged.get(m)])
        return
    torch.set_num_threads(args.threads)

    data = load_split(args.dataset, args.faces)
    val_y = torch.from_numpy(data["val_y"].copy())
    print(
        f"# fonts dataset {args.dataset}: {len(data['train_y'])} train images of {len(set(data['train_y']))} characters, "
        f"{len(val_y)} validation images of {len(set(data['val_y'].tolist()))} unseen characters, "
        f"{data['train_x'].shape[-1]} px; {args.steps} steps; seeds {args.seeds}; {args.threads} torch threads; "
        f"load average at start {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
    if "raw" in args.methods:
        results["raw"].append(retrieval_metrics(torch.from_numpy(data["val_x"]).flatten(1), val_y))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data_file = workdir / "data.npz"
        if "oml" in args.methods:
            np.savez(data_file, train_x=data["train_x"], train_y=data["train_y"], val_x=data["val_x"])
        for seed in args.seeds:
            for method in args.methods:
                start = time.perf_counter()
                if method == "raw":
                    continue
                if method == "random":
                    from oml_resnet import ResnetExtractor

                    torch.manual_seed(seed)
                    row = retrieval_metrics(embed(ResnetExtractor(None, arch="resnet18"), torch.from_numpy(data["val_x"])), val_y)
                elif method == "oml":
                    embeddings, info = oml_recipe(data_file, seed, args.steps, args.threads, workdir)
                    row = retrieval_metrics(embeddings, val_y) | info
                else:
                    if method == "best":
                        digest = hashlib.sha256(args.config.read_bytes()).hexdigest()[:12]
                        print(f"seed {seed} best: {args.config} (sha256 {digest})", flush=True)
                    recipe = (
                        same_recipe(data, seed, args.steps)
                        if method == "same"
                        else best_recipe(data, seed, args.steps, args.config)
                    )
                    model, info, metric = recipe
                    row = retrieval_metrics(embed(model, torch.from_numpy(data["val_x"])), val_y, metric) | info
                row["total_wall_s"] = time.perf_counter() - start
                row["load"] = os.getloadavg()[0]
                results[method].append(row)
                print(f"seed {seed} {method}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)

    print_table(results, args.methods)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
