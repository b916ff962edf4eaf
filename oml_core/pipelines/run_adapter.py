"""A training run's directory as a ready model: extractor with its best weights, transform, distance, threshold.

TODO(runs.load_run): a stand-in for ``oml_core.runs.load_run`` (being written on another branch); ``oml calibrate``
and ``oml serve`` use it until that lands, then this module goes and they call ``runs.load_run``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import torch

from oml_core.errors import OMLError
from oml_core.host import Host

CALIBRATION_FILE = "calibration.json"


@attrs.define(kw_only=True)
class RunModel:
    """What a run directory gives a user of its model."""

    run_dir: Path
    config: Any  # the TrainConfig the run was trained with
    extractor: torch.nn.Module
    transform: Any
    im_size: int
    metric: str
    checkpoint: Path | None
    fingerprint: str
    threshold: float | None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_calibration(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``calibration.json`` (written by ``oml calibrate``), or None."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OMLError(f"{path}: not a readable calibration file ({exc}); run `oml calibrate --run {run_dir}` again") from None
    if not isinstance(data, dict) or not isinstance(data.get("threshold"), (int, float)):
        raise OMLError(f"{path}: has no numeric 'threshold'; run `oml calibrate --run {run_dir}` again")
    return data


def load_run(run_dir: str | Path, host: Host | None = None, *, checkpoint: str = "best") -> RunModel:
    """Load ``RUN/config.yaml`` and ``RUN/checkpoints/best.pt`` (``last.pt`` when there is no best one).

    Example:
        >>> run = load_run("runs/mock-train-20240101-000000-000000")   # doctest: +SKIP
        >>> run.extractor(run.transform(image)[None]).shape            # doctest: +SKIP
        torch.Size([1, 512])
    """
    from oml_core.pipelines import load_pipeline_config
    from oml_core.pipelines.train import build_transforms, load_model_weights

    root = Path(run_dir)
    config_path = root / "config.yaml"
    if not config_path.is_file():
        raise OMLError(f"{str(run_dir)!r} is not a run directory: it has no config.yaml (oml train writes one into each run)")
    host = host if host is not None else Host()
    cfg = load_pipeline_config(host, config_path, pipeline="train")
    torch.manual_seed(cfg.seed)
    extractor = host.registries.extractors.create(cfg.extractor)
    candidates = [root / "checkpoints" / f"{checkpoint}.pt", root / "checkpoints" / "last.pt"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None:
        load_model_weights(extractor, found)
        fingerprint = _sha256(found)
    else:
        raise OMLError(f"run {str(run_dir)!r} has no checkpoint (looked for {', '.join(str(p) for p in candidates)})")
    extractor.eval()
    transform = build_transforms(host, cfg.data.transforms_val, cfg.data.im_size, train=False)
    calibration = read_calibration(root)
    return RunModel(
        run_dir=root,
        config=cfg,
        extractor=extractor,
        transform=transform,
        im_size=int(cfg.data.im_size),
        metric=str(cfg.validation.metric),
        checkpoint=found,
        fingerprint=fingerprint,
        threshold=float(calibration["threshold"]) if calibration else None,
    )
