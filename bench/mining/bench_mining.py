"""Mining + triplet loss, forward and backward, against OML 4.0 and pytorch-metric-learning when installed.

    .venv/bin/python bench/mining/bench_mining.py            # everything (OML's all-triplets step at 512 takes ~1 min)
    .venv/bin/python bench/mining/bench_mining.py --quick    # fewer repetitions, no all-triplets peers

1. Hard-triplet mining + triplet loss (margin 0.1), batches of 256/512/1024 = labels x 4 instances, D = 384: median
   time of a forward + backward step. The peers run in a long-lived process of .venv-peers; our and their
   repetitions alternate in two rounds so that a change in machine load hits both. Also checks that our hard
   triplets are exactly OML's.
2. All-triplets mining + loss (the seeds' default) at 512 and 1024: one step each in a fresh process, time and
   peak memory growth (ru_maxrss). OML runs under an address-space limit (``--oml-limit-gb``) so that running out
   of memory ends its process, not the machine.

By default every process uses one torch thread and the clock is the CPU time of that thread: on an idle machine it
equals the wall time, and unlike the wall time it does not depend on what else the machine is running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
D = 384
N_INSTANCES = 4
MARGIN = 0.1
IMPLS = ("ours", "oml", "pml")


def batch(size: int, n_instances: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recipe as peer_worker.batch(): identical tensors in both processes (same torch version)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(size // n_instances).repeat_interleave(n_instances)
    labels = labels[torch.randperm(size, generator=g)]
    return torch.randn(size, D, generator=g), labels


def our_criterion(mining: str) -> Any:
    from oml_losses import TripletLossWithMiner
    from oml_miners import AllTripletsMiner, HardTripletsMiner

    return TripletLossWithMiner(margin=MARGIN, miner=HardTripletsMiner() if mining == "hard" else AllTripletsMiner())


def step(fn: Any, features: torch.Tensor, labels: torch.Tensor) -> float:
    x = features.clone().requires_grad_()
    loss = fn(x, labels)
    loss.backward()
    return float(loss.detach())


def time_ours(size: int, reps: int, clock: str) -> dict[str, Any]:
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    features, labels = batch(size, N_INSTANCES, seed=size)
    fn = our_criterion("hard")
    loss = step(fn, features, labels)  # warm-up
    times = []
    for _ in range(reps):
        start = timer()
        step(fn, features, labels)
        times.append((timer() - start) * 1e3)
    return {"times_ms": times, "loss": loss}


class Peers:
    """The long-lived peers process; ``ask`` returns None when the peers are not installed or a step fails."""

    def __init__(self, enabled: bool = True) -> None:
        self.proc: subprocess.Popen[str] | None = None
        if enabled and PEERS_PYTHON.exists():
            command = [str(PEERS_PYTHON), str(HERE / "peer_worker.py"), "serve"]
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **request: Any) -> dict[str, Any] | None:
        if self.proc is None or self.proc.stdin is None or self.proc.stdout is None:
            return None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            print(f"  peer {request['impl']} failed: {reply['error']}")
            return None
        return reply

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def hard_mining(sizes: list[int], reps: int, peers: Peers, threads: int, clock: str) -> list[str]:
    from oml_miners import HardTripletsMiner

    rows = [
        "| batch | ours (ms) | OML 4.0 (ms) | PML 2.9 (ms) | OML / ours | PML / ours | same triplets as OML |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        losses: dict[str, float] = {}
        same = "n/a"
        for round_ in range(2):  # alternate: ours, OML, PML, ours, OML, PML
            ours = time_ours(size, reps, clock)
            times["ours"] += ours["times_ms"]
            losses["ours"] = ours["loss"]
            for impl in ("oml", "pml"):
                request = {"impl": impl, "mining": "hard", "size": size, "n_instances": N_INSTANCES, "seed": size}
                reply = peers.ask(**request, reps=reps, threads=threads, clock=clock)
                if reply is None:
                    continue
                times[impl] += reply["times_ms"]
                losses[impl] = reply["loss"]
                if "triplets" in reply and round_ == 0:
                    features, labels = batch(size, N_INSTANCES, seed=size)
                    mine = [t.tolist() for t in HardTripletsMiner().sample(features, labels)]
                    same = "yes" if mine == reply["triplets"] else "NO"
        med = {impl: statistics.median(v) if v else None for impl, v in times.items()}
        ours_ms = med["ours"]
        assert ours_ms is not None
        ratios = ["-" if med[impl] is None else f"{med[impl] / ours_ms:.2f}x" for impl in ("oml", "pml")]  # type: ignore[operator]
        rows.append(f"| {size} | {_ms(ours_ms)} | {_ms(med['oml'])} | {_ms(med['pml'])} | {ratios[0]} | {ratios[1]} | {same} |")
        print(f"  hard {size}: {rows[-1]}   losses {losses}", flush=True)
    return rows


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def one_step_ours(size: int, threads: int) -> None:
    torch.set_num_threads(threads)
    features, labels = batch(size, N_INSTANCES, seed=0)
    fn = our_criterion("all")
    step(fn, features[:8], labels[:8])  # imports and first-call allocations out of the measurement
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    loss = step(fn, features, labels)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_mb": peak, "loss": loss}))


def run_one_step(command: list[str], limit_gb: float | None = None) -> dict[str, Any]:
    def limit() -> None:
        if limit_gb is not None:
            size = int(limit_gb * 1024**3)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    out = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {out.returncode}: {tail[:160]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _all_cells(impl: str, result: dict[str, Any], clock: str, limit_gb: float) -> list[str]:
    if "error" not in result:
        seconds = result["cpu_seconds"] if clock == "cpu" else result["seconds"]
        return [f"{seconds:.3f} s", f"{result['peak_mb']:.0f} MB"]
    error = result["error"].lower()
    if impl == "oml" and ("memory" in error or "alloc" in error):
        return ["out of memory", f"> {limit_gb:.0f} GB (limit)"]
    return [result["error"], "-"]


def all_triplets(sizes: list[int], with_peers: bool, limit_gb: float, threads: int, clock: str) -> list[str]:
    rows = [
        "| batch | triplets | ours: time | ours: peak memory | OML 4.0: time | OML 4.0: peak memory "
        "| PML 2.9: time | PML 2.9: peak memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        n_triplets = size * (N_INSTANCES - 1) * (size - N_INSTANCES)
        results = {"ours": run_one_step([sys.executable, __file__, "--one-step", str(size), "--threads", str(threads)])}
        for impl in ("oml", "pml"):
            limit = limit_gb if impl == "oml" else None
            if not (with_peers and PEERS_PYTHON.exists()):
                results[impl] = {"error": "not run"}
            elif limit is not None and available_gb() < limit + 2:
                results[impl] = {"error": f"skipped: {available_gb():.1f} GB available, the limit is {limit} GB"}
            else:
                worker = [str(PEERS_PYTHON), str(HERE / "peer_worker.py")]
                results[impl] = run_one_step([*worker, "one-step", impl, str(size), str(N_INSTANCES), str(threads)], limit)
        cells = [str(size), f"{n_triplets / 1e6:.2f} M"]
        for impl in IMPLS:
            cells += _all_cells(impl, results[impl], clock, limit_gb)
        rows.append("| " + " | ".join(cells) + " |")
        print(f"  all {size}: {rows[-1]}   {json.dumps(results)}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 repetitions, no all-triplets peers")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per round (2 rounds)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--oml-limit-gb", type=float, default=12.0, help="address-space limit of OML's all-triplets process")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every process (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="CPU time of the stepping thread, or elapsed")
    parser.add_argument("--only", choices=("hard", "all"), help="run one of the two benchmarks")
    parser.add_argument("--one-step", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_step:
        one_step_ours(args.one_step, args.threads)
        return
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures one thread: use --threads 1, or --clock wall")
    torch.set_num_threads(args.threads)
    reps = 5 if args.quick else args.reps
    use_peers = PEERS_PYTHON.exists() and not args.no_peers
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
        f"{args.threads} thread(s), {args.clock} clock; peers: {'yes' if use_peers else 'no'}",
        flush=True,
    )
    if args.only != "all":
        peers = Peers(enabled=use_peers)
        try:
            hard = hard_mining([256, 512, 1024], reps, peers, args.threads, args.clock)
        finally:
            peers.close()
        print("\n## hard-triplet mining + triplet loss, forward + backward (median)\n")
        print("\n".join(hard))
    if args.only != "hard":
        everything = all_triplets([512, 1024], use_peers and not args.quick, args.oml_limit_gb, args.threads, args.clock)
        print("\n## all-triplets mining + triplet loss, one forward + backward step\n")
        print("\n".join(everything))


if __name__ == "__main__":
    main()
