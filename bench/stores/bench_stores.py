"""Embedding stores benchmark: ingest rate, queries per second at k=10 and recall@10 against exact search.

Every store gets the same random float32 vectors and the same queries in one run; plain torch brute force over the
in-memory tensor is the baseline (its answers are the exact top-10, its QPS the reference for the ratios).

    .venv/bin/python bench/stores/bench_stores.py --n 1000000 --dim 128               # the 1M x 128 run
    .venv/bin/python bench/stores/bench_stores.py --n 100000 --dim 384                # the 100k x 384 run
    .venv/bin/python bench/stores/bench_stores.py --n 20000 --dim 64 --queries 200    # a quick check

pgvector runs on the local server that scripts/postgres.sh starts (``--pg-n`` caps how many vectors it gets, since
building its HNSW index on 2 cores is slow); SQLite's exact scan is timed on ``--sqlite-queries`` queries.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def brute_force(gallery: torch.Tensor, queries: torch.Tensor, k: int, chunk: int = 131072) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k by L2 with plain torch: the baseline and the ground truth."""
    best_d = torch.full((len(queries), k), float("inf"))
    best_i = torch.full((len(queries), k), -1, dtype=torch.int64)
    q_norm = (queries**2).sum(1, keepdim=True)
    for start in range(0, len(gallery), chunk):
        block = gallery[start : start + chunk]
        d = q_norm - 2 * queries @ block.T + (block**2).sum(1)[None, :]
        v, i = torch.topk(d, min(k, len(block)), dim=1, largest=False)
        all_d, all_i = torch.cat([best_d, v], 1), torch.cat([best_i, i + start], 1)
        best_d, order = torch.topk(all_d, k, dim=1, largest=False)
        best_i = torch.gather(all_i, 1, order)
    return best_i, best_d.clamp_min(0).sqrt()


def recall_at_k(found: torch.Tensor, exact: torch.Tensor) -> float:
    hits = sum(len(set(f.tolist()) & set(e.tolist())) for f, e in zip(found, exact))
    return hits / exact.numel()


def run_store(
    name: str,
    make: Callable[[], Any],
    ids: np.ndarray,
    x: np.ndarray,
    queries: np.ndarray,
    exact: torch.Tensor,
    k: int,
    batch: int,
    after_ingest: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    store = make()
    start = time.perf_counter()
    for s in range(0, len(x), batch):
        store.add(ids[s : s + batch], x[s : s + batch])
    if after_ingest is not None:
        after_ingest(store)
    ingest_s = time.perf_counter() - start
    store.search(queries[:2], k)  # warm-up (index loading, plan caches)
    start = time.perf_counter()
    found, _ = store.search(queries, k)
    search_s = time.perf_counter() - start
    store.close()
    return {
        "store": name,
        "n": len(x),
        "ingest_per_s": len(x) / ingest_s,
        "ingest_s": ingest_s,
        "queries": len(queries),
        "qps": len(queries) / search_s,
        "recall@10": recall_at_k(found, exact[: len(queries)]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000, help="queries for torch and FAISS")
    parser.add_argument("--sqlite-queries", type=int, default=20, help="queries for SQLite's exact scan (one batch)")
    parser.add_argument("--pg-queries", type=int, default=200)
    parser.add_argument("--pg-n", type=int, default=100_000, help="vectors given to pgvector (0: skip pgvector)")
    parser.add_argument(
        "--data", choices=("random", "clustered"), default="random",
        help="random: i.i.d. Gaussian (the hardest case for approximate indexes); clustered: a Gaussian mixture of "
        "--clusters centres, closer to real embeddings",
    )
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10_000, help="vectors per add() call")
    parser.add_argument("--only", default="", help="subset: sqlite,faiss_flat,faiss_ivf,faiss_ivfpq,faiss_hnsw,pgvector")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    from oml_store_faiss import FaissStore
    from oml_store_sql import SqlStore

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    if args.data == "clustered":  # points (and queries) around shared centres, spread like within-class noise
        centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32) * 2.0
        x = (x * 0.5 + centres[rng.integers(0, args.clusters, args.n)]).astype(np.float32)
        queries = (queries * 0.5 + centres[rng.integers(0, args.clusters, args.queries)]).astype(np.float32)
    ids = np.arange(args.n, dtype=np.int64)
    print(f"# {args.n} x {args.dim} {args.data} float32, k={args.k}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cpus, {platform.processor() or platform.machine()}", flush=True)

    gallery_t, queries_t = torch.from_numpy(x), torch.from_numpy(queries)
    brute_force(gallery_t, queries_t[:10], args.k)  # warm-up
    start = time.perf_counter()
    exact, _ = brute_force(gallery_t, queries_t, args.k)
    torch_qps = args.queries / (time.perf_counter() - start)
    rows: list[dict[str, Any]] = [
        {"store": "torch brute force (baseline)", "n": args.n, "ingest_per_s": float("nan"), "ingest_s": 0.0,
         "queries": args.queries, "qps": torch_qps, "recall@10": 1.0}
    ]
    print(f"torch brute force: {torch_qps:.1f} QPS", flush=True)
    work = Path(tempfile.mkdtemp(prefix="oml-bench-stores-"))

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        line = f"{row['store']}: ingest {row['ingest_per_s']:.0f}/s, {row['qps']:.1f} QPS, recall@10 {row['recall@10']:.3f}"
        print(line, flush=True)
        gc.collect()

    try:
        if wanted("sqlite"):
            report(run_store("SQLite exact (sql)", lambda: SqlStore(f"sqlite:///{work}/s.db", dim=args.dim),
                             ids, x, queries[: args.sqlite_queries], exact, args.k, args.batch))
        # (key, label, build options, search sweep: one more run per extra setting, on the same saved index)
        faiss_variants: list[tuple[str, str, dict[str, Any], str, tuple[int, ...]]] = [
            ("faiss_flat", "FAISS flat", {"index": "flat"}, "", ()),
            ("faiss_ivf", "FAISS IVF-Flat nlist=1024", {"index": "ivf_flat", "nlist": 1024, "nprobe": 32, "rerank": 1},
             "nprobe", (128,)),
            ("faiss_ivfpq", f"FAISS IVF-PQ nlist=1024 m={args.dim // 8} rerank=10",
             {"index": "ivf_pq", "nlist": 1024, "pq_m": args.dim // 8, "nprobe": 32, "rerank": 10}, "nprobe", (128,)),
            ("faiss_hnsw", "FAISS HNSW M=32 efC=80", {"index": "hnsw", "hnsw_m": 32, "ef_construction": 80, "ef_search": 128,
                                                      "rerank": 1}, "ef_search", (256, 512)),
        ]
        for key, label, options, knob, sweep in faiss_variants:
            if not wanted(key):
                continue
            folder = work / key
            shutil.rmtree(folder, ignore_errors=True)
            first = f"{label} {knob}={options[knob]}" if knob else label
            row = run_store(first, lambda o=options, f=folder: FaissStore(f, dim=args.dim, **o), ids, x, queries, exact, args.k,
                            args.batch, after_ingest=lambda s: s.save())
            report(row)
            for value in sweep:  # the same saved index, searched with another setting
                again = run_store(f"{label} {knob}={value}", lambda f=folder, kn=knob, v=value: FaissStore(f, **{kn: v}),
                                  ids[:0], x[:0], queries, exact, args.k, args.batch)
                again["ingest_per_s"], again["ingest_s"], again["n"] = row["ingest_per_s"], row["ingest_s"], row["n"]
                report(again)
            shutil.rmtree(folder, ignore_errors=True)
        if wanted("pgvector") and args.pg_n > 0:
            sys.path.insert(0, str(ROOT / "plugins" / "oml-store-sql"))
            from oml_store_sql.local_postgres import start_local_postgres

            url = start_local_postgres(Path(os.environ.get("OML_PGDATA", ROOT / ".pgdata")), stop_at_exit=True)
            n_pg = min(args.pg_n, args.n)
            pg_baseline = torch_qps
            if n_pg < args.n:  # its own baseline: brute force over the same subset
                start = time.perf_counter()
                pg_exact, _ = brute_force(gallery_t[:n_pg], queries_t, args.k)
                pg_baseline = args.queries / (time.perf_counter() - start)
            else:
                pg_exact = exact
            table = f"bench_{args.data}_{args.dim}_{n_pg}"

            def make_pg() -> Any:
                store = SqlStore(url, table=table, dim=args.dim, index="none")  # bulk load first, then build the index
                store.delete(ids[:n_pg])
                return store

            row = run_store(f"pgvector HNSW m=16 ef_search=100 (first {n_pg})", make_pg, ids[:n_pg], x[:n_pg],
                            queries[: args.pg_queries], pg_exact, args.k, args.batch, after_ingest=lambda s: s.create_index())
            row["baseline_qps"] = pg_baseline
            report(row)
            import sqlalchemy as sa

            engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}", "{table}_info"'))
            engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"| store ({args.n:,} x {args.dim}, {args.data}) | vectors | ingest /s | queries | QPS @k=10 | x torch | recall@10 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        ingest = "-" if row["ingest_per_s"] != row["ingest_per_s"] else f"{row['ingest_per_s']:,.0f}"
        ratio = row["qps"] / row.get("baseline_qps", torch_qps)  # against brute force over the same vectors
        print(f"| {row['store']} | {row['n']:,} | {ingest} | {row['queries']} | {row['qps']:,.1f} | {ratio:.2f} "
              f"| {row['recall@10']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
