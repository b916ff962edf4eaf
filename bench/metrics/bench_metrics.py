"""Retrieval metrics at N = 10k, 20k, 30k, 60k embeddings (D = 384, every item both query and gallery).

    .venv/bin/python bench/metrics/bench_metrics.py                 # everything (~20 min on 2 cores)
    .venv/bin/python bench/metrics/bench_metrics.py --sizes 10000   # one size

Computes cmc@1,5, precision@5, map@5, fnmr@fmr (0.1, 0.01) and pcf@0.5 with our EmbeddingMetrics, side by side with
a plain ``torch.cdist + topk`` (the whole matrix where it fits, and in chunks of 5000 queries), OML 4.0's
EmbeddingMetrics and PML's AccuracyCalculator (precision@1, MAP@R, R-precision, MRR) when ``.venv-peers`` exists, and
the GEMM lower bound ``2 * N * N * D`` flops at the machine's measured matmul rate. Every measurement runs in a fresh
process with one torch thread (faiss too); the clock is the process CPU time (see worker.py), peak memory is the
process' ru_maxrss. OML runs under an address-space limit (``--oml-limit-gb``) so that running out of memory ends
its process, not the machine. Where OML and ours both ran, the largest difference between their metrics is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
D = 384
METRIC_ARGS = {"cmc_top_k": [1, 5], "precision_top_k": [5], "map_top_k": [5], "fmr_vals": [0.1, 0.01], "pcf_variance": [0.5]}


def make_data(n: int, path: Path, seed: int = 0) -> None:
    """Clustered embeddings: n / 10 identities of 10 images each, noisy around a random centre."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % (n // 10))
    centres = rng.standard_normal((n // 10, D), dtype=np.float32)
    emb = centres[labels] + 2.2 * rng.standard_normal((n, D), dtype=np.float32)
    ones = np.ones(n, dtype=bool)
    np.savez(path, embeddings=emb.astype(np.float32), labels=labels.astype(np.int64), is_query=ones, is_gallery=ones)


def run(python: Path | str, mode: str, data: Path, opts: dict[str, Any], limit_gb: float | None, timeout: int) -> dict[str, Any]:
    def limit() -> None:
        if limit_gb:
            size = int(limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    env = {**os.environ, "OMP_NUM_THREADS": str(opts.get("threads", 1)), "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            [str(python), str(HERE / "worker.py"), mode, str(data), json.dumps(opts)],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": tail[0][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(result: dict[str, Any], key: str, unit: str = "") -> str:
    if "error" in result:
        return "-"
    return f"{result[key]:.1f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 30000, 60000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--oml-fnmr-max-n", type=int, default=20000, help="largest N for OML with fnmr@fmr (it holds N x N)")
    parser.add_argument("--oml-limit-gb", type=float, default=14.0)
    parser.add_argument("--cdist-full-max-n", type=int, default=30000, help="largest N for the whole-matrix baseline")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write every result here")
    args = parser.parse_args()
    peers = PEERS_PYTHON.exists() and not args.no_peers
    opts = {**METRIC_ARGS, "threads": args.threads}
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch thread(s) per process")
    print(f"# peers: {'OML 4.0 + PML from ' + str(PEERS_PYTHON) if peers else 'not installed'}")
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            data = Path(tmp) / f"data_{n}.npz"
            make_data(n, data)
            r: dict[str, Any] = {}
            started = time.perf_counter()
            r["gemm"] = run(sys.executable, "gemm", data, opts, None, args.timeout)
            r["ours"] = run(sys.executable, "ours", data, opts, None, args.timeout)
            r["ours_no_fnmr"] = run(sys.executable, "ours", data, {**opts, "fmr_vals": []}, None, args.timeout)
            r["cdist_chunked"] = run(sys.executable, "cdist_chunked", data, opts, None, args.timeout)
            if n <= args.cdist_full_max_n:
                r["cdist_full"] = run(sys.executable, "cdist_full", data, opts, None, args.timeout)
            if peers:
                with_fnmr = n <= args.oml_fnmr_max_n
                oml_opts = opts if with_fnmr else {**opts, "fmr_vals": []}
                r["oml"] = run(PEERS_PYTHON, "oml", data, oml_opts, args.oml_limit_gb, args.timeout)
                r["oml"]["with_fnmr"] = with_fnmr
                if not with_fnmr:
                    r["oml_vs"] = r["ours_no_fnmr"]
                r["pml"] = run(PEERS_PYTHON, "pml", data, opts, args.oml_limit_gb, args.timeout)
            results[n] = r
            report(n, r)
            print(f"#   (N = {n} took {time.perf_counter() - started:.0f} s of wall time)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _diff(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    return abs(a - b)


def report(n: int, r: dict[str, Any]) -> None:
    lower_bound = 2 * n * n * D / (r["gemm"]["gflops_per_cpu_second"] * 1e9)
    print(f"\nN = {n}: GEMM lower bound {lower_bound:.1f} s ({r['gemm']['gflops_per_cpu_second']:.0f} GFLOP/s per thread)")
    print(f"  {'':34} {'CPU s':>8} {'x bound':>8} {'peak MB':>8} {'+MB':>7}  load")
    rows = [
        ("ours (all metrics, fnmr@fmr)", "ours"),
        ("ours (no fnmr@fmr)", "ours_no_fnmr"),
        ("cdist + topk, chunks of 5000", "cdist_chunked"),
        ("cdist + topk, whole matrix", "cdist_full"),
        ("OML 4.0 EmbeddingMetrics" + ("" if r.get("oml", {}).get("with_fnmr", True) else " (no fnmr)"), "oml"),
        ("PML AccuracyCalculator", "pml"),
    ]
    for label, key in rows:
        if key not in r:
            continue
        x = r[key]
        if "error" in x:
            print(f"  {label:34} failed: {x['error']}")
            continue
        extra = x["peak_mb"] - x["base_mb"]
        ratio = x["seconds"] / lower_bound
        print(f"  {label:34} {x['seconds']:8.1f} {ratio:8.2f} {x['peak_mb']:8.0f} {extra:7.0f}  {x['load_average']:.1f}")
    if "oml" in r and "error" not in r["oml"]:
        ours = r["ours"] if r["oml"].get("with_fnmr") else r["ours_no_fnmr"]
        if "error" not in ours:
            speedup = r["oml"]["seconds"] / ours["seconds"]
            shared = sorted(set(ours["metrics"]) & set(r["oml"]["metrics"]))
            diff = max((_diff(ours["metrics"][k], r["oml"]["metrics"][k]) for k in shared), default=float("nan"))
            print(f"  ours vs OML: {speedup:.1f}x faster; largest metric difference {diff:.2e} over {len(shared)} metrics")
            print("  ours: " + ", ".join(f"{k.removeprefix('OVERALL/')}={v:.4f}" for k, v in ours["metrics"].items()))


if __name__ == "__main__":
    main()
