"""Exact resume: kill -9 at any step, with per-step or per-epoch LR schedules, gradient accumulation and checkpoints
every N steps or epochs; the resumed run ends bit-identical to an uninterrupted one (CPU), metrics.csv has no
duplicate row, and a run that stops early validates once more when its last validation is stale."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oml_core import hookimpl
from oml_core.engine import load_checkpoint_file

sys.path.insert(0, str(Path(__file__).parent))
from tiny_components import make_engine  # noqa: E402

KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from oml_core import hookimpl
from tiny_components import make_engine

class KillAt:
    @hookimpl(trylast=True)
    def oml_train_batch_end(self, engine):
        if engine.state.step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)

make_engine({run_dir!r}, plugins=[KillAt()], epochs=3, validate=True, csv=True, **{options!r}).fit()
"""

COMBINATIONS = [
    pytest.param({"scheduler_interval": "step", "checkpoint_every_n_steps": 2}, 7, id="per-step-lr,ckpt-every-2-steps"),
    pytest.param({"scheduler_interval": "epoch", "checkpoint_every_n_steps": 3}, 8, id="per-epoch-lr,ckpt-every-3-steps"),
    pytest.param({"scheduler_interval": "step", "accumulate_grad_batches": 3, "checkpoint_every_n_steps": 2}, 7,
                 id="per-step-lr,accumulate-3,ckpt-every-2-steps"),  # fmt: skip
    pytest.param({"scheduler_interval": "step", "accumulate_grad_batches": 3}, 10,
                 id="per-step-lr,accumulate-3,ckpt-every-epoch"),  # fmt: skip
    pytest.param({"scheduler_interval": "epoch", "checkpoint_every_n_steps": 4}, 9, id="per-epoch-lr,ckpt-at-epoch-end-step"),
]


def _state(engine) -> dict[str, torch.Tensor]:
    state = {f"model.{k}": v.clone() for k, v in engine.model.state_dict().items()}
    for i, value in enumerate(engine.optimizer.state_dict()["state"].values()):
        state.update({f"optimizer.{i}.{k}": torch.as_tensor(v).clone() for k, v in value.items()})
    return state


@pytest.mark.slow
@pytest.mark.parametrize(("options", "kill_at"), COMBINATIONS)
def test_kill_9_then_resume_is_bit_identical_and_logs_each_row_once(tmp_path: Path, options: dict, kill_at: int) -> None:
    reference = make_engine(tmp_path / "ref", epochs=3, validate=True, csv=True, **options)
    reference.fit()
    script = tmp_path / "killed.py"
    run_dir = tmp_path / "killed"
    tests = str(Path(__file__).parent)
    script.write_text(KILL_SCRIPT.format(tests=tests, run_dir=str(run_dir), kill_at=kill_at, options=options))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    checkpoint = run_dir / "checkpoints" / "last.pt"
    assert load_checkpoint_file(checkpoint)["state"]["step"] < kill_at

    resumed = make_engine(run_dir, epochs=3, validate=True, csv=True, **options)
    resumed.fit(resume_from=checkpoint)
    expected, got = _state(reference), _state(resumed)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert torch.equal(value, got[name]), name
    assert resumed.scheduler.state_dict() == reference.scheduler.state_dict()
    assert resumed.state.history == reference.state.history
    # the same rows, in the same order, each once: nothing logged after the checkpoint survives the resume
    assert (run_dir / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()
    best, best_ref = (load_checkpoint_file(d / "checkpoints" / "best.pt") for d in (run_dir, tmp_path / "ref"))
    assert best["state"]["step"] == best_ref["state"]["step"]
    assert all(torch.equal(best["model"][k], v) for k, v in best_ref["model"].items())


def test_a_run_stopped_early_validates_once_more_and_best_pt_is_the_best_validated_state(tmp_path: Path) -> None:
    class StopAtSix:
        @hookimpl
        def oml_train_batch_end(self, engine):
            if engine.state.step == 6:
                engine.state.request_stop("budget")

    engine = make_engine(tmp_path, plugins=[StopAtSix()], epochs=5, validate=True, validate_before_training=True)
    state = engine.fit()
    assert [row["step"] for row in state.history] == [0, 4, 6]  # before training, epoch 1, the final one
    monitor = engine.monitor("OVERALL/probe/score")
    assert monitor.steps == [4, 6]  # the untrained model is a baseline, never best.pt
    best = load_checkpoint_file(tmp_path / "checkpoints" / "best.pt")
    assert best["state"]["step"] == monitor.best_step
    assert best["monitors"][0]["best"] == monitor.best


def test_best_pt_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while best.pt is copied keeps the previous best.pt whole (it was a plain copy before)."""
    import oml_core.files as files

    engine = make_engine(tmp_path, epochs=1, validate=True)
    engine.fit()
    best = tmp_path / "checkpoints" / "best.pt"
    before = best.read_bytes()

    def full_disk(src, dst, length=0):
        dst.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_copy(tmp_path / "checkpoints" / "last.pt", best)
    assert best.read_bytes() == before
    assert not [p for p in best.parent.iterdir() if p.suffix == ".tmp"]
