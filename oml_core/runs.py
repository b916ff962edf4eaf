"""A trained run, ready to use: ``load_run(run_dir)`` gives the extractor with the run's best weights, its
inference preprocessing, the image size, the distance, the model fingerprint and (after ``oml calibrate``) the
decision threshold. Every command that takes ``--run RUN_DIR`` (embed, predict, index, search, export, calibrate)
goes through it.

A run directory, as ``oml train`` writes it::

    RUN/config.yaml              the resolved config (extractor, data.im_size, data.transforms_val, validation.metric)
    RUN/checkpoints/best.pt      the best validated state (``last.pt`` is used, with a note, when there is no best)
    RUN/calibration.json         written by ``oml calibrate``: thresholds for target FMRs, the default ``threshold``
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from torch import nn

    from oml_core.fingerprint import ModelFingerprint
    from oml_core.host import Host
    from oml_core.registry import ModalityChoice

__all__ = ["RunArtifacts", "load_run"]

CONFIG_FILE = "config.yaml"
CALIBRATION_FILE = "calibration.json"
CHECKPOINTS = ("best.pt", "last.pt")


@attrs.frozen(kw_only=True)
class RunArtifacts:
    """What a command needs from a trained run (see ``load_run``)."""

    run_dir: Path
    config: dict[str, Any]
    extractor_config: dict[str, Any]
    extractor: nn.Module
    checkpoint: Path
    transform: Any
    im_size: int
    distance: str
    fingerprint: ModelFingerprint
    calibration: dict[str, Any] | None = None
    #: the run's ``data.modality`` (texts, audio...); None: its rows are images
    modality: ModalityChoice | None = None

    @property
    def threshold(self) -> float | None:
        """The default decision threshold of ``oml calibrate`` (``calibration.json``'s ``threshold``), if any."""
        if self.calibration is None or self.calibration.get("threshold") is None:
            return None
        return float(self.calibration["threshold"])

    @property
    def embedding_size(self) -> int:
        return self.fingerprint.embedding_size


def load_run(run_dir: str | Path, *, host: Host | None = None, checkpoint: str | None = None) -> RunArtifacts:
    """Load a run directory written by ``oml train``: the extractor (eval mode, on the CPU) with the weights of
    ``checkpoints/best.pt`` (or ``checkpoint``: a file name under ``checkpoints/`` or a path), its preprocessing and
    fingerprint, and the calibration when ``oml calibrate`` wrote one.

    Example:
        >>> run = load_run("runs/mock/2026-01-01_00-00-00")   # doctest: +SKIP
        >>> embeddings = run.extractor(run.transform(image)[None])   # doctest: +SKIP
        >>> run.threshold   # doctest: +SKIP
        0.83
    """
    from oml_core.config import load_yaml
    from oml_core.fingerprint import fingerprint_model_identity
    from oml_core.pipelines.train import build_transforms, load_model_weights
    from oml_core.registry import ExtractorChoice

    if host is None:
        from oml_core.host import Host

        host = Host()
    folder = Path(run_dir)
    config_path = folder / CONFIG_FILE
    if not folder.is_dir() or not config_path.is_file():
        what = "does not exist" if not folder.exists() else f"has no {CONFIG_FILE}"
        raise OMLError(
            f"--run {str(run_dir)!r} {what}: a run directory is the folder `oml train` prints and fills "
            f"({CONFIG_FILE}, checkpoints/best.pt), e.g. runs/mock/<date>"
        )
    config = load_yaml(config_path)
    if not isinstance(config, Mapping) or not isinstance(config.get("extractor"), Mapping):
        raise OMLError(f"{config_path}: not a training config (no 'extractor' section); --run needs a directory of `oml train`")
    config = dict(config)
    # the run's own checkpoint holds every weight: pretrained weights named in the config are not loaded again
    extractor_data = _without_weights(config["extractor"])
    choice = host.registries.structure(extractor_data, ExtractorChoice, path="$.extractor", source=str(config_path))
    extractor_config: dict[str, Any] = host.registries.converter.unstructure(choice)
    checkpoint_path = _checkpoint(folder, checkpoint)
    extractor = host.registries.extractors.create(choice)
    load_model_weights(extractor, checkpoint_path)
    extractor.eval()
    data = dict(config.get("data") or {})
    im_size = int(data.get("im_size", 224))
    transforms_val = tuple(data.get("transforms_val") or ())
    modality = None
    if transforms_val or data.get("modality") is not None:
        from oml_core.pipelines.configs import DataConfig

        structured = host.registries.structure(
            {"dataframe": "unused", "transforms_val": list(transforms_val), "modality": data.get("modality")},
            DataConfig, path="$.data", source=str(config_path),
        )
        transforms_val, modality = structured.transforms_val, structured.modality
    transform = build_transforms(host, transforms_val, im_size, train=False)
    calibration = _calibration(folder)
    distance = str((calibration or {}).get("distance") or (config.get("validation") or {}).get("metric") or "euclidean")
    fingerprint = fingerprint_model_identity(
        extractor, extractor_config=extractor_config, transform=transform, distance=distance,
        modality=host.registries.converter.unstructure(modality) if modality is not None else None,
    )
    return RunArtifacts(
        run_dir=folder.resolve(),
        config=config,
        extractor_config=extractor_config,
        extractor=extractor,
        checkpoint=checkpoint_path.resolve(),
        transform=transform,
        im_size=im_size,
        distance=distance,
        fingerprint=fingerprint,
        calibration=calibration,
        modality=modality,
    )


def _without_weights(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: (None if k == "weights" else _without_weights(v)) for k, v in data.items()}
    return data


def _checkpoint(folder: Path, checkpoint: str | None) -> Path:
    if checkpoint is not None:
        given = Path(checkpoint)
        path = given if given.is_absolute() or given.exists() else folder / "checkpoints" / checkpoint
        if not path.is_file():
            raise OMLError(f"run {str(folder)!r}: checkpoint {checkpoint!r} not found (looked at {path})")
        return path
    best, last = (folder / "checkpoints" / name for name in CHECKPOINTS)
    if best.is_file():
        return best
    if last.is_file():
        print(f"oml: note: run {folder} has no checkpoints/best.pt (no validation yet); using last.pt", file=sys.stderr)
        return last
    raise OMLError(f"run {str(folder)!r} has no checkpoints/best.pt nor last.pt: it was stopped before its first checkpoint")


def _calibration(folder: Path) -> dict[str, Any] | None:
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise OMLError(f"{path}: not readable JSON ({exc}); run `oml calibrate --run {folder}` again") from None
    if not isinstance(data, dict):
        raise OMLError(f"{path}: expected a JSON object as `oml calibrate` writes it; run `oml calibrate --run {folder}` again")
    return data
