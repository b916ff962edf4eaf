"""Quantised store indexes: memory of the codes per vector, QPS and recall@10 against exact search.

The data is bench_stores.py's clustered generator (a Gaussian mixture, points and queries around shared centres).
Every store is used through its OML class; the baseline is plain torch brute force (the exact top-10).

    .venv/bin/python bench/stores/bench_quantized.py --n 1000000 --dim 128 --queries 500      # the issue's run
    .venv/bin/python bench/stores/bench_quantized.py --n 100000 --dim 128 --queries 200       # a quicker one

Target: binary codes with re-scoring reach recall@10 >= 0.95 with codes of 1/16 or less of float32's memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stores import brute_force, recall_at_k  # noqa: E402


def clustered(n: int, n_queries: int, dim: int, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """bench_stores.py's ``--data clustered`` vectors and queries."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    queries = rng.standard_normal((n_queries, dim), dtype=np.float32)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32) * 2.0
    x = (x * 0.5 + centres[rng.integers(0, clusters, n)]).astype(np.float32)
    queries = (queries * 0.5 + centres[rng.integers(0, clusters, n_queries)]).astype(np.float32)
    return x, queries


def measure(name: str, store: Any, x: np.ndarray, queries: np.ndarray, exact: torch.Tensor, k: int, batch: int,
            code_bytes: float) -> dict[str, Any]:
    ids = np.arange(len(x), dtype=np.int64)
    start = time.perf_counter()
    for s in range(0, len(x), batch):
        store.add(ids[s : s + batch], x[s : s + batch])
    ingest_s = time.perf_counter() - start
    start = time.perf_counter()
    store.search(queries[:2], k)  # warm-up: builds the codes of a FAISS store
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    found, _ = store.search(queries, k)
    search_s = time.perf_counter() - start
    store.close()
    row = {
        "store": name, "n": len(x), "code_bytes": code_bytes, "memory_ratio": code_bytes / (4 * x.shape[1]),
        "ingest_s": ingest_s, "build_s": warm_s, "queries": len(queries), "qps": len(queries) / search_s,
        "recall@10": recall_at_k(found, exact[: len(queries)]),
    }
    print(f"{name}: {code_bytes:.0f} B/vector ({row['memory_ratio']:.4f} of float32), ingest {ingest_s:.1f} s, "
          f"codes built in {warm_s:.1f} s, {row['qps']:.1f} QPS, recall@10 {row['recall@10']:.3f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--sqlite-queries", type=int, default=100, help="queries for the SQLite stores (streamed scans)")
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--candidates", default="1000,3000", help="binary: candidates re-scored per query (a list)")
    parser.add_argument(
        "--only", default="", help="subset: faiss_flat,faiss_sq8,faiss_binary,sqlite_sq8,sqlite_binary (and sqlite_exact)"
    )
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    from oml_store_faiss import FaissStore
    from oml_store_faiss.quantized import QuantizedFaissStore
    from oml_store_sql.quantized import QuantizedSqlStore

    x, queries = clustered(args.n, args.queries, args.dim, args.clusters)
    print(f"# {args.n} x {args.dim} clustered float32 ({args.clusters} clusters), k={args.k}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}", flush=True)
    gallery_t, queries_t = torch.from_numpy(x), torch.from_numpy(queries)
    start = time.perf_counter()
    exact, _ = brute_force(gallery_t, queries_t, args.k)
    print(f"torch brute force (exact, float32): {4 * args.dim} B/vector, {args.queries / (time.perf_counter() - start):.1f} QPS")
    work = Path(tempfile.mkdtemp(prefix="oml-bench-quantized-"))
    rows = []
    try:
        if not only or "faiss_flat" in only:
            rows.append(measure("FAISS flat (float32)", FaissStore(work / "flat", dim=args.dim), x, queries, exact, args.k,
                                args.batch, 4 * args.dim))
        if not only or "faiss_sq8" in only:
            store = QuantizedFaissStore(work / "sq8", quantize="sq8", dim=args.dim)
            rows.append(measure("FAISS sq8 + re-scoring", store, x, queries, exact, args.k, args.batch, args.dim))
        for candidates in [int(c) for c in args.candidates.split(",")]:
            if not only or "faiss_binary" in only:
                store = QuantizedFaissStore(work / f"bin{candidates}", quantize="binary", dim=args.dim, candidates=candidates)
                rows.append(measure(f"FAISS binary 2 bits/dim + re-scoring {candidates}", store, x, queries, exact, args.k,
                                    args.batch, store.code_bytes_per_vector()))
        sq = queries[: args.sqlite_queries]
        if "sqlite_exact" in only:  # the plain store's exact scan, for comparison (only when asked for)
            from oml_store_sql import SqlStore

            store = SqlStore(f"sqlite:///{work / 'exact.db'}", dim=args.dim)
            rows.append(measure("SQLite exact (float32)", store, x, sq, exact, args.k, args.batch, 4 * args.dim))
        if not only or "sqlite_sq8" in only:
            store = QuantizedSqlStore(f"sqlite:///{work / 'sq8.db'}", quantize="sq8", dim=args.dim)
            rows.append(measure("SQLite sq8 + re-scoring", store, x, sq, exact, args.k, args.batch, args.dim))
        if not only or "sqlite_binary" in only:
            for candidates in [int(c) for c in args.candidates.split(",")]:
                store = QuantizedSqlStore(f"sqlite:///{work / f'bin{candidates}.db'}", quantize="binary", dim=args.dim,
                                          candidates=candidates)
                rows.append(measure(f"SQLite binary 2 bits/dim + re-scoring {candidates}", store, x, sq, exact, args.k,
                                    args.batch, store.code_bytes_per_vector()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"| store ({args.n:,} x {args.dim}, clustered) | code bytes/vector | of float32 | queries | QPS @k=10 | recall@10 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['store']} | {r['code_bytes']:.0f} | 1/{1 / r['memory_ratio']:.0f} | {r['queries']} | {r['qps']:.1f} | "
              f"{r['recall@10']:.3f} |")


if __name__ == "__main__":
    main()
