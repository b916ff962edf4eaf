"""Checks for every component, whatever its kind."""

from __future__ import annotations

import attrs

from oml_core.host import Host
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import register_contract


@register_contract("*")
def config_round_trips(host: Host, spec: ComponentSpec) -> None:
    """``structure(unstructure(cfg)) == cfg`` for the example config, and for the defaults when there are any."""
    converter = host.registries.converter
    configs = [host.registries.structure(dict(spec.example), spec.config, path=f"$.{spec.name}")]
    if all(f.default is not attrs.NOTHING for f in attrs.fields(spec.config)):
        configs.append(spec.config())
    for cfg in configs:
        data = converter.unstructure(cfg)
        again: object = host.registries.structure(data, spec.config)
        assert again == cfg, f"config of {spec.name!r} does not round-trip: {cfg!r} -> {data!r} -> {again!r}"


@register_contract("*")
def config_is_frozen_and_documented(host: Host, spec: ComponentSpec) -> None:
    """Configs are frozen attrs classes (hashable, safe to share) and each component has a one-line summary."""
    assert attrs.has(spec.config), f"{spec.config!r} is not an attrs class"
    cfg = host.registries.structure(dict(spec.example), spec.config)
    try:
        object.__getattribute__(cfg, "__setattr__")("__oml_probe__", 1)
    except attrs.exceptions.FrozenInstanceError:
        pass
    else:
        raise AssertionError(f"{spec.config.__name__} must be frozen (@attrs.frozen)")
    assert spec.summary.strip(), f"{spec.kind} {spec.name!r} has no summary"
