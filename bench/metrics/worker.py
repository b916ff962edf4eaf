"""One measurement in a fresh process (so that peak memory is its own): ``python worker.py MODE DATA.npz [OPTIONS_JSON]``.

Modes run by ``.venv/bin/python``: ``ours`` (EmbeddingMetrics), ``cdist_full`` (``torch.topk(torch.cdist(x, x))`` on the
whole matrix), ``cdist_chunked`` (the same, 5000 queries at a time), ``gemm`` (the machine's matmul rate).
Modes run by ``.venv-peers/bin/python``: ``oml`` (OML 4.0's EmbeddingMetrics), ``pml`` (AccuracyCalculator).

Prints one JSON line: ``seconds`` (CPU time of the process: with one thread, the wall time of an idle machine, and
unlike the wall time it does not grow when other processes compete for the cores), ``wall``, ``peak_mb`` (ru_maxrss),
``base_mb`` (resident memory before the measured part: data and imports), ``metrics`` (flat name -> value).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def flatten(metrics: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        else:
            out[name] = float(value)
    return out


def measure(fn: Any) -> dict[str, Any]:
    base = rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    metrics = fn()
    return {
        "seconds": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "peak_mb": peak_mb(),
        "base_mb": base,
        "metrics": metrics,
    }


def run_ours(data: Any, opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    from oml_core.retrieval import EmbeddingMetrics

    emb = torch.from_numpy(data["embeddings"])
    batch = {
        "embeddings": emb,
        "labels": torch.from_numpy(data["labels"]),
        "is_query": torch.from_numpy(data["is_query"]),
        "is_gallery": torch.from_numpy(data["is_gallery"]),
        "idx": torch.arange(len(emb)),
    }
    kwargs: dict[str, Any] = {}
    if "categories" in data.files:
        batch["categories"] = data["categories"].tolist()
        kwargs["categories_key"] = "categories"
    if "sequences" in data.files:
        batch["sequence"] = data["sequences"].tolist()
        kwargs["sequence_key"] = "sequence"

    def go() -> dict[str, float]:
        metric = EmbeddingMetrics(
            cmc_top_k=tuple(opts["cmc_top_k"]),
            precision_top_k=tuple(opts["precision_top_k"]),
            map_top_k=tuple(opts["map_top_k"]),
            fmr_vals=tuple(opts["fmr_vals"]),
            pcf_variance=tuple(opts["pcf_variance"]),
            **kwargs,
        )
        metric.setup(num_samples=len(emb))
        for start in range(0, len(emb), 1000):
            metric.update_data({k: v[start : start + 1000] for k, v in batch.items()})
        return flatten(metric.compute_metrics())

    return measure(go)


def run_cdist(data: Any, opts: dict[str, Any], chunk: int | None) -> dict[str, Any]:
    import torch

    x = torch.from_numpy(data["embeddings"])
    k = max(opts["cmc_top_k"] + opts["precision_top_k"] + opts["map_top_k"])

    def go() -> dict[str, float]:
        step = chunk or len(x)
        ids = []
        for start in range(0, len(x), step):
            d = torch.cdist(x[start : start + step], x)
            d[torch.arange(len(d)), torch.arange(start, start + len(d))] = float("inf")  # not itself
            ids.append(torch.topk(d, k, largest=False).indices)
            del d
        return {"n": float(len(torch.cat(ids)))}

    return measure(go)


def run_gemm(data: Any, opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    n, d = data["embeddings"].shape
    a, b = torch.randn(2048, d), torch.randn(d, n)
    out = torch.empty(2048, n)
    torch.mm(a, b, out=out)
    reps, cpu = 0, time.process_time()
    while time.process_time() - cpu < 3.0:
        torch.mm(a, b, out=out)
        reps += 1
    seconds = time.process_time() - cpu
    return {"gflops_per_cpu_second": 2 * 2048 * n * d * reps / seconds / 1e9}


def run_oml(data: Any, opts: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, "/work/shared/peers")
    import tv_shim

    tv_shim.ensure_torchvision()
    import torch
    from oml.interfaces.datasets import IQueryGalleryLabeledDataset
    from oml.metrics.embeddings import EmbeddingMetrics

    class Dataset(IQueryGalleryLabeledDataset):  # type: ignore[misc]
        input_tensors_key, index_key, labels_key = "input_tensors", "idx", "labels"

        def __init__(self) -> None:
            self.extra_data: dict[str, Any] = {}
            if "categories" in data.files:
                self.extra_data["category"] = data["categories"].tolist()
            if "sequences" in data.files:
                self.extra_data["sequence"] = data["sequences"].tolist()

        def __getitem__(self, item: int) -> dict[str, Any]:
            return {"idx": item}

        def __len__(self) -> int:
            return len(data["labels"])

        def get_labels(self) -> Any:
            # a tensor, not OML's usual ndarray: OML 4.0 indexes labels with a LongTensor of query ids, which numpy
            # turns into a scalar when there is a single query (TypeError in OML's batched_knn)
            return torch.from_numpy(data["labels"])

        def get_query_ids(self) -> torch.LongTensor:
            return torch.from_numpy(np.flatnonzero(data["is_query"]).astype(np.int64))  # type: ignore[return-value]

        def get_gallery_ids(self) -> torch.LongTensor:
            return torch.from_numpy(np.flatnonzero(data["is_gallery"]).astype(np.int64))  # type: ignore[return-value]

    emb = torch.from_numpy(data["embeddings"])

    def go() -> dict[str, float]:
        import warnings

        warnings.simplefilter("ignore")
        metric = EmbeddingMetrics(
            dataset=Dataset(),
            cmc_top_k=tuple(opts["cmc_top_k"]),
            precision_top_k=tuple(opts["precision_top_k"]),
            map_top_k=tuple(opts["map_top_k"]),
            fmr_vals=tuple(opts["fmr_vals"]),
            pcf_variance=tuple(opts["pcf_variance"]),
            verbose=False,
        )
        metric.setup(num_samples=len(emb))
        for start in range(0, len(emb), 1000):
            metric.update(emb[start : start + 1000], list(range(start, min(start + 1000, len(emb)))))
        return flatten(metric.compute_metrics())

    return measure(go)


def run_pml(data: Any, opts: dict[str, Any]) -> dict[str, Any]:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    emb = torch.from_numpy(data["embeddings"])
    labels = torch.from_numpy(data["labels"])

    def go() -> dict[str, float]:
        calculator = AccuracyCalculator(
            include=("precision_at_1", "mean_average_precision_at_r", "r_precision", "mean_reciprocal_rank"),
            device=torch.device("cpu"),
        )
        return {k: float(v) for k, v in calculator.get_accuracy(emb, labels).items()}

    return measure(go)


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    threads = int(opts.get("threads", 1))
    import torch

    torch.set_num_threads(threads)
    data = np.load(path)
    runners = {
        "ours": lambda: run_ours(data, opts),
        "cdist_full": lambda: run_cdist(data, opts, None),
        "cdist_chunked": lambda: run_cdist(data, opts, 5000),
        "gemm": lambda: run_gemm(data, opts),
        "oml": lambda: run_oml(data, opts),
        "pml": lambda: run_pml(data, opts),
    }
    result = runners[mode]()
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
