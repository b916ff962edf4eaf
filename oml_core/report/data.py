"""What a report reads from a run directory: ``metrics.json`` (every validation's metrics), ``config.yaml`` and
``validation/embeddings.pt`` (the latest validation's embeddings, saved by the engine's ValidationSnapshot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import torch

from oml_core.errors import OMLError

SNAPSHOT = "validation/embeddings.pt"


class ReportError(OMLError):
    """A run directory lacks what a report needs, or holds it in a form that cannot be read."""


@attrs.frozen
class RunData:
    run_dir: Path
    history: list[dict[str, Any]]  # one row per validation: epoch, step and the flat metrics
    status: str
    config: dict[str, Any]
    snapshot: dict[str, Any] | None


def load_run_data(run_dir: str | Path) -> RunData:
    """Read a run directory (a clear :class:`ReportError` names what is missing and why).

    Example:
        >>> load_run_data("runs/tiny-train-20260101-120000-000000").history[-1]["OVERALL/cmc/1"]  # doctest: +SKIP
        0.75
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a run directory (oml train prints the one it creates: 'oml: run directory ...')")
    metrics_path = run_dir / "metrics.json"
    history: list[dict[str, Any]] = []
    status = "unknown (no metrics.json: the run did not finish)"
    if metrics_path.is_file():
        try:
            summary = json.loads(metrics_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReportError(f"{metrics_path}: not valid JSON ({exc}); the run may have been killed while writing it") from None
        history = list(summary.get("history", [])) if isinstance(summary, dict) else []
        status = str(summary.get("status", "unknown")) if isinstance(summary, dict) else "unknown"
    snapshot = None
    snapshot_path = run_dir / SNAPSHOT
    if snapshot_path.is_file():
        try:
            snapshot = torch.load(snapshot_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
            raise ReportError(
                f"{snapshot_path}: cannot be read ({type(exc).__name__}: {exc}); validate again to rewrite it"
            ) from None
    if not history and snapshot is None:
        raise ReportError(
            f"{run_dir} has neither metrics.json nor {SNAPSHOT}: nothing to report. Runs of oml train write both "
            "(validation embeddings since this version of OML); a run killed before its first validation has none."
        )
    config: dict[str, Any] = {}
    if (run_dir / "config.yaml").is_file():
        from oml_core.config import load_yaml

        loaded = load_yaml(run_dir / "config.yaml")
        config = loaded if isinstance(loaded, dict) else {}
    return RunData(run_dir=run_dir, history=history, status=status, config=config, snapshot=snapshot)
