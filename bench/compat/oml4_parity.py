"""OML 4's call shapes here against OML 4.0 itself, on data with sequences and categories (needs the peers venv).

    .venv/bin/python -m bench.compat.oml4_parity [--peers /work/peers-venv/bin/python]

Builds a validation frame of mock images (60 items, a random query/gallery split) with a ``sequence`` (pairs of
neighbouring frames) and a ``category`` column and random clustered embeddings, then compares, item by item:
``RetrievalResults.from_embeddings(emb, ImageQueryGalleryLabeledDataset(df))`` (retrieved and relevant ids),
``calc_retrieval_metrics_rr(rr, query_categories=...)``, ``calc_fnmr_at_fmr_rr``, ``EmbeddingMetrics(dataset)``,
``ConstantThresholding`` and ``AdaptiveThresholding``. Prints one line per comparison, exits 1 on a mismatch.
Every row has a sequence: OML 4.0 gives all rows without one the same sequence (pandas.factorize -> -1), so they
exclude each other there, while here each is its own sequence (a documented difference, not compared).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.compat._shared import KS, flat, median_third
from oml_core.data import ImageQueryGalleryLabeledDataset, generate_mock_dataset
from oml_core.retrieval import (
    AdaptiveThresholding,
    ConstantThresholding,
    EmbeddingMetrics,
    RetrievalResults,
    calc_fnmr_at_fmr_rr,
    calc_retrieval_metrics_rr,
)

HERE = Path(__file__).resolve().parent


def same_value(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    return math.isclose(a, b, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))


def ours(folder: Path) -> dict:
    df = pd.read_csv(folder / "frame.csv")
    embeddings = torch.from_numpy(np.load(folder / "embeddings.npy"))
    dataset = ImageQueryGalleryLabeledDataset(df)
    rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=10)
    query_categories = np.array(dataset.extra_data["category"])[dataset.get_query_ids()]
    calc = EmbeddingMetrics(dataset, cmc_top_k=(1, 5), precision_top_k=(5,), map_top_k=(5,), pcf_variance=(0.5,))
    calc.setup()
    calc.update(embeddings, list(range(len(df))))
    return {
        "retrieved_ids": [r.tolist() for r in rr.retrieved_ids],
        "gt_ids": [sorted(g.tolist()) for g in rr.gt_ids],
        "metrics_rr": flat(calc_retrieval_metrics_rr(rr, query_categories=query_categories, **KS)),
        "fnmr_rr": flat(calc_fnmr_at_fmr_rr(rr, fmr_vals=(0.1, 0.5))),
        "embedding_metrics": flat(calc.compute_metrics()),
        "constant": [r.tolist() for r in ConstantThresholding(th=median_third(rr)).process(rr).retrieved_ids],
        "adaptive": [r.tolist() for r in AdaptiveThresholding(n_std=1.5).process(rr).retrieved_ids],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", default="/work/peers-venv/bin/python")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = generate_mock_dataset(folder / "mock", n_labels=30, n_instances=6, im_size=16)
        df = pd.read_csv(root / "df.csv")
        df = df[df["split"] == "validation"].reset_index(drop=True) if (df["split"] == "validation").sum() >= 40 else df
        df["split"], df["is_query"], df["is_gallery"] = "validation", True, True
        rng = np.random.default_rng(args.seed)
        df["is_query"] = rng.random(len(df)) < 0.7
        df["is_gallery"] = ~df["is_query"] | (rng.random(len(df)) < 0.5)
        df["sequence"] = [f"seq{i // 2}" for i in range(len(df))]
        df["category"] = np.array(["cats", "dogs", "birds"])[df["label"].to_numpy() % 3]
        df["path"] = [str(root / p) for p in df["path"]]
        df.to_csv(folder / "frame.csv", index=False)
        centres = rng.standard_normal((df["label"].max() + 1, 8))
        np.save(folder / "embeddings.npy", (centres[df["label"]] + 0.9 * rng.standard_normal((len(df), 8))).astype(np.float32))
        subprocess.run([args.peers, str(HERE / "oml4_peer.py"), str(folder)], check=True)
        theirs = json.loads((folder / "oml4.json").read_text())
        theirs["gt_ids"] = [sorted(g) for g in theirs["gt_ids"]]
        mine = ours(folder)
    print(f"# {len(df)} items, {int(df['is_query'].sum())} queries, sequences of 2, 3 categories; OML 4.0 from {args.peers}")
    failed = False
    for key in ("retrieved_ids", "gt_ids", "constant", "adaptive"):
        same = mine[key] == theirs[key]
        failed |= not same
        print(f"{key:20s} {'equal' if same else 'DIFFERENT'} ({sum(len(r) for r in mine[key])} ids)")
    for key in ("metrics_rr", "fnmr_rr", "embedding_metrics"):
        names = sorted(set(mine[key]) | set(theirs[key]))
        bad = [n for n in names if not same_value(mine[key].get(n), theirs[key].get(n))]
        failed |= bool(bad)
        shown = ", ".join(f"{n}: ours {mine[key].get(n)} / OML {theirs[key].get(n)}" for n in bad[:5])
        print(f"{key:20s} {'equal' if not bad else 'DIFFERENT: ' + shown} ({len(names)} values)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
