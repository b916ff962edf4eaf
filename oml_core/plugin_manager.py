"""The pluggy manager class shared by the host (registration hooks) and each engine (lifecycle hooks).

Kept below both in the dependency order: the engine creates its own manager without importing the host.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from oml_core import hookspecs
from oml_core._markers import HOOK_PREFIX, PROJECT_NAME


class OMLPluginManager(pluggy.PluginManager):
    """Also treats un-marked functions named ``oml_*`` as hook implementations (as pytest does for ``pytest_*``),
    so that a misspelled, un-marked hook is caught by ``check_pending`` instead of being silently ignored."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(HOOK_PREFIX):
            attr = getattr(plugin, name, None)
            if inspect.isroutine(attr):
                return {}
        return opts


def new_plugin_manager(extra_hookspecs: Iterable[Any] = (), *, trace: bool = False) -> OMLPluginManager:
    """A manager that knows every OML hook (and the extra hookspecs plugins declared).

    Example:
        >>> pm = new_plugin_manager()
        >>> hasattr(pm.hook, "oml_validate")
        True
    """
    pm = OMLPluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for specs in extra_hookspecs:
        pm.add_hookspecs(specs)
    if trace:
        pm.trace.root.setwriter(lambda text: sys.stderr.write(text))
        pm.enable_tracing()
    return pm


def name_plugin_in_errors(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Wrap each plain hook implementation of ``plugin`` so that an exception it raises carries a note naming the
    plugin and the hook (pluggy itself does not say which implementation raised), and the attributes
    ``oml_plugin`` / ``oml_hook`` that the CLI reports."""
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin or impl.hookwrapper or impl.wrapper:
                continue
            if inspect.isgeneratorfunction(impl.function) or getattr(impl.function, "__oml_noting__", False):
                continue
            impl.function = _noting_plugin(impl.function, name, caller.name)  # type: ignore[misc]


def _noting_plugin(function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            if not getattr(exc, "__oml_plugin_noted__", False):
                exc.add_note(f"(raised by plugin {plugin!r} in hook {hook})")
                try:
                    exc.__oml_plugin_noted__ = True  # type: ignore[attr-defined]
                    exc.oml_plugin, exc.oml_hook = plugin, hook  # type: ignore[attr-defined]
                except AttributeError:
                    pass
            raise

    call.__oml_noting__ = True  # type: ignore[attr-defined]
    return call
