"""TrackerLogger, the base of the tracker plugins: a clear error at start, a lost tracker reported once without
blocking training, the tracked run's id kept in the run directory for resuming."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from oml_core._markers import hookimpl
from oml_core.engine.tracking import TrackerError, TrackerLogger, flatten_params
from oml_core.protocols import LoggerWithOutcome

sys.path.insert(0, str(Path(__file__).parent))
from tiny_components import make_engine  # noqa: E402


class FakeTracker(TrackerLogger):
    tracker = "fake"

    def __init__(self, *, run_dir: Path, refuse: bool = False, close_timeout: float = 10.0) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, Any]] = []
        self.resumed_from: dict[str, Any] | None = None
        self.down = threading.Event()
        self.finished = False
        super().__init__(run_dir=run_dir, close_timeout=close_timeout)

    def _where(self) -> str:
        return "fake://tracker"

    def _start(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        if self.refuse:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        self.resumed_from = resume
        return {"run_id": resume["run_id"] if resume else "run-1"}

    def _check(self) -> None:
        if self.down.is_set():
            time.sleep(0.5)  # a dead server answers slowly, if at all
            raise ConnectionError("connection reset by peer")

    def _send_params(self, params: dict[str, str]) -> None:
        self._check()
        self.sent.append(("params", params))

    def _send_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._check()
        self.sent.append(("metrics", (metrics, step)))

    def _finish(self) -> None:
        self.finished = True


def test_unreachable_at_start_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrackerError) as info:
        FakeTracker(run_dir=tmp_path, refuse=True)
    message = str(info.value)
    assert "fake logger could not start its run at fake://tracker" in message and "Connection refused" in message
    assert "remove {type: fake}" in message
    assert not (tmp_path / "trackers").exists()


def test_sends_in_order_and_resumes_the_same_run(tmp_path: Path) -> None:
    logger = FakeTracker(run_dir=tmp_path)
    logger.log_hparams({"optimizer": {"lr": 0.1}})
    for step in range(1, 4):
        logger.log_metrics({"train/loss": 1.0 / step}, step)
    logger.close()
    assert logger.sent[0] == ("params", {"optimizer/lr": "0.1"})
    assert [payload[1] for kind, payload in logger.sent[1:]] == [1, 2, 3] and logger.finished
    again = FakeTracker(run_dir=tmp_path)
    assert again.resumed and again.resumed_from == {"run_id": "run-1"}
    again.close()


def test_lost_mid_run_never_blocks_and_is_reported_once(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    logger = FakeTracker(run_dir=tmp_path)
    logger.log_metrics({"x": 1.0}, 1)
    deadline = time.monotonic() + 10
    while not logger.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    logger.down.set()
    started = time.monotonic()
    for step in range(2, 200):
        logger.log_metrics({"x": float(step)}, step)  # the caller (training) never waits for the tracker
    assert time.monotonic() - started < 1.0
    logger.close()
    err = capfd.readouterr().err
    assert err.count("lost its tracker") == 1 and "connection reset by peer" in err and "Training goes on" in err
    assert logger.failed_sends == 1 and logger.dropped == 197  # one try, then no retries for RETRY_AFTER_S
    assert logger.finished


def test_close_gives_up_after_close_timeout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    logger = FakeTracker(run_dir=tmp_path, close_timeout=0.2)
    release = threading.Event()
    logger._send_metrics = lambda metrics, step: release.wait(5)  # type: ignore[method-assign]
    logger.log_metrics({"x": 1.0}, 1)
    started = time.monotonic()
    logger.close()
    assert time.monotonic() - started < 2
    assert "did not answer within 0 s" in capfd.readouterr().err
    release.set()


def test_flatten_params_cuts_long_values() -> None:
    flat = flatten_params({"a": {"b": "x" * 6000, "c": [1, 2]}, "empty": {}})
    assert len(flat["a/b"]) == 5000 and flat["a/b"].endswith("...") and flat["a/c"] == "[1, 2]" and flat["empty"] == "{}"


class _EndRun:
    def __init__(self, how: str) -> None:
        self.how = how

    @hookimpl
    def oml_train_batch_end(self, engine: Any) -> None:
        if engine.state.step == 2:
            if self.how == "failed":
                raise RuntimeError("broken plugin")
            if self.how == "interrupted":
                raise KeyboardInterrupt
            engine.state.request_stop("enough")


@pytest.mark.parametrize("how", ["completed", "stopped", "failed", "interrupted"])
def test_the_engine_tells_the_tracker_how_the_run_ended(tmp_path: Path, how: str) -> None:
    engine = make_engine(tmp_path, plugins=[] if how == "completed" else [_EndRun(how)], epochs=1)
    tracker = FakeTracker(run_dir=tmp_path)
    engine.loggers.append(tracker)
    assert isinstance(tracker, LoggerWithOutcome)
    if how in ("failed", "interrupted"):
        with pytest.raises((RuntimeError, KeyboardInterrupt)):
            engine.fit()
    else:
        engine.fit()
    assert tracker.outcome == how and tracker.finished  # told before close(), which ended the tracked run
