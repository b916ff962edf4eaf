"""The base of experiment-tracker loggers (MLflow, Weights & Biases, ClearML, Neptune plugins).

A tracker is a remote service: it may be unreachable when a run starts (then the run does not start: one clear
error), and it may go away in the middle of a run (then training goes on: the loss is reported once, and what
could not be sent is dropped; the run directory keeps everything). So a :class:`TrackerLogger` connects in its
constructor, then sends from one background thread: a slow or dead server never blocks a training step.

A resumed run continues the same tracked run: the logger keeps the tracker's run id in
``<run_dir>/trackers/<tracker>.json`` and the next logger created for that run directory reopens that run.
"""

from __future__ import annotations

import io
import json
import queue
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from oml_core.errors import OMLError

#: After a failed send, events are dropped (not tried) for this many seconds, so a dead server costs no retries.
RETRY_AFTER_S = 30.0
#: Longest parameter value sent to a tracker (MLflow's limit is 6000 characters); longer ones are cut.
MAX_PARAM_LENGTH = 5000


class TrackerError(OMLError):
    """A tracker could not be reached, or refused the run, when the run started."""


def flatten_params(params: Mapping[str, Any], sep: str = "/", prefix: str = "") -> dict[str, str]:
    """A nested config as flat ``{"optimizer/lr": "0.001"}`` strings (lists keep their JSON form, long values are cut).

    Example:
        >>> flatten_params({"optimizer": {"type": "adam", "lr": 0.001}, "loggers": [{"type": "csv"}], "x": None})
        {'optimizer/type': 'adam', 'optimizer/lr': '0.001', 'loggers': '[{"type": "csv"}]', 'x': 'None'}
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, sep, f"{name}{sep}"))
            continue
        text = json.dumps(value, default=str) if isinstance(value, list | tuple | Mapping) else str(value)
        flat[name] = text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
    return flat


def figure_png(figure: Any, dpi: int = 80) -> bytes:
    """A matplotlib figure as PNG bytes (rendered in the caller's thread: figures are not thread-safe)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


_STOP = object()


class TrackerLogger:
    """A ``protocols.Logger`` for a remote tracker. Subclasses implement ``_start`` (connect; create the tracked run
    or, given the saved state of an earlier start, continue it; return the state to save) and the ``_send_*`` methods,
    which run on the background thread, and ``_finish``.

    ``log_figures``: send the worst-query pictures of each validation. ``log_checkpoint``: upload
    ``checkpoints/best.pt`` when training ends. The engine's ``TrackerArtifacts`` plugin reads both.

    Example (a subclass in a plugin)::

        class MyTracker(TrackerLogger):
            tracker = "mytracker"
            def _start(self, resume): self.run = connect(resume["run_id"] if resume else None); return {"run_id": ...}
            def _send_metrics(self, metrics, step): self.run.log(metrics, step)
    """

    tracker: ClassVar[str] = "tracker"

    def __init__(
        self,
        *,
        run_dir: str | Path,
        log_figures: bool = True,
        log_checkpoint: bool = False,
        queue_size: int = 10_000,
        close_timeout: float = 60.0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.log_figures = log_figures
        self.log_checkpoint = log_checkpoint
        self.close_timeout = close_timeout
        self.lost: str | None = None  # the first failure, once the tracker was lost
        #: how the run ended (``log_outcome``: completed, stopped, interrupted, failed); None: closed outside a fit
        self.outcome: str | None = None
        self.failed_sends = 0
        self.dropped = 0
        self._next_try = 0.0
        previous = self._read_state()
        self.resumed = previous is not None
        try:
            state = self._start(previous)
        except TrackerError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client library raises its own types; the message is what counts
            raise TrackerError(self._start_failure(exc)) from None
        self._write_state(state)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"oml-{self.tracker}-logger", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------ the Logger protocol
    def log_hparams(self, params: Mapping[str, Any]) -> None:
        self._put(self._send_params, flatten_params(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._put(self._send_metrics, {name: float(value) for name, value in metrics.items()}, int(step))

    def log_figure(self, name: str, figure: Any, step: int) -> None:
        self._put(self._send_image, name, figure_png(figure), int(step))

    def log_artifact(self, path: str | Path, name: str) -> None:
        """Upload the file ``path`` under the folder ``name`` of the tracked run (e.g. ``checkpoints``)."""
        self._put(self._send_artifact, Path(path), name)

    def log_outcome(self, status: str) -> None:
        """Record how the run ended; ``_finish`` marks the tracked run with it (``protocols.LoggerWithOutcome``)."""
        self.outcome = status

    def close(self) -> None:
        """Send what is queued (waiting at most ``close_timeout`` seconds), then end the tracked run."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(self.close_timeout)
        if self._thread.is_alive():
            self._report(
                f"it did not answer within {self.close_timeout:.0f} s at the end of the run; what was still queued is dropped"
            )

    # ------------------------------------------------------------------------------------------ for subclasses
    def _start(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _send_params(self, params: dict[str, str]) -> None:
        raise NotImplementedError

    def _send_metrics(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _send_image(self, name: str, png: bytes, step: int) -> None:
        raise NotImplementedError

    def _send_artifact(self, path: Path, name: str) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """End the tracked run (runs on the background thread after everything queued was sent), marked with
        ``self.outcome`` where the tracker has run states."""

    def _where(self) -> str:
        """Where the tracker is, for messages (a URL, a folder, "offline")."""
        return ""

    def _start_failure(self, exc: BaseException) -> str:
        where = f" at {self._where()}" if self._where() else ""
        return (
            f"the {self.tracker} logger could not start its run{where}: {type(exc).__name__}: {_first_line(exc)}. "
            f"Check that the tracker is running and reachable, or remove {{type: {self.tracker}}} from the config's loggers "
            "(the run directory keeps metrics.csv either way)."
        )

    # ------------------------------------------------------------------------------------------ internals
    @property
    def state_path(self) -> Path:
        return self.run_dir / "trackers" / f"{self.tracker}.json"

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise TrackerError(
                f"{self.state_path}: cannot read the {self.tracker} run of this run directory ({exc}); "
                "delete the file to start a new tracked run"
            ) from None
        return state if isinstance(state, dict) else None

    def _write_state(self, state: dict[str, Any]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")

    def _put(self, method: Any, *args: Any) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait((method, args))
        except queue.Full:
            self.dropped += 1
            self._report(f"its queue is full ({self._queue.maxsize} events): it is too slow or gone; events are dropped")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            method, args = item
            if self.lost is not None and time.monotonic() < self._next_try:
                self.dropped += 1
                continue
            self._call(method, *args)
        self._call(self._finish)

    def _call(self, method: Any, *args: Any) -> None:
        try:
            method(*args)
        except Exception as exc:  # noqa: BLE001 - a lost tracker must never stop training
            self.failed_sends += 1
            self._next_try = time.monotonic() + RETRY_AFTER_S
            self._report(f"{type(exc).__name__}: {_first_line(exc)}")

    def _report(self, problem: str) -> None:
        if self.lost is not None:
            return
        self.lost = problem
        where = f" ({self._where()})" if self._where() else ""
        print(
            f"oml: the {self.tracker} logger lost its tracker{where}: {problem}. Training goes on; what cannot be sent "
            f"to {self.tracker} is dropped from now on, and the run directory {self.run_dir} keeps every metric and "
            "checkpoint. (Reported once.)",
            file=sys.stderr,
            flush=True,
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


__all__ = ["MAX_PARAM_LENGTH", "RETRY_AFTER_S", "TrackerError", "TrackerLogger", "figure_png", "flatten_params"]
