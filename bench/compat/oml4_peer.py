"""Runs inside OML 4.0's environment (the peers venv): OML's own datasets, retrieval and metrics on given
embeddings. Reads ``DIR/frame.csv`` and ``DIR/embeddings.npy``, writes ``DIR/oml4.json``. Not imported by the tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, "/work/shared/peers")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tv_shim  # noqa: E402
from _shared import KS, flat, median_third  # noqa: E402

tv_shim.ensure_torchvision()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from oml.datasets import ImageQueryGalleryLabeledDataset  # noqa: E402
from oml.metrics import EmbeddingMetrics, calc_fnmr_at_fmr_rr, calc_retrieval_metrics_rr  # noqa: E402
from oml.retrieval import AdaptiveThresholding, ConstantThresholding, RetrievalResults  # noqa: E402


def main(folder: Path) -> None:
    df = pd.read_csv(folder / "frame.csv")
    embeddings = torch.from_numpy(np.load(folder / "embeddings.npy"))
    dataset = ImageQueryGalleryLabeledDataset(df)
    rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=10)
    query_categories = np.array(dataset.extra_data["category"])[dataset.get_query_ids()]
    calc = EmbeddingMetrics(dataset, cmc_top_k=(1, 5), precision_top_k=(5,), map_top_k=(5,), pcf_variance=(0.5,), verbose=False)
    calc.setup()
    calc.update(embeddings, list(range(len(df))))
    result = {
        "retrieved_ids": [r.tolist() for r in rr.retrieved_ids],
        "gt_ids": [g.tolist() for g in rr.gt_ids],
        "metrics_rr": flat(calc_retrieval_metrics_rr(rr, query_categories=query_categories, **KS, verbose=False)),
        "fnmr_rr": flat(calc_fnmr_at_fmr_rr(rr, fmr_vals=(0.1, 0.5))),
        "embedding_metrics": flat(calc.compute_metrics()),
        "constant": [r.tolist() for r in ConstantThresholding(th=median_third(rr)).process(rr).retrieved_ids],
        "adaptive": [r.tolist() for r in AdaptiveThresholding(n_std=1.5).process(rr).retrieved_ids],
    }
    (folder / "oml4.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
