"""The checkpoint writer: training waits only for serialisation; fsync, rename and the extra names (best.pt,
step-N.pt as hard links) finish in the background, and their failures reach the training thread."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import oml_core.files as files
from oml_core import hookimpl
from oml_core.engine import CheckpointError, load_checkpoint_file
from oml_core.engine.checkpoint import CheckpointWriter

sys.path.insert(0, str(Path(__file__).parent))
from tiny_components import make_engine  # noqa: E402


def test_extra_names_are_hard_links_that_keep_their_state_when_last_is_replaced(tmp_path: Path) -> None:
    writer = CheckpointWriter()
    writer.save({"step": torch.tensor(1)}, tmp_path / "last.pt", also=[tmp_path / "best.pt"])
    writer.save({"step": torch.tensor(2)}, tmp_path / "last.pt")
    writer.wait()
    assert torch.load(tmp_path / "best.pt")["step"].item() == 1
    assert torch.load(tmp_path / "last.pt")["step"].item() == 2
    assert (tmp_path / "best.pt").stat().st_nlink == 1  # last.pt was renamed over, best.pt alone holds step 1
    assert not list(tmp_path.glob(".*"))  # no temp file left


def test_a_file_system_without_hard_links_gets_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: object, destination: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", refuse)
    writer = CheckpointWriter()
    writer.save({"w": torch.arange(3)}, tmp_path / "last.pt", also=[tmp_path / "best.pt"])
    writer.wait()
    assert torch.equal(torch.load(tmp_path / "best.pt")["w"], torch.arange(3))
    assert (tmp_path / "last.pt").stat().st_ino != (tmp_path / "best.pt").stat().st_ino


def test_a_background_fsync_failure_is_raised_by_wait_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = CheckpointWriter()
    writer.save({"step": torch.tensor(1)}, tmp_path / "last.pt")
    writer.wait()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    writer.save({"step": torch.tensor(2)}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"last.pt \(No space left on device: a full disk\?\).*previous last.pt"):
        writer.wait()
    writer.wait()  # the failure is reported once
    assert torch.load(tmp_path / "last.pt")["step"].item() == 1
    assert not list(tmp_path.glob(".*"))


def test_a_run_whose_hook_raises_still_completes_the_checkpoint_in_flight(tmp_path: Path) -> None:
    class RaiseAtStep5:
        @hookimpl
        def oml_train_batch_end(self, engine: object) -> None:
            if engine.state.step == 5:  # type: ignore[attr-defined]
                raise RuntimeError("plugin bug")

    engine = make_engine(tmp_path, plugins=[RaiseAtStep5()], epochs=3, checkpoint_every_n_steps=4)
    with pytest.raises(Exception, match="plugin bug"):
        engine.fit()
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["state"]["step"] == 4
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]


def test_best_pt_is_the_best_validated_state_without_a_copy(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, epochs=3, validate=True)
    engine.fit()
    checkpoints = tmp_path / "checkpoints"
    best = load_checkpoint_file(checkpoints / "best.pt")
    monitor = next(iter(engine.monitors.values()))
    assert best["state"]["step"] == monitor.best_step
    # when the last state is the best, it is one file under two names; otherwise two files
    same_file = os.path.samefile(checkpoints / "best.pt", checkpoints / "last.pt")
    assert same_file == (monitor.best_step == engine.state.step)
