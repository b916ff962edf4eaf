"""Runs OML 4.0 / pytorch-metric-learning steps for bench_mining.py, inside the peers' venv (never imported by OML).

Two modes:
  python peer_worker.py serve           JSON lines on stdin -> JSON lines on stdout (long-lived, for interleaved timings)
  python peer_worker.py one-step IMPL B K T  one all-triplets step (batch B = B/K labels x K, T threads) in a fresh
                                          process; prints wall and CPU time and peak memory
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time

sys.path.insert(0, "/work/shared/peers")
import tv_shim  # noqa: E402

tv_shim.ensure_torchvision()

import torch  # noqa: E402

D = 384
MARGIN = 0.1


def batch(size: int, n_instances: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # the same recipe as bench_mining.batch(): identical tensors in both processes (same torch version)
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(size // n_instances).repeat_interleave(n_instances)
    labels = labels[torch.randperm(size, generator=g)]
    return torch.randn(size, D, generator=g), labels


def criterion(impl: str, mining: str):  # noqa: ANN201
    if impl == "oml":
        from oml.losses.triplet import TripletLossWithMiner
        from oml.miners.inbatch_all_tri import AllTripletsMiner
        from oml.miners.inbatch_hard_tri import HardTripletsMiner

        miner = HardTripletsMiner() if mining == "hard" else AllTripletsMiner()
        return TripletLossWithMiner(margin=MARGIN, miner=miner)
    from pytorch_metric_learning import losses, miners

    loss_fn = losses.TripletMarginLoss(margin=MARGIN)
    if mining == "all":
        return lambda emb, labels: loss_fn(emb, labels)  # no miner: PML uses every triplet
    miner = miners.BatchHardMiner()
    return lambda emb, labels: loss_fn(emb, labels, miner(emb, labels))


def step(fn, features: torch.Tensor, labels: torch.Tensor) -> float:  # noqa: ANN001
    x = features.clone().requires_grad_()
    loss = fn(x, labels)
    loss.backward()
    return float(loss.detach())


def time_steps(impl: str, mining: str, size: int, n_instances: int, seed: int, reps: int, threads: int, clock: str) -> dict:
    torch.set_num_threads(threads)
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    features, labels = batch(size, n_instances, seed)
    fn = criterion(impl, mining)
    loss = step(fn, features, labels)  # warm-up
    times = []
    for _ in range(reps):
        start = timer()
        step(fn, features, labels)
        times.append(timer() - start)
    result = {"times_ms": [t * 1e3 for t in times], "median_ms": statistics.median(times) * 1e3, "loss": loss}
    if impl == "oml" and mining == "hard":
        from oml.miners.inbatch_hard_tri import HardTripletsMiner

        a, p, n = HardTripletsMiner()._sample(features, labels=labels.tolist())
        result["triplets"] = [list(map(int, a)), list(map(int, p)), list(map(int, n))]
    return result


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = time_steps(**request)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


def one_step(impl: str, size: int, n_instances: int, threads: int) -> None:
    torch.set_num_threads(threads)
    features, labels = batch(size, n_instances, seed=0)
    fn = criterion(impl, "all")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    try:
        loss = step(fn, features, labels)
    except (MemoryError, RuntimeError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {str(exc)[:120]}"}))
        return
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_mb": peak, "loss": loss}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        one_step(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
