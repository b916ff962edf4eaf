"""The clearml logger in offline mode: a real training run, then the offline session ClearML wrote is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from oml_core.testing.trackers import train_tiny_run


def _jsonl(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            loaded = json.loads(line)
            events += loaded if isinstance(loaded, list) else [loaded]
    return events


def test_offline_session_holds_params_scalars_images_checkpoint_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(tmp_path / "clearml-cache"))
    loggers = [{"type": "csv"}, {"type": "clearml", "offline": True, "project": "tiny", "log_checkpoint": True}]
    first = train_tiny_run(tmp_path, loggers=loggers)
    state = json.loads((first.run_dir / "trackers" / "clearml.json").read_text())
    session = Path(state["offline_folder"])
    assert session.is_relative_to(tmp_path / "clearml-cache") and session.with_suffix(".zip").is_file()
    task = json.loads((session / "task.json").read_text())
    config = task["hyperparams"]["config"]
    assert config["optimizer/lr"]["value"] == "0.001" and config["extractor/type"]["value"] == "resnet"
    events = _jsonl(session / "metrics.jsonl")
    scalars = [e for e in events if e["type"] == "training_stats_scalar"]
    loss_steps = [e["iter"] for e in scalars if (e["metric"], e["variant"]) == ("train", "loss")]
    assert len(loss_steps) >= 2 and loss_steps == sorted(loss_steps)
    validations = [e["iter"] for e in scalars if (e["metric"], e["variant"]) == ("val/OVERALL/cmc", "1")]
    assert validations[0] == 0 and len(validations) == 2
    images = [e for e in events if e["type"] == "training_debug_image" and e["metric"] == "worst_queries"]
    assert [e["iter"] for e in images] == validations and all(Path(e["url"]).is_file() for e in images)
    (artifact,) = task["execution"]["artifacts"]
    assert artifact["key"] == "checkpoints/best.pt" and Path(artifact["uri"]).is_file()

    train_tiny_run(tmp_path, loggers=loggers, epochs=2, resume=first.run_dir)
    later = json.loads((first.run_dir / "trackers" / "clearml.json").read_text())
    assert later["resumed_from"] == state["task_id"] and later["task_id"] != state["task_id"]
    assert Path(later["offline_folder"]).with_suffix(".zip").is_file()  # the resumed run's close finished too
    later_events = _jsonl(Path(later["offline_folder"]) / "metrics.jsonl")
    later_steps = [e["iter"] for e in later_events if e.get("metric") == "train" and e.get("variant") == "loss"]
    assert min(later_steps) > max(loss_steps)
