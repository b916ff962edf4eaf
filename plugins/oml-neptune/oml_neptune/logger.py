"""The ``neptune`` logger: one Neptune run per OML run directory (``neptune`` 1.x client)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Literal

import attrs

from oml_core.engine.tracking import TrackerLogger


@attrs.frozen(kw_only=True)
class NeptuneLoggerConfig:
    """Log to Neptune (``neptune`` 1.x client): one Neptune run per OML run directory."""

    project: str = "oml/oml"
    """The Neptune project, ``workspace/project``."""
    mode: Literal["async", "sync", "offline"] = "async"
    """``async`` / ``sync`` need ``NEPTUNE_API_TOKEN``; ``offline`` keeps operations in ``.neptune/offline`` of the
    working directory for ``neptune sync``."""
    name: str | None = None
    """The Neptune run's name; unset: the run directory's name."""
    tags: tuple[str, ...] = ()
    """Tags of the Neptune run."""
    log_figures: bool = True
    """Send the worst-query picture of every validation."""
    log_checkpoint: bool = False
    """Upload ``checkpoints/best.pt`` when training ends."""
    close_timeout: float = 120.0
    """Seconds to wait at the end for what is still queued."""


class NeptuneLogger(TrackerLogger):
    """The resolved config under ``parameters/``, metrics as series with steps, worst-query images as image
    series and the best checkpoint under ``checkpoints/``. A resumed OML run reuses the run's ``custom_run_id``
    (kept in ``<run_dir>/trackers/neptune.json``), so online Neptune continues the same run. Offline sessions do not
    record ``custom_run_id`` (Neptune resolves it on the server at start), so each offline session becomes its own
    run when synced; both carry the same ``oml/run_id`` field."""

    tracker = "neptune"

    def __init__(
        self,
        project: str = "oml/oml",
        mode: str = "async",
        name: str | None = None,
        tags: tuple[str, ...] = (),
        log_figures: bool = True,
        log_checkpoint: bool = False,
        close_timeout: float = 120.0,
        *,
        run_dir: str | Path,
    ) -> None:
        self.project, self.mode = project, mode
        self.name = name or Path(run_dir).name
        self.tags = list(tags)
        super().__init__(run_dir=run_dir, log_figures=log_figures, log_checkpoint=log_checkpoint, close_timeout=close_timeout)

    def _where(self) -> str:
        return "offline (.neptune/offline)" if self.mode == "offline" else f"project {self.project}"

    def _start(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        import neptune

        custom_run_id = resume["custom_run_id"] if resume else uuid.uuid4().hex
        self.run = neptune.init_run(
            project=self.project,
            mode=self.mode,
            name=self.name,
            tags=self.tags or None,
            custom_run_id=custom_run_id,
            capture_stdout=False,
            capture_stderr=False,
            capture_hardware_metrics=False,
            capture_traceback=False,
            source_files=[],
            git_ref=False,
        )
        self.run["oml/run_id"] = custom_run_id  # offline sessions do not record custom_run_id: this field joins them
        self.run["oml/run_dir"] = str(self.run_dir.resolve())
        return {"custom_run_id": custom_run_id, "project": self.project, "mode": self.mode}

    def _send_params(self, params: dict[str, str]) -> None:
        for name, value in params.items():
            self.run[f"parameters/{name}"] = value

    def _send_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.run[name].append(value, step=step)

    def _send_image(self, name: str, png: bytes, step: int) -> None:
        from neptune.types import File

        self.run[name].append(File.from_content(png, extension="png"), step=step)

    def _send_artifact(self, path: Path, name: str) -> None:
        self.run[f"{name}/{path.stem}"].upload(str(path), wait=True)

    def _finish(self) -> None:
        if self.outcome in ("failed", "interrupted"):  # as Neptune's own exception hook marks a run that raised
            self.run["sys/failed"] = True
        self.run.stop()
