"""The hooks reference (docs/hooks.md) stays in step with the hookspecs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from oml_core import Host

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_hooks() -> dict[str, list[str]]:
    text = (DOCS / "hooks.md").read_text()
    found = re.findall(r"^### `(oml_\w+)\(([^)]*)\)`", text, flags=re.M)
    return {name: [a.strip() for a in args.split(",") if a.strip()] for name, args in found}


def specified_hooks() -> dict[str, list[str]]:
    host = Host(entry_points=False, env={})
    specs = {}
    for name in dir(host.pm.hook):
        caller = getattr(host.pm.hook, name)
        if name.startswith("oml_") and getattr(caller, "spec", None) is not None:
            specs[name] = list(inspect.signature(caller.spec.function).parameters)
    return specs


def test_every_hookspec_is_documented_with_its_signature() -> None:
    documented, specified = documented_hooks(), specified_hooks()
    missing = sorted(set(specified) - set(documented))
    assert not missing, f"hooks missing from docs/hooks.md: {missing}"
    unknown = sorted(set(documented) - set(specified))
    assert not unknown, f"docs/hooks.md documents hooks that do not exist: {unknown}"
    differing = {n: (documented[n], specified[n]) for n in specified if documented[n] != specified[n]}
    assert not differing, f"signatures differ (docs, spec): {differing}"


def test_every_hookspec_has_a_docstring_saying_when_it_is_called() -> None:
    from oml_core import hookspecs

    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("oml_"):
            assert fn.__doc__ and "called" in fn.__doc__.lower(), name
