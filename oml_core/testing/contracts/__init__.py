"""Contract checks: what every registered component must satisfy, by kind.

``register_contract(kind)`` adds a check ``fn(host, spec)`` for components of ``kind`` (``"*"`` for all);
``contract_cases(plugin)`` lists one case per (component, check) of a plugin, for ``pytest.mark.parametrize``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from oml_core.host import Host
from oml_core.registry import ComponentSpec

Check = Callable[[Host, ComponentSpec], None]
_CHECKS: dict[str, list[Check]] = {}


def register_contract(kind: str) -> Callable[[Check], Check]:
    """Decorator: run ``fn(host, spec)`` on every component of ``kind`` (``"*"``: every component).

    Example:
        >>> @register_contract("losses")
        ... def loss_is_callable(host, spec):
        ...     assert callable(host.registries.losses.create(spec.name, dict(spec.example)))
    """

    def decorate(fn: Check) -> Check:
        _CHECKS.setdefault(kind, []).append(fn)
        return fn

    return decorate


@attrs.frozen
class ContractCase:
    """One check on one component; ``run()`` raises AssertionError with the component named when it fails."""

    host: Host = attrs.field(repr=False, eq=False)
    spec: ComponentSpec
    check: Check

    def run(self) -> None:
        try:
            self.check(self.host, self.spec)
        except AssertionError as exc:
            exc.add_note(f"(contract {self.check.__name__} of {self.spec.kind} {self.spec.name!r} from {self.spec.plugin!r})")
            raise

    def __str__(self) -> str:
        return f"{self.spec.kind}:{self.spec.name}:{self.check.__name__}"


def _load_builtin_contracts() -> None:
    # imported for their @register_contract side effects, once
    from oml_core.testing.contracts import common  # noqa: F401

    for module in ("losses", "miners", "samplers", "stores", "extractors", "transforms", "postprocessors", "pairwise_models"):
        try:
            __import__(f"oml_core.testing.contracts.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"oml_core.testing.contracts.{module}":
                raise


def contract_cases(plugin: str | object, *, host: Host | None = None) -> list[ContractCase]:
    """Every contract case for the components that ``plugin`` registers.

    ``plugin`` is the name of an installed plugin (its entry-point name) or a plugin object/module, which is then
    loaded into an isolated host with the built-ins and installed plugins.

    Example:
        >>> cases = contract_cases("oml_core.builtin.commands")
        >>> cases
        []
    """
    _load_builtin_contracts()
    if host is None:
        if isinstance(plugin, str):
            host = Host(env={})
        else:
            host = Host(env={}, plugins=[plugin])
    if isinstance(plugin, str):
        name = plugin
    else:
        matches = [n for n, p in host.pm.list_name_plugin() if p is plugin]
        name = matches[0] if matches else ""
    info = next((p for p in host.plugins if p.name == name), None)
    if info is not None and info.status != "loaded":
        raise AssertionError(f"plugin {name!r} is not loaded: {info.error or info.status}")
    cases: list[ContractCase] = []
    for spec in host.registries.all_specs():
        if spec.plugin != name:
            continue
        for check in _CHECKS.get("*", []) + _CHECKS.get(spec.kind, []):
            cases.append(ContractCase(host, spec, check))
    return cases


def build_example(host: Host, spec: ComponentSpec, **runtime: Any) -> Any:
    """Create ``spec``'s component from its registered example config."""
    return host.registries[spec.kind].create(spec.name, dict(spec.example), **runtime)
