"""``oml calibrate``: thresholds at target FMRs and at the best F1, checked against brute force over all pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oml_core.cli import main
from oml_core.retrieval import _fnmr
from oml_core.retrieval.calibration import calibrate_thresholds


def _brute_force(q, g, ql, gl, qids, gids, metric):
    normalize = torch.nn.functional.normalize
    d = torch.cdist(q, g) if metric == "euclidean" else 1 - normalize(q, dim=1) @ normalize(g, dim=1).T
    d = d.numpy()
    keep = qids[:, None] != gids[None, :]
    same = ql[:, None] == gl[None, :]
    return d[keep & same], d[keep & ~same]


def _f1(pos, neg, t):
    tp = (pos < t).sum()
    fp = (neg < t).sum()
    fn = len(pos) - tp
    return 2 * tp / max(2 * tp + fp + fn, 1)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_calibration_equals_brute_force_over_all_pairs(metric):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(40).repeat_interleave(5)
    centers = torch.randn(40, 16, generator=gen) * 2
    x = centers[labels] + torch.randn(200, 16, generator=gen)
    ids = np.arange(200)
    fmrs = (0.2, 0.05, 0.01)
    cal = calibrate_thresholds(x, x, labels, labels, fmrs, metric=metric, bins=512, query_ids=ids, gallery_ids=ids)
    pos, neg = _brute_force(x, x, labels.numpy(), labels.numpy(), ids, ids, metric)
    assert (cal.n_positive_pairs, cal.n_negative_pairs) == (len(pos), len(neg))
    for entry, f in zip(cal.thresholds, fmrs):
        threshold = np.quantile(neg, f)
        assert entry["fmr"] == f
        assert entry["threshold"] == pytest.approx(threshold, rel=1e-5)
        assert entry["fnmr"] == pytest.approx(np.mean(pos >= threshold), abs=1e-6)
    # the best F1 is the brute-force best over every threshold (the grid's best, refined exactly)
    candidates = np.unique(np.concatenate([pos, neg, [np.inf]]))
    every = max(_f1(pos, neg, v) for v in candidates)
    assert cal.best_f1["f1"] == pytest.approx(every, abs=1e-12)
    assert cal.best_f1["f1"] >= max(_f1(pos, neg, t) for t in cal.grid)
    t = cal.best_f1["threshold"]
    assert _f1(pos, neg, t) == pytest.approx(every, abs=1e-12)
    assert cal.best_f1["fmr"] == pytest.approx(np.mean(neg < t)) and cal.best_f1["fnmr"] == pytest.approx(np.mean(pos >= t))
    assert cal.as_json()["threshold"] == t


def test_calibration_streams_when_windows_are_used(monkeypatch):
    """With the exact-pairs limit lowered, FnmrStream keeps only windows of negatives: still the brute-force result."""
    monkeypatch.setattr(_fnmr, "SAMPLE_PAIRS", 4000)
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(100).repeat_interleave(4)
    x = torch.randn(100, 8, generator=gen)[labels] + 0.7 * torch.randn(400, 8, generator=gen)
    ids = np.arange(400)
    monkeypatch.setattr(_fnmr, "EXACT_PAIRS", 1000)
    cal = calibrate_thresholds(x, x, labels, labels, (0.1, 0.001), query_ids=ids, gallery_ids=ids, chunk_size=64)
    pos, neg = _brute_force(x, x, labels.numpy(), labels.numpy(), ids, ids, "euclidean")
    for entry in cal.thresholds:
        threshold = np.quantile(neg, entry["fmr"])
        assert entry["threshold"] == pytest.approx(threshold, rel=1e-5)
        assert entry["fnmr"] == pytest.approx(np.mean(pos >= threshold), abs=1e-6)
    # with no room for the refining pass, the best F1 is the best over the grid
    from oml_core.retrieval import calibration

    monkeypatch.setattr(calibration, "REFINE_MAX_PAIRS", 0)
    coarse = calibrate_thresholds(x, x, labels, labels, (0.1,), bins=64, query_ids=ids, gallery_ids=ids)
    assert coarse.best_f1["f1"] == pytest.approx(max(_f1(pos, neg, t) for t in coarse.grid), abs=1e-12)
    assert coarse.best_f1["f1"] <= cal.best_f1["f1"]


def test_calibration_without_positive_pairs_is_a_clear_error():
    from oml_core.retrieval._search import RetrievalError

    x = torch.randn(4, 3)
    with pytest.raises(RetrievalError, match="positive and negative pairs"):
        calibrate_thresholds(x, x, [0, 1, 2, 3], [0, 1, 2, 3], query_ids=range(4), gallery_ids=range(4))


def test_oml_calibrate_writes_the_run_files(tiny_run, capsys):
    run_dir, _ = tiny_run
    assert main(["calibrate", "--run", str(run_dir), "--fmr", "0.1", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "best F1" in out
    content = json.loads((run_dir / "calibration.json").read_text())
    assert content["distance"] == "euclidean"
    assert [t["fmr"] for t in content["thresholds"]] == [0.1, 0.01]
    assert set(content["best_f1"]) == {"threshold", "f1", "fmr", "fnmr"}
    assert content["threshold"] == content["best_f1"]["threshold"]
    assert content["n_positive_pairs"] > 0 and content["n_negative_pairs"] > content["n_positive_pairs"]
    # a stricter FMR needs a smaller threshold and rejects more genuine pairs
    (loose, strict) = content["thresholds"]
    assert strict["threshold"] <= loose["threshold"] and strict["fnmr"] >= loose["fnmr"]
    png = (run_dir / "calibration.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    from oml_core.runs import load_run

    assert load_run(run_dir).threshold == content["threshold"]


def test_oml_calibrate_errors_are_clear(tmp_path, tiny_run, capsys):
    assert main(["calibrate", "--run", str(tmp_path)]) != 0
    assert "no config.yaml" in capsys.readouterr().err
    run_dir, _ = tiny_run
    assert main(["calibrate", "--run", str(run_dir), "--dataframe", str(tmp_path / "missing.csv")]) != 0
    assert "--dataframe" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    from oml_core.testing.runs import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("calibrate"))
