"""The neptune logger in offline mode: a real training run, then the offline operation log Neptune wrote is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oml_core import Host
from oml_core.errors import OMLError
from oml_core.testing.trackers import train_tiny_run


def _operations(container: Path) -> list[dict[str, Any]]:
    rows = []
    for log in sorted(container.glob("data-*.log")):
        rows += [json.loads(line)["obj"] for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows


def _containers(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".neptune" / "offline").glob("run__*"), key=lambda p: p.stat().st_mtime)


def test_offline_operations_hold_params_metrics_images_checkpoint_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # Neptune keeps offline runs in ./.neptune
    loggers = [{"type": "csv"}, {"type": "neptune", "mode": "offline", "project": "team/tiny", "log_checkpoint": True}]
    first = train_tiny_run(tmp_path, loggers=loggers)
    (container,) = _containers(tmp_path)
    ops = _operations(container)
    by_path: dict[str, list[dict[str, Any]]] = {}
    for op in ops:
        by_path.setdefault("/".join(op["path"]), []).append(op)
    assert by_path["parameters/optimizer/lr"][0]["value"] == "0.001"
    assert by_path["parameters/extractor/type"][0]["value"] == "resnet"
    loss_steps = [v["step"] for op in by_path["train/loss"] for v in op["values"]]
    assert len(loss_steps) >= 2 and loss_steps == sorted(loss_steps)
    validations = [v["step"] for op in by_path["val/OVERALL/cmc/1"] for v in op["values"]]
    assert validations[0] == 0 and len(validations) == 2
    images = [op for op in by_path["worst_queries/cmc@1"] if op["type"] == "LogImages"]
    assert [v["step"] for op in images for v in op["values"]] == validations
    assert any(op["type"] == "UploadFile" for op in by_path["checkpoints/best"])
    state = json.loads((first.run_dir / "trackers" / "neptune.json").read_text())
    assert by_path["oml/run_id"][0]["value"] == state["custom_run_id"]
    assert by_path["oml/run_dir"][0]["value"] == str(first.run_dir.resolve())

    train_tiny_run(tmp_path, loggers=loggers, epochs=2, resume=first.run_dir)
    later = _operations(_containers(tmp_path)[-1])
    same = [op["value"] for op in later if op["path"] == ["oml", "run_id"]]
    assert same == [state["custom_run_id"]]  # the resumed session says which OML run it continues
    steps = [v["step"] for op in later if op["path"] == ["train", "loss"] for v in op["values"]]
    assert min(steps) > max(loss_steps)


class _FailInSecondEpoch:
    def oml_train_batch_end(self, engine) -> None:  # noqa: ANN001
        if engine.state.epoch == 1:
            raise RuntimeError("a plugin broke")


def test_a_failed_run_is_marked_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loggers = [{"type": "neptune", "mode": "offline", "project": "team/tiny"}]
    with pytest.raises(OMLError, match="a plugin broke"):
        train_tiny_run(tmp_path, loggers=loggers, epochs=2, host=Host(plugins=[_FailInSecondEpoch()]))
    (container,) = _containers(tmp_path)
    failed = [op["value"] for op in _operations(container) if op["path"] == ["sys", "failed"]]
    assert failed == [False, True]  # set false by Neptune when the run starts, true when it ends after the error
