"""The ``wandb`` logger: one W&B run per OML run directory, online or offline."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Literal

import attrs

from oml_core.engine.tracking import TrackerLogger


@attrs.frozen(kw_only=True)
class WandbLoggerConfig:
    """Log to Weights & Biases, online or offline: one W&B run per OML run directory."""

    project: str = "oml"
    """The W&B project."""
    entity: str | None = None
    """The W&B team or user; unset: your default entity."""
    mode: Literal["online", "offline"] = "online"
    """``online`` needs ``WANDB_API_KEY`` (or ``wandb login``); ``offline`` writes ``<run_dir>/wandb`` for ``wandb sync``."""
    name: str | None = None
    """The W&B run's name; unset: the run directory's name."""
    tags: tuple[str, ...] = ()
    """Tags of the W&B run."""
    log_figures: bool = True
    """Send the worst-query picture of every validation."""
    log_checkpoint: bool = False
    """Upload ``checkpoints/best.pt`` as a model artifact when training ends."""
    start_timeout: float = 60.0
    """Seconds ``wandb.init`` may take online."""
    close_timeout: float = 120.0
    """Seconds to wait at the end for what is still queued."""


class WandbLogger(TrackerLogger):
    """The resolved config as the run's config, metrics per step and per validation, worst-query images and the best
    checkpoint; a resumed OML run continues the same W&B run id (kept in ``<run_dir>/trackers/wandb.json``)."""

    tracker = "wandb"

    def __init__(
        self,
        project: str = "oml",
        entity: str | None = None,
        mode: str = "online",
        name: str | None = None,
        tags: tuple[str, ...] = (),
        log_figures: bool = True,
        log_checkpoint: bool = False,
        start_timeout: float = 60.0,
        close_timeout: float = 120.0,
        *,
        run_dir: str | Path,
    ) -> None:
        self.project, self.entity, self.mode = project, entity, mode
        self.name = name or Path(run_dir).name
        self.tags = list(tags)
        self.start_timeout = start_timeout
        super().__init__(run_dir=run_dir, log_figures=log_figures, log_checkpoint=log_checkpoint, close_timeout=close_timeout)

    def _where(self) -> str:
        return "offline files in " + str(self.run_dir / "wandb") if self.mode == "offline" else f"project {self.project} (online)"

    def _start(self, resume: dict[str, Any] | None) -> dict[str, Any]:
        import wandb

        settings = wandb.Settings(
            console="off", silent=True, init_timeout=self.start_timeout, x_disable_stats=True, save_code=False, disable_git=True
        )
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=self.name,
            id=resume.get("run_id") if resume else None,
            resume="allow" if resume else None,
            dir=str(self.run_dir),
            mode=self.mode,  # type: ignore[arg-type]
            tags=self.tags or None,
            reinit="create_new",
            settings=settings,
        )
        return {"run_id": self.run.id, "project": self.project, "mode": self.mode, "dir": str(self.run.dir)}

    def log_hparams(self, params: Any) -> None:
        # W&B keeps nested configs (and shows them nested): send the config as it is, made JSON-safe
        self._put(self._send_config, json.loads(json.dumps(dict(params), default=str)))

    def _send_config(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def _send_params(self, params: dict[str, str]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def _send_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def _send_image(self, name: str, png: bytes, step: int) -> None:
        import wandb
        from PIL import Image

        with Image.open(io.BytesIO(png)) as image:
            self.run.log({name: wandb.Image(image.convert("RGB"))}, step=step)

    def _send_artifact(self, path: Path, name: str) -> None:
        import wandb

        artifact = wandb.Artifact(f"{self.run.id}-{name}", type="model" if name == "checkpoints" else name)
        artifact.add_file(str(path), name=path.name)
        self.run.log_artifact(artifact)

    def _finish(self) -> None:
        # a non-zero exit code marks the W&B run failed (an exception, Ctrl-C); early stopping is a normal end
        self.run.finish(exit_code=1 if self.outcome in ("failed", "interrupted") else 0)
