"""The engine loop: hook order, replacing the step, stopping, failures, NaN, Ctrl-C, checkpoints and exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oml_core import hookimpl
from oml_core.engine import CheckpointError, NonFiniteLossError, StepOutput, atomic_save, load_checkpoint_file

sys.path.insert(0, str(Path(__file__).parent))
from tiny_components import FlatValidation, make_engine  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def oml_fit_start(self):
        self.calls.append("fit_start")

    @hookimpl
    def oml_epoch_start(self, engine):
        self.calls.append(f"epoch_start:{engine.state.epoch}")

    @hookimpl
    def oml_train_batch_end(self, engine, output):
        assert isinstance(output, StepOutput) and output.loss.ndim == 0
        self.calls.append("batch")

    @hookimpl
    def oml_epoch_end(self, engine):
        self.calls.append(f"epoch_end:{engine.state.epoch}")

    @hookimpl
    def oml_exception(self, exception):
        self.calls.append(f"exception:{type(exception).__name__}")

    @hookimpl
    def oml_fit_end(self, status):
        self.calls.append(f"fit_end:{status}")


def test_hooks_fire_in_order_and_status_is_completed(tmp_path: Path) -> None:
    recorder = Recorder()
    engine = make_engine(tmp_path, plugins=[recorder], epochs=2)
    state = engine.fit()
    per_epoch = ["batch"] * 4
    assert recorder.calls == [
        "fit_start", "epoch_start:0", *per_epoch, "epoch_end:1", "epoch_start:1", *per_epoch, "epoch_end:2", "fit_end:completed",
    ]  # fmt: skip
    assert (state.epoch, state.step, state.batch_in_epoch) == (2, 8, 0)
    assert engine.scheduler.get_last_lr() == [pytest.approx(0.05 * 0.25)]  # stepped once per epoch
    assert (tmp_path / "checkpoints" / "last.pt").is_file()


def test_a_plugin_replaces_the_default_step() -> None:
    class FixedStep:
        @hookimpl
        def oml_train_step(self, engine, batch):
            return StepOutput(loss=torch.tensor(0.25))

    engine = make_engine(None, plugins=[FixedStep()], epochs=1)
    before = [p.clone() for p in engine.model.parameters()]
    state = engine.fit()
    assert state.last_loss == 0.25
    assert all(torch.equal(a, b) for a, b in zip(before, engine.model.parameters()))  # default step never ran


def test_stop_request_ends_the_run_as_stopped_and_saves(tmp_path: Path) -> None:
    class StopAtThree:
        @hookimpl
        def oml_train_batch_end(self, engine):
            if engine.state.step == 3:
                engine.state.request_stop("enough")

    recorder = Recorder()
    state = make_engine(tmp_path, plugins=[StopAtThree(), recorder], epochs=5).fit()
    assert recorder.calls[-1] == "fit_end:stopped" and state.stop_reason == "enough"
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["state"]["step"] == 3


def test_exception_is_notified_not_swallowed_and_names_the_plugin(tmp_path: Path) -> None:
    class Exploding:
        @hookimpl
        def oml_train_batch_end(self, engine):
            if engine.state.step == 2:
                raise RuntimeError("plugin bug")

    recorder = Recorder()
    engine = make_engine(tmp_path, plugins=[Exploding(), recorder])
    with pytest.raises(RuntimeError, match="plugin bug") as excinfo:
        engine.fit()
    assert recorder.calls[-2:] == ["exception:RuntimeError", "fit_end:failed"]
    assert any("Exploding" in note and "oml_train_batch_end" in note for note in excinfo.value.__notes__)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    class PoisonAtSix:
        @hookimpl(tryfirst=True)
        def oml_train_step(self, engine, batch):
            if engine.state.step == 5:
                batch["input_tensors"][0, 0] = float("nan")

    engine = make_engine(tmp_path, plugins=[PoisonAtSix()], epochs=3)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, step 6 \(batch 2 of the epoch\)"):
        engine.fit()
    good = load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")
    assert good["state"]["epoch"] == 1 and good["state"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in good["model"].values())


def test_early_stopping_requests_a_stop_after_patience(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, plugins=[FlatValidation()], epochs=10, early_stopping_patience=2)
    engine.val_dataset = engine.train_dataset
    state = engine.fit()
    assert state.epoch == 3 and "early stopping" in state.stop_reason
    monitor = engine.monitor("OVERALL/cmc/1")
    assert (monitor.best, monitor.best_step, monitor.values) == (0.5, 4, [0.5, 0.5, 0.5])
    best = load_checkpoint_file(tmp_path / "checkpoints" / "best.pt")
    assert best["state"]["step"] == 4  # the first validation after training is the best one


def test_gradient_accumulation_steps_the_optimizer_every_n_batches(tmp_path: Path) -> None:
    engine = make_engine(None, epochs=1, accumulate_grad_batches=3, grad_clip_norm=0.1)
    steps = []
    original = engine.optimizer.step
    engine.optimizer.step = lambda *a, **k: (steps.append(engine.state.step), original(*a, **k))[1]
    engine.fit()
    assert steps == [2, 3]  # after batches 3 and 4 (the last batch of the epoch flushes)


def _final_weights(engine) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in engine.model.state_dict().items()}


def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path: Path) -> None:
    reference = make_engine(tmp_path / "a", epochs=3)
    reference.fit()

    class StopAtSix:
        @hookimpl
        def oml_train_batch_end(self, engine):
            if engine.state.step == 6:
                engine.state.request_stop("simulated interruption")

    make_engine(tmp_path / "b", plugins=[StopAtSix()], epochs=3).fit()
    resumed = make_engine(tmp_path / "c", epochs=3)
    resumed.fit(resume_from=tmp_path / "b" / "checkpoints" / "last.pt")
    assert resumed.state.step == 12
    for name, value in _final_weights(reference).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from oml_core import hookimpl
from tiny_components import make_engine

class KillAtSeven:
    @hookimpl
    def oml_train_batch_end(self, engine):
        if engine.state.step == 7:
            engine.pm.get_plugin("checkpointing").wait()  # the step-6 checkpoint is on disk (see the in-flight test)
            os.kill(os.getpid(), signal.SIGKILL)

make_engine({run_dir!r}, plugins=[KillAtSeven()], epochs=3, checkpoint_every_n_steps=2, num_workers=2).fit()
"""

KILL_IN_FLIGHT_SCRIPT = """
import os, signal, sys, threading
sys.path.insert(0, {tests!r})
from oml_core import hookimpl
from oml_core.engine import checkpoint
from tiny_components import make_engine

in_flight = threading.Event()
commit = checkpoint.commit_temp

def slow_commit(tmp, path):  # the step-6 write never reaches its rename: the kill lands while it is in flight
    if in_flight.is_set():
        threading.Event().wait()
    return commit(tmp, path)

checkpoint.commit_temp = slow_commit

class KillAtSeven:
    @hookimpl
    def oml_train_batch_end(self, engine):
        if engine.state.step == 5:
            in_flight.set()
        if engine.state.step == 7:
            os.kill(os.getpid(), signal.SIGKILL)

make_engine({run_dir!r}, plugins=[KillAtSeven()], epochs=3, checkpoint_every_n_steps=2).fit()
"""


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    reference = make_engine(tmp_path / "ref", epochs=3, num_workers=2)
    reference.fit()
    script = tmp_path / "killed.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent), run_dir=str(tmp_path / "killed")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    assert load_checkpoint_file(checkpoint)["state"] == {"epoch": 1, "step": 6, "batch_in_epoch": 2, "history": []}
    assert not [p for p in checkpoint.parent.iterdir() if p.suffix == ".tmp"]
    resumed = make_engine(tmp_path / "resumed", epochs=3, num_workers=2)
    resumed.fit(resume_from=checkpoint)
    for name, value in _final_weights(reference).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_sigkill_while_a_checkpoint_write_is_in_flight_resumes_from_the_previous_one(tmp_path: Path) -> None:
    reference = make_engine(tmp_path / "ref", epochs=3)
    reference.fit()
    script = tmp_path / "killed.py"
    script.write_text(KILL_IN_FLIGHT_SCRIPT.format(tests=str(Path(__file__).parent), run_dir=str(tmp_path / "killed")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    folder = tmp_path / "killed" / "checkpoints"
    assert load_checkpoint_file(folder / "last.pt")["state"]["step"] == 4  # the last write that completed
    assert [p.name.startswith(".last.pt.") for p in folder.iterdir() if p.suffix == ".tmp"] == [True]
    resumed = make_engine(tmp_path / "killed", epochs=3)  # the same run directory, as `oml train --resume`
    resumed.fit(resume_from=folder / "last.pt")
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp"]  # the killed write's temp file was removed
    for name, value in _final_weights(reference).items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_ctrl_c_saves_a_checkpoint_and_reports_interrupted(tmp_path: Path) -> None:
    class CtrlCAtFive:
        @hookimpl
        def oml_train_batch_end(self, engine):
            if engine.state.step == 5:
                os.kill(os.getpid(), signal.SIGINT)

    recorder = Recorder()
    before = signal.getsignal(signal.SIGINT)  # Python's default, or one another library of the process installed
    state = make_engine(tmp_path, plugins=[CtrlCAtFive(), recorder], epochs=3).fit()
    assert recorder.calls[-1] == "fit_end:interrupted" and state.interrupted
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["state"]["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # the handler found at the start is put back


def test_corrupt_and_malicious_checkpoints_are_refused(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pt"
    atomic_save({"format": "oml-checkpoint/1", "model": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"truncated.pt cannot be read .* corrupt, truncated"):
        load_checkpoint_file(truncated)

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "oml-checkpoint/1", "payload": Payload()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt cannot be read"):
        load_checkpoint_file(evil)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="not an OML engine checkpoint"):
        atomic_save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
        load_checkpoint_file(tmp_path / "plain.pt")


def test_atomic_save_never_leaves_a_torn_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ck.pt"
    atomic_save({"v": torch.tensor([1.0])}, path)

    def crash(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["v"].item() == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_two_engines_on_one_host_never_see_each_others_plugins(tmp_path: Path) -> None:
    """A notebook that re-runs a cell: each engine validates once per epoch and steps its scheduler once per step."""
    from oml_core import Host

    host = Host(entry_points=False, env={})
    host_plugins = [p.name for p in host.plugins]

    class CountValidations:
        def __init__(self) -> None:
            self.validations = 0

        @hookimpl
        def oml_validate(self, engine):
            self.validations += 1
            return {"OVERALL": {"cmc": {1: 0.5}}}

    counters, engines = [], []
    for run in ("first", "second"):
        counter = CountValidations()
        engine = make_engine(tmp_path / run, plugins=[counter], epochs=2, host=host, scheduler_interval="step")
        engine.val_dataset = engine.train_dataset
        counters.append(counter)
        engines.append(engine)
    assert [p.name for p in host.plugins] == host_plugins  # the host never gets an engine's built-ins
    for engine, counter in zip(engines, counters):
        engine.fit()
        assert counter.validations == 2
        assert engine.scheduler.last_epoch == 8  # StepLR stepped once per batch: 2 epochs x 4 batches
        assert engine.scheduler.get_last_lr() == [pytest.approx(0.05 * 0.5**8)]
        assert sum(type(p).__name__ == "Validation" for p in engine.pm.get_plugins()) == 1


def test_a_plugin_replaces_the_default_validation() -> None:
    class ConstantValidation:
        @hookimpl
        def oml_validate(self, engine):
            return {"OVERALL": {"score": {1: 0.25}}}

    engine = make_engine(None, plugins=[ConstantValidation()], epochs=1)
    engine.val_dataset = engine.train_dataset
    assert engine.validate() == {"OVERALL": {"score": {1: 0.25}}}
    assert engine.state.metrics == {"OVERALL/score/1": 0.25}
    assert engine.state.history[-1]["OVERALL/score/1"] == 0.25


def test_an_engine_plugin_with_a_misspelled_hook_is_refused_naming_it() -> None:
    from oml_core.errors import PluginValidationError

    class Misspelled:
        def oml_epoch_ends(self, engine):
            pass

    with pytest.raises(PluginValidationError, match="Misspelled.*oml_epoch_ends"):
        make_engine(None, plugins=[Misspelled()])


def test_plain_loop_without_engine_still_works() -> None:
    """Components are usable in a user's own loop (seed 000's shape): the engine is optional."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_components import Embedder, NoisyBlobs, PullTogether, SeededBatches

    dataset = NoisyBlobs()
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=SeededBatches(len(dataset), 6))
    model, criterion = Embedder(), PullTogether()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for batch in loader:
        loss = criterion(model(batch["input_tensors"]), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert set(criterion.last_logs) == {"positive", "negative"}
