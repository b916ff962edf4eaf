"""The ``clearml`` logger: one ClearML task per OML run directory, online or as an offline session."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import attrs

from oml_core.engine.tracking import TrackerLogger

#: ClearML's framework bindings and repository detection, all off. A key left out of this dict counts as on, and
#: ``auto_connect_frameworks=False`` leaves repository detection on: it would record the plugin's own source folder
#: (the frame that calls ``Task.init``), not the user's code, and ``Task.close`` waits up to 300 s for it (git and
#: a package analysis); on a loaded machine that outlasted ``close_timeout`` and the session was never stored.
_NOTHING_AUTO_CONNECTED = dict.fromkeys(
    ("detect_repository", "matplotlib", "tensorflow", "tensorboard", "tfdefines", "pytorch", "megengine", "xgboost",
     "catboost", "scikit", "joblib", "fastai", "lightgbm", "hydra", "gradio"),
    False,
)  # fmt: skip


@attrs.frozen(kw_only=True)
class ClearMLLoggerConfig:
    """Log to ClearML, online or as an offline session: one ClearML task per OML run directory."""

    project: str = "oml"
    """The ClearML project."""
    task_name: str | None = None
    """The task's name; unset: the run directory's name."""
    offline: bool = False
    """Write an offline session (folder and zip in ``$CLEARML_CACHE_DIR/offline``) for
    ``Task.import_offline_session``; online needs a configured server (``clearml-init`` or ``CLEARML_API_*``)."""
    tags: tuple[str, ...] = ()
    """Tags of the task."""
    log_figures: bool = True
    """Send the worst-query picture of every validation."""
    log_checkpoint: bool = False
    """Upload ``checkpoints/best.pt`` as an artifact when training ends."""
    close_timeout: float = 120.0
    """Seconds to wait at the end for what is still queued."""


class ClearMLLogger(TrackerLogger):
    """The resolved config as the task's ``config`` hyper-parameters, scalars per step and per validation
    (title = the name without its last part, series = the last part), worst-query debug images and the best
    checkpoint as an artifact. A resumed OML run continues the same task online (``continue_last_task``); offline,
    ClearML cannot reopen a session, so the resumed run writes a new session tagged ``resumed-from:<task id>``."""

    tracker = "clearml"

    def __init__(
        self,
        project: str = "oml",
        task_name: str | None = None,
        offline: bool = False,
        tags: tuple[str, ...] = (),
        log_figures: bool = True,
        log_checkpoint: bool = False,
        close_timeout: float = 120.0,
        *,
        run_dir: str | Path,
    ) -> None:
        self.project, self.offline = project, offline
        self.task_name = task_name or Path(run_dir).name
        self.tags = list(tags)
        super().__init__(run_dir=run_dir, log_figures=log_figures, log_checkpoint=log_checkpoint, close_timeout=close_timeout)

    def _where(self) -> str:
        return "offline session" if self.offline else "the ClearML server"

    def _start(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        from clearml import Task

        Task.set_offline(offline_mode=self.offline)
        previous = resume.get("task_id") if resume else None
        tags = list(self.tags)
        continue_task: Any = False
        if previous and not self.offline:
            continue_task = previous
        elif previous:
            tags.append(f"resumed-from:{previous}")
        self.task = Task.init(
            project_name=self.project,
            task_name=self.task_name,
            tags=tags or None,
            continue_last_task=continue_task,
            reuse_last_task_id=False,
            auto_connect_frameworks=dict(_NOTHING_AUTO_CONNECTED),
            auto_connect_arg_parser=False,
            auto_connect_streams=False,
            auto_resource_monitoring=False,
        )
        self.logger = self.task.get_logger()
        state: dict[str, Any] = {"task_id": self.task.id, "project": self.project, "offline": self.offline}
        if self.offline:
            state["offline_folder"] = str(self.task.get_offline_mode_folder())
        if previous and self.offline:
            state["resumed_from"] = previous
        return state

    def _send_params(self, params: dict[str, str]) -> None:
        self.task.connect(params, name="config")

    def _send_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            title, _, series = name.rpartition("/")
            self.logger.report_scalar(title=title or name, series=series, value=value, iteration=step)

    def _send_image(self, name: str, png: bytes, step: int) -> None:
        from PIL import Image

        title, _, series = name.rpartition("/")
        with Image.open(io.BytesIO(png)) as image:
            self.logger.report_image(title=title or name, series=series, iteration=step, image=image.convert("RGB"))

    def _send_artifact(self, path: Path, name: str) -> None:
        self.task.upload_artifact(name=f"{name}/{path.name}", artifact_object=str(path), wait_on_upload=True)

    def _finish(self) -> None:
        self.logger.flush()
        self.task.close()
