"""Config-driven pipelines (``oml train``, ``oml validate``...): their config classes and the loader."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from oml_core.config import apply_overrides, load_yaml
from oml_core.errors import ConfigError

if TYPE_CHECKING:
    from oml_core.host import Host


def pipeline_configs() -> dict[str, type]:
    """The config class of each pipeline, by the name used in a file's ``pipeline:`` key."""
    from oml_core.pipelines.configs import PIPELINE_CONFIGS

    return dict(PIPELINE_CONFIGS)


def load_pipeline_config(host: Host, path: str | Path, *, pipeline: str | None = None, overrides: list[str] | None = None) -> Any:
    """Read ``path`` (YAML), apply ``--set`` overrides and structure it into its pipeline's config class.

    Example:
        >>> cfg = load_pipeline_config(Host(), "configs/train_mock.yaml")   # doctest: +SKIP
    """
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"$: expected a mapping at the top of the file, got {type(data).__name__}"], str(path))
    data = apply_overrides(data, overrides or [])
    configs = pipeline_configs()
    name = pipeline or data.get("pipeline", "train")
    if name not in configs:
        raise ConfigError([f"$.pipeline: unknown pipeline {name!r}; available: {', '.join(sorted(configs))}"], str(path))
    data.setdefault("pipeline", name)
    return host.registries.structure(data, configs[name], source=str(path))
