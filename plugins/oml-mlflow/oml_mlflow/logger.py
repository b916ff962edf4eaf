"""The ``mlflow`` logger: one MLflow run per OML run directory."""

from __future__ import annotations

import io
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import attrs

from oml_core.engine.tracking import TrackerError, TrackerLogger

_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
_RETRIES_VARIABLE = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
_BATCH = 500  # MLflow takes at most 1000 metrics and 100 params per log_batch


@attrs.frozen(kw_only=True)
class MLflowLoggerConfig:
    """Log to MLflow: a tracking server or a local store, one MLflow run per OML run directory."""

    tracking_uri: str | None = None
    """A tracking server (``http://127.0.0.1:5000``) or a local store (``sqlite:///runs/mlflow.db``); unset:
    ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<runs folder>/mlflow.db``."""
    experiment: str = "oml"
    """The MLflow experiment (created when missing)."""
    run_name: str | None = None
    """The MLflow run's name; unset: the run directory's name."""
    artifact_location: str | None = None
    """Where a new experiment of a local store keeps artifacts; unset: ``mlartifacts`` next to the database."""
    tags: dict[str, str] = attrs.field(factory=dict)
    """Tags of the MLflow run (``oml.run_dir`` is always set)."""
    log_figures: bool = True
    """Send the worst-query picture of every validation."""
    log_checkpoint: bool = False
    """Upload ``checkpoints/best.pt`` when training ends."""
    start_timeout: float = 10.0
    """Seconds to wait for a tracking server at start."""
    http_retries: int = 2
    """Retries of one request during the run (MLflow's ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, unless already set)."""
    close_timeout: float = 60.0
    """Seconds to wait at the end for what is still queued."""


def safe_key(name: str) -> str:
    """An MLflow-valid metric/param name (letters, digits, ``_-. /``; the rest become ``_``).

    Example:
        >>> safe_key("val/OVERALL/fnmr@fmr/0.1")
        'val/OVERALL/fnmr_fmr/0.1'
    """
    return _UNSAFE_KEY.sub("_", name)[:250]


class MLflowLogger(TrackerLogger):
    """Metrics per step and per validation, the resolved config as params, worst-query images (``log_image`` with
    key and step) and, with ``log_checkpoint``, ``checkpoints/best.pt`` as an artifact. A resumed OML run continues the
    same MLflow run (its id is kept in ``<run_dir>/trackers/mlflow.json``)."""

    tracker = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = "oml",
        run_name: str | None = None,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
        log_figures: bool = True,
        log_checkpoint: bool = False,
        start_timeout: float = 10.0,
        http_retries: int = 2,
        close_timeout: float = 60.0,
        *,
        run_dir: str | Path,
    ) -> None:
        run_dir = Path(run_dir)
        self._uri_given = bool(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        self.tracking_uri = (
            tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir.parent.resolve()}/mlflow.db"
        )
        self.experiment = experiment
        self.run_name = run_name or run_dir.name
        self.artifact_location = artifact_location
        self.tags = dict(tags or {})
        self.start_timeout = start_timeout
        self.http_retries = http_retries
        self.run_id = ""
        self._set_retries = False
        super().__init__(run_dir=run_dir, log_figures=log_figures, log_checkpoint=log_checkpoint, close_timeout=close_timeout)

    def _where(self) -> str:
        return self.tracking_uri

    # ------------------------------------------------------------------------------------------ start
    def _start(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        if resume is not None and resume.get("tracking_uri") and not self._uri_given:
            self.tracking_uri = resume["tracking_uri"]  # the store the run was started in
        if self.tracking_uri.startswith(("http://", "https://")):
            # MLflow reads its retry count from the environment only (no client option); set for this run when the
            # user has not, and removed again when the run ends (MLflow's default of 7 retries with back-off makes a
            # lost server hold the logger's thread for minutes)
            if _RETRIES_VARIABLE not in os.environ:
                os.environ[_RETRIES_VARIABLE] = str(self.http_retries)
                self._set_retries = True
            # No MLFLOW_HTTP_REQUEST_TIMEOUT from start_timeout: the variable is the whole process's, so the first
            # logger's (a 2 s start check) became every later run's per-request limit, and a server slowed by load
            # then failed create_run or lost the run. Requests run on the background thread; close_timeout bounds
            # the end of a run.
            self._check_server()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)
        if resume is not None and resume.get("run_id"):
            run = self.client.get_run(resume["run_id"])
            self.run_id = run.info.run_id
            self._existing_params = dict(run.data.params)
            if run.info.status != "RUNNING":
                self.client.update_run(self.run_id, status="RUNNING")
            return {**resume, "tracking_uri": self.tracking_uri}
        self._existing_params = {}
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            experiment_id = self.client.create_experiment(self.experiment, artifact_location=self._artifact_location())
        tags = {"oml.run_dir": str(self.run_dir.resolve()), **self.tags}
        run = self.client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        return {"tracking_uri": self.tracking_uri, "experiment_id": experiment_id, "run_id": self.run_id}

    def _artifact_location(self) -> str | None:
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri.startswith("sqlite:///"):
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            return (database.parent / "mlartifacts").resolve().as_uri()
        return None  # a server decides (its --artifacts-destination)

    def _check_server(self) -> None:
        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=self.start_timeout) as response:  # noqa: S310 - the user's tracking URI
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):  # reachable, behind authentication: MLflow's own client handles credentials
                return
            raise TrackerError(self._unreachable(f"HTTP {exc.code} from {url}")) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackerError(self._unreachable(f"{reason}")) from None

    def _unreachable(self, reason: str) -> str:
        return (
            f"the mlflow logger cannot reach the MLflow tracking server at {self.tracking_uri} ({reason}) within "
            f"{self.start_timeout:g} s. Start the server (mlflow server --host 127.0.0.1 --port 5000), fix tracking_uri "
            "in the config's loggers entry, or log to a local store instead (tracking_uri: sqlite:///runs/mlflow.db)."
        )

    # ------------------------------------------------------------------------------------------ sending
    def _send_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        new: dict[str, str] = {}
        changed: list[str] = []
        for name, value in params.items():
            key = safe_key(name)
            if key in self._existing_params:
                if self._existing_params[key] != value:
                    changed.append(key)
            else:
                new[key] = value
        items = list(new.items())
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in items[i : i + 100]])
        self._existing_params.update(new)
        if changed:  # MLflow params cannot change: a resumed run with other settings says so in a tag
            self.client.log_batch(self.run_id, tags=[RunTag("oml.params_changed_on_resume", ", ".join(changed)[:5000])])

    def _send_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(safe_key(name), value, now, step) for name, value in metrics.items()]
        for i in range(0, len(entries), _BATCH):
            self.client.log_batch(self.run_id, metrics=entries[i : i + _BATCH])

    def _send_image(self, name: str, png: bytes, step: int) -> None:
        from PIL import Image

        with Image.open(io.BytesIO(png)) as image:
            self.client.log_image(self.run_id, image.convert("RGB"), key=safe_key(name), step=step)

    def _send_artifact(self, path: Path, name: str) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=name)

    def _finish(self) -> None:
        # early stopping is a normal end; Ctrl-C is KILLED in MLflow's terms
        status = {"failed": "FAILED", "interrupted": "KILLED"}.get(self.outcome or "", "FINISHED")
        self.client.set_terminated(self.run_id, status=status)
        if self._set_retries:  # put the process's environment back as it was before this run
            os.environ.pop(_RETRIES_VARIABLE, None)
