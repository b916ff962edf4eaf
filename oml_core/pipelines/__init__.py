"""Config-driven pipelines (``oml train``, ``oml validate``...): their config classes and the loader."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oml_core.config import apply_overrides, load_yaml
from oml_core.errors import ConfigError

if TYPE_CHECKING:
    from oml_core.host import Host


def load_pipeline_config(host: Host, path: str | Path, *, pipeline: str | None = None, overrides: list[str] | None = None) -> Any:
    """Read ``path`` (YAML), apply ``--set`` overrides and structure it into its pipeline's config class.

    Example:
        >>> cfg = load_pipeline_config(Host(), "configs/train_mock.yaml")   # doctest: +SKIP
    """
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"$: expected a mapping at the top of the file, got {type(data).__name__}"], str(path))
    data = _converted_if_oml(data, str(path))
    data = apply_overrides(data, overrides or [])
    name = pipeline or data.get("pipeline", "train")
    if name not in host.pipelines:
        available = ", ".join(host.pipelines.names()) or "none"
        raise ConfigError([f"$.pipeline: unknown pipeline {name!r}; available: {available}"], str(path))
    if data.setdefault("pipeline", name) != name:
        raise ConfigError([f"$.pipeline: this is a {data['pipeline']!r} config, not a {name!r} one"], str(path))
    return host.registries.structure(data, host.pipelines.get(name).config, source=str(path))


def _converted_if_oml(data: dict[str, Any], source: str) -> dict[str, Any]:
    """OML 4's Hydra-style configs are converted on the fly, with a note on stderr."""
    from oml_core.pipelines.convert import convert_oml_config, looks_like_oml_config

    if not looks_like_oml_config(data):
        return data
    conversion = convert_oml_config(data, source=source)
    lines = [f"note: {source} is an OML 4 config, converted on the fly (`oml config convert {source}` writes the result):"]
    lines += [f"  {note}" for note in conversion.notes]
    print("\n".join(lines), file=sys.stderr)
    return conversion.config
