"""Re-ranking the top 5 of every query with a pairwise model: ours against OML 4.0's ``PairwiseReranker``.

    .venv/bin/python bench/siamese/bench_rerank.py                  # N = 2 000, 10 000, 50 000 items
    .venv/bin/python bench/siamese/bench_rerank.py --sizes 2000     # quicker

N items, every one a query and a gallery item (1 vs rest), D = 128, top_n = 5, batch_size = 1024, a
``LinearSiamese`` (OML: ``LinearTrivialDistanceSiamese``) with the same random projection in both. The retrieval
results come from our kNN search and are handed to OML as its ``RetrievalResults`` (lists of tensors), so only
``process()`` is timed: pairing, pair inference and putting the lists back together. OML builds Python lists per
query and reads every pair through a Dataset/DataLoader (its issue #599); ours gathers all pairs with two index
tensors. OML runs in the peers' venv (a subprocess) when it is installed; both use 1 torch thread and the clock is
the CPU time of that thread (the wall time of an idle machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
D, TOP_N, BATCH_SIZE = 128, 5, 1024


def data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clustered embeddings, labels and the projection weights; numpy's RNG so that both processes agree."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, max(2, n // 8), n)
    centres = rng.normal(size=(labels.max() + 1, D))
    embeddings = centres[labels] + rng.normal(size=(n, D))
    weight = np.eye(D) + 0.3 * rng.normal(size=(D, D))
    as_float = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return as_float(embeddings), torch.from_numpy(labels), as_float(weight)


# ------------------------------------------------------------------------------------------------- ours
def run_ours(n: int) -> tuple[float, torch.Tensor, Path]:
    from oml_siamese import LinearSiamese, PairwiseReranker

    from oml_core.retrieval import RetrievalResults

    embeddings, labels, weight = data(n)
    rr = RetrievalResults.from_embeddings(embeddings, labels=labels, n_items=TOP_N + 5)
    model = LinearSiamese(feat_dim=D)
    with torch.no_grad():
        model.proj.weight.copy_(weight)
    reranker = PairwiseReranker(top_n=TOP_N, pairwise_model=model, batch_size=BATCH_SIZE)
    items = {"embeddings": embeddings}
    reranker.process(rr, items)  # warm-up
    start = time.thread_time()
    out = reranker.process(rr, items)
    seconds = time.thread_time() - start
    handoff = Path(tempfile.mkdtemp()) / f"rr_{n}.pt"
    torch.save({"ids": rr.padded_ids, "distances": rr.padded_distances}, handoff)
    return seconds, out.padded_ids, handoff


# ------------------------------------------------------------------------------------------------- OML 4.0
def run_oml(n: int, handoff: str) -> dict[str, Any]:
    """Runs inside the peers' venv."""
    sys.path.insert(0, "/work/shared/peers")
    import tv_shim

    tv_shim.ensure_torchvision()
    from oml.interfaces.datasets import IQueryGalleryLabeledDataset
    from oml.models.meta.siamese import LinearTrivialDistanceSiamese
    from oml.retrieval.postprocessors.pairwise import PairwiseReranker
    from oml.retrieval.retrieval_results import RetrievalResults

    torch.set_num_threads(1)
    embeddings, labels, weight = data(n)

    class Embeddings(IQueryGalleryLabeledDataset):
        input_tensors_key = "input_tensors"
        index_key = "idx"
        labels_key = "labels"
        extra_data: dict[str, Any] = {}

        def __getitem__(self, item: int) -> dict[str, Any]:
            return {"input_tensors": embeddings[item], "labels": int(labels[item]), "idx": item}

        def __len__(self) -> int:
            return n

        def get_labels(self) -> np.ndarray:
            return labels.numpy()

        def get_query_ids(self) -> torch.LongTensor:
            return torch.arange(n)  # type: ignore[return-value]

        def get_gallery_ids(self) -> torch.LongTensor:
            return torch.arange(n)  # type: ignore[return-value]

    saved = torch.load(handoff, weights_only=True)
    rr = RetrievalResults(distances=list(saved["distances"]), retrieved_ids=list(saved["ids"]))
    model = LinearTrivialDistanceSiamese(feat_dim=D, identity_init=False)
    with torch.no_grad():
        model.proj.weight.copy_(weight)
    reranker = PairwiseReranker(top_n=TOP_N, pairwise_model=model, num_workers=0, batch_size=BATCH_SIZE, verbose=False)
    dataset = Embeddings()
    start = time.thread_time()
    out = reranker.process(rr, dataset)
    seconds = time.thread_time() - start
    ids = torch.stack([torch.as_tensor(r) for r in out.retrieved_ids])
    return {"seconds": seconds, "ids": ids[:, :TOP_N].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 50000])
    parser.add_argument("--peer", nargs=2, metavar=("N", "HANDOFF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.peer:
        print(json.dumps(run_oml(int(args.peer[0]), args.peer[1])))
        return
    print(f"# {platform.machine()}, torch {torch.__version__}, 1 thread, CPU time; top_n={TOP_N}, D={D}, batch={BATCH_SIZE}")
    print("| items (queries) | pairs | ours (s) | OML 4.0 (s) | OML / ours | same top-5 order as OML |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        ours, ids, handoff = run_ours(n)
        oml_s, same = "-", "n/a"
        ratio = "-"
        if PEERS_PYTHON.exists():
            done = subprocess.run(
                [str(PEERS_PYTHON), str(HERE), "--peer", str(n), str(handoff)], capture_output=True, text=True, check=False
            )
            if done.returncode == 0:
                reply = json.loads(done.stdout.strip().splitlines()[-1])
                oml_s, ratio = f"{reply['seconds']:.3f}", f"{reply['seconds'] / ours:.0f}x"
                same = f"{(torch.tensor(reply['ids']) == ids[:, :TOP_N]).all(dim=1).float().mean().item():.4f}"
            else:
                print(f"  OML failed: {done.stderr.strip().splitlines()[-1:]}")
        print(f"| {n} | {n * TOP_N} | {ours:.3f} | {oml_s} | {ratio} | {same} |", flush=True)


if __name__ == "__main__":
    main()
