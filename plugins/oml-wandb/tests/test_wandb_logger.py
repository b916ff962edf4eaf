"""The wandb logger in offline mode: a real training run, then the run files W&B wrote are read back."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from oml_core import Host
from oml_core.errors import OMLError
from oml_core.testing.trackers import train_tiny_run

_BLOCK = 32768
_HEADER = 7  # ":W&B", magic 0xBEE1, version 0


def read_wandb_records(path: Path) -> list[Any]:
    """The protobuf records of a ``run-<id>.wandb`` file (a LevelDB-style log: 32 KiB blocks of framed chunks)."""
    from wandb.proto import wandb_internal_pb2

    blob = path.read_bytes()
    if len(blob) < _HEADER:  # not written yet
        return []
    assert blob[:4] == b":W&B", path
    records, pending, offset = [], b"", _HEADER
    while offset + 7 <= len(blob):
        room = _BLOCK - offset % _BLOCK
        if room < 7:  # the rest of a block too short for a header is padding
            offset += room
            continue
        _crc, length, kind = struct.unpack("<IHB", blob[offset : offset + 7])
        chunk = blob[offset + 7 : offset + 7 + length]
        if len(chunk) < length:  # the service process is still writing this record
            break
        offset += 7 + length
        if kind == 0:
            continue
        pending += chunk
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def read_finished_run(path: Path, timeout: float = 60.0) -> list[Any]:
    """The records once W&B's service process has written the run's ``exit`` record (it writes after finish())."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _summary(records: list[Any]) -> dict[str, Any]:
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]  # fmt: skip
    config = {}
    for r in records:
        if r.WhichOneof("record_type") == "config":
            config.update({item.key: json.loads(item.value_json) for item in r.config.update})
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    run_ids = {r.run.run_id for r in records if r.WhichOneof("record_type") == "run"}
    return {"history": history, "config": config, "artifacts": artifacts, "run_ids": run_ids}


def _offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


def test_offline_run_files_hold_config_metrics_images_checkpoint_and_resume(tmp_path: Path) -> None:
    loggers = [{"type": "csv"}, {"type": "wandb", "mode": "offline", "project": "tiny", "log_checkpoint": True}]
    first = train_tiny_run(tmp_path, loggers=loggers)
    (files,) = _offline_runs(first.run_dir)
    seen = _summary(read_finished_run(files))
    run_id = json.loads((first.run_dir / "trackers" / "wandb.json").read_text())["run_id"]
    assert seen["run_ids"] == {run_id}
    assert seen["config"]["optimizer"] == {  # the resolved config: the engine's AdamConfig with its defaults
        "type": "adam", "lr": 0.001, "backbone_lr": None, "weight_decay": 0.0,
        "no_decay_on_norms_and_biases": True, "betas": [0.9, 0.999], "eps": 1e-08,
    }  # fmt: skip
    losses = [row for row in seen["history"] if "train/loss" in row]
    assert len(losses) >= 2 and [row["_step"] for row in losses] == sorted(row["_step"] for row in losses)
    validations = [row for row in seen["history"] if "val/OVERALL/cmc/1" in row]
    assert [row["_step"] for row in validations][0] == 0 and len(validations) == 2
    images = [row for row in seen["history"] if row.get("worst_queries/cmc@1/_type") == "image-file"]
    assert [row["_step"] for row in images] == [row["_step"] for row in validations]
    assert list((files.parent / "files" / "media" / "images").rglob("*.png"))
    (artifact,) = seen["artifacts"]
    assert artifact.type == "model" and [entry.path for entry in artifact.manifest.contents] == ["best.pt"]

    resumed = train_tiny_run(tmp_path, loggers=loggers, epochs=2, resume=first.run_dir)
    runs = _offline_runs(resumed.run_dir)
    assert len(runs) == 2  # one offline folder per process, both for the same W&B run: `wandb sync` joins them
    later = _summary(read_finished_run(runs[1]))
    assert later["run_ids"] == {run_id}
    later_steps = [row["_step"] for row in later["history"] if "train/loss" in row]
    assert min(later_steps) > max(row["_step"] for row in losses)
    assert len([row for row in later["history"] if "val/OVERALL/cmc/1" in row]) == 1


class _FailInSecondEpoch:
    def oml_train_batch_end(self, engine) -> None:  # noqa: ANN001
        if engine.state.epoch == 1:
            raise RuntimeError("a plugin broke")


def test_a_failed_run_ends_with_a_non_zero_exit_code(tmp_path: Path) -> None:
    loggers = [{"type": "wandb", "mode": "offline", "project": "tiny"}]
    with pytest.raises(OMLError, match="a plugin broke"):
        train_tiny_run(tmp_path, loggers=loggers, epochs=2, host=Host(plugins=[_FailInSecondEpoch()]))
    (run_dir,) = (tmp_path / "runs").iterdir()
    (files,) = _offline_runs(run_dir)
    (exit_record,) = [r.exit for r in read_finished_run(files) if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 1
