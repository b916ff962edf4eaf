"""DDP with 2 CPU processes (gloo, strategy="ddp"): batches split between the ranks, metrics gathered from both and
equal to single-process metrics of the trained model, the same on every rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from lightning_ddp_script import METRIC_ARGS, Blobs, Embedder  # noqa: E402
from lightning_helpers import reference_metrics  # noqa: E402
from oml_samplers import BalanceSampler  # noqa: E402

pytestmark = pytest.mark.slow


def test_ddp_two_processes_split_batches_and_agree_on_exact_metrics(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OML_", "LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_"))}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        [sys.executable, str(HERE / "lightning_ddp_script.py"), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"], r["process"]) for r in reports] == [(0, 2, 0), (1, 2, 1)]

    # training: rank r got batches r, r + 2, ... of rank 0's sampler (seed 100); rank 1's own sampler (seed 101)
    # drew nothing that was used
    assert [r["sampler_seed"] for r in reports] == [100, 101]
    labels = Blobs(8, 4, seed=1).labels.tolist()
    reference = BalanceSampler(labels, n_labels=2, n_instances=2, seed=100)
    for epoch in (0, 1):
        expected = reference.batches(epoch)
        assert len(expected) == 4
        for rank, report in enumerate(reports):
            assert report["seen"][str(epoch)] == expected[rank::2]

    # validation: 15 items over 2 ranks (one padded item), gathered, deduplicated: the metrics of the whole set
    model = Embedder()
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    expected_metrics = reference_metrics(model, Blobs(5, 3, seed=2), extra_keys=(), **METRIC_ARGS)
    for report in reports:
        assert sorted(report["metric_history"]) == ["0", "1"]
        final = report["metric_history"]["1"]
        assert final.keys() == expected_metrics.keys()
        assert final == pytest.approx(expected_metrics, abs=1e-6)
        assert report["logged"] == pytest.approx(final, abs=1e-6)
    assert reports[0]["metric_history"] == reports[1]["metric_history"]
