"""The plugin host: one explicit object that owns the pluggy manager and the registries (weights included).

Nothing is discovered at import time; a program (or a test) creates a host and decides what it loads::

    host = Host()                                   # built-ins + installed plugins (entry-point group "oml")
    host = Host(entry_points=False, plugins=[mine]) # isolated: built-ins + exactly these
    loss = host.registries.losses.create("triplet_with_miner", {"margin": 0.2})

Environment: ``OML_DISABLE_PLUGINS=a,b`` skips plugins (by plugin or distribution name),
``OML_LOAD_PLUGINS=a,b`` loads only these installed plugins, ``OML_TRACE_PLUGINS=1`` prints every hook call.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs
import pluggy

from oml_core._markers import ENTRY_POINT_GROUP
from oml_core.errors import DuplicateComponentError, OMLError, PluginImportExit, PluginLoadError, PluginValidationError
from oml_core.hookspecs import LIFECYCLE_HOOKS
from oml_core.plugin_manager import name_plugin_in_errors, new_plugin_manager
from oml_core.registry import KINDS, Registries, Registry

#: Modules registered as plugins in every host, as pytest registers its own built-ins.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "oml_core.builtin.commands",
    "oml_core.builtin.data",
    "oml_core.builtin.retrieval",
    "oml_core.builtin.models",
    "oml_core.builtin.engine",
    "oml_core.builtin.stores",
    "oml_core.builtin.calibrate",
    "oml_core.builtin.report",
)

PluginSource = Literal["builtin", "entrypoint", "local"]
PluginStatus = Literal["loaded", "broken", "disabled"]


@attrs.define
class PluginInfo:
    """What ``oml plugins`` reports about one plugin."""

    name: str
    source: PluginSource
    distribution: str | None = None
    version: str | None = None
    status: PluginStatus = "loaded"
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    components: dict[str, list[str]] = attrs.field(factory=dict)


def _env_list(env: Mapping[str, str], key: str) -> set[str] | None:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return None
    return {item.strip() for item in raw.split(",") if item.strip()}


class Host:
    """Loads plugins, collects their components and calls their hooks.

    ``strict=True`` (programs, ``oml train``) raises on a misspelled hook or a duplicate component name;
    ``strict=False`` (``oml plugins``) records them as broken plugins and goes on. A plugin whose import or
    registration raises is always recorded as broken, with a warning, and the host goes on without it.

    Example:
        >>> host = Host(entry_points=False)
        >>> "oml_core.builtin.commands" in [p.name for p in host.plugins]
        True
    """

    def __init__(
        self,
        *,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        builtins: bool = True,
        strict: bool = True,
        env: Mapping[str, str] | None = None,
        collect: bool = True,
    ) -> None:
        self.strict = strict
        self._env = os.environ if env is None else env
        self.pm = new_plugin_manager()
        #: hookspecs that plugins declared (``oml_hookspecs``); every engine's plugin manager knows them too
        self.extra_hookspecs: list[Any] = []
        self._infos: dict[str, PluginInfo] = {}
        self.load_errors: dict[str, PluginLoadError] = {}
        self.registries = Registries(broken=self.load_errors)
        #: named pretrained weights (``oml_register_weights``); the same object as ``registries.weights``
        self.weights = self.registries.weights
        #: pipeline config classes by the name used in a config file's ``pipeline:`` key (``oml config check``)
        self.pipelines: Registry[Any] = Registry("pipelines", self.registries)
        containers: list[Any] = self._containers()
        for container in containers:
            container.raise_on_duplicate = strict
        self.trace_hooks = _env_list(self._env, "OML_TRACE_PLUGINS") is not None
        if self.trace_hooks:
            self.pm.trace.root.setwriter(lambda text: sys.stderr.write(text))
            self.pm.enable_tracing()

        if builtins:
            for module_name in BUILTIN_PLUGINS:
                load = functools.partial(importlib.import_module, module_name)
                self._register_guarded(module_name, "builtin", load, "oml-core", _core_version())
        if entry_points:
            self._load_entry_points()
        for plugin in plugins:
            self._register_guarded(plugin_name(plugin), "local", functools.partial(_identity, plugin))
        self._validate_hooks()
        if collect:  # False: only hooks are called later, no registry is filled (`oml --help` needs no torch)
            self._collect(list(self._infos))

    # -------------------------------------------------------------------------------------------- loading
    def _load_entry_points(self) -> None:
        disabled = _env_list(self._env, "OML_DISABLE_PLUGINS") or set()
        allowed = _env_list(self._env, "OML_LOAD_PLUGINS")
        seen: set[str] = set()
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            if ep.name in disabled or dist_name in disabled or (allowed is not None and not ({ep.name, dist_name} & allowed)):
                self._infos[ep.name] = PluginInfo(ep.name, "entrypoint", dist_name, version, status="disabled")
                continue
            self._register_guarded(ep.name, "entrypoint", ep.load, dist_name, version)

    def _register_guarded(
        self,
        name: str,
        source: PluginSource,
        load: Callable[[], object],
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        info = PluginInfo(name, source, distribution, version)
        self._infos[name] = info
        try:
            plugin = load()
            extra_specs = getattr(plugin, "oml_hookspecs", None)  # plugins may declare hooks of their own
            if extra_specs is not None:
                self.pm.add_hookspecs(extra_specs)
                self.extra_hookspecs.append(extra_specs)
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # a hook argument that the hook does not have
            error = PluginValidationError(self._explain_invalid(name, exc))
            if self.strict:
                del self._infos[name]
                raise error from None
            self._mark_broken(name, error)
            return
        except SystemExit as exc:  # sys.exit() at import must not end every oml command without a word
            self._mark_broken(name, PluginImportExit(f"the plugin called sys.exit({exc.code!r}) while being imported"))
            return
        except Exception as exc:  # noqa: BLE001 - a broken plugin must never take the host down
            self._mark_broken(name, exc)
            return
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        name_plugin_in_errors(self.pm, plugin, name)

    def _mark_broken(self, name: str, exc: BaseException) -> None:
        info = self._infos[name]
        error = PluginLoadError(name, info.distribution, info.version, exc)
        info.status, info.error = "broken", str(error)
        self.load_errors[name] = error
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        containers: list[Any] = self._containers()
        for container in containers:
            container.remove_plugin(name)
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)

    def _validate_hooks(self, strict: bool | None = None) -> None:
        """pluggy's ``check_pending`` on every plugin: strict hosts raise, others mark the plugin broken."""
        strict = self.strict if strict is None else strict
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                message = self._explain_invalid(name, exc)
                if strict:
                    if name in self._infos and self._infos[name].source == "local":
                        self.unregister(name)
                    raise PluginValidationError(message) from None
                self._mark_broken(name, PluginValidationError(message))

    def _explain_invalid(self, name: str, exc: pluggy.PluginValidationError) -> str:
        """One paragraph: which plugin (by distribution for an installed one), which hook, what is wrong, the fix."""
        info = self._infos.get(name)
        label = describe_plugin(name, info.source if info else "local", info.distribution if info else None,
                                info.version if info else None)  # fmt: skip
        plugin = self.pm.get_plugin(name) or exc.plugin
        unknown = [c.name for c in self.pm.get_hookcallers(plugin) or [] if c.spec is None] if plugin is not None else []
        if unknown:
            known = [n for n in dir(self.pm.hook) if n.startswith("oml_") and getattr(self.pm.hook, n).spec is not None]
            hints = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, known, n=1)
                hints.append(f"unknown hook {hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            what = f"implements {', '.join(hints)}: not an OML hook"
            fix = "rename it to one of the hooks in docs/hooks.md"
        else:
            what = " ".join(str(exc).split())
            fix = "an implementation may only take arguments that the hook has (see docs/hooks.md)"
        installed = info is not None and info.source == "entrypoint"
        off = f"; or leave it out with OML_DISABLE_PLUGINS={info.distribution or name}" if installed and info else ""
        return f"{label} {what}. Fix: {fix}{off}."

    def _collect(self, names: list[str]) -> None:
        """Call each plugin's registration hooks one plugin at a time, so that components are attributed to it
        and a plugin that raises is dropped alone."""
        calls: list[tuple[str, Any]] = [(f"oml_register_{kind}", self.registries[kind]) for kind in KINDS]
        calls.append(("oml_register_weights", self.weights))
        calls.append(("oml_register_pipelines", self.pipelines))
        for name in names:
            plugin = self.pm.get_plugin(name)
            if plugin is None:
                continue
            try:
                for hook_name, container in calls:
                    for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                        if impl.plugin is plugin:
                            argname = "zoo" if hook_name == "oml_register_weights" else "registry"
                            with container.registering(name):
                                impl.function(**{a: container for a in impl.argnames if a == argname})
            except DuplicateComponentError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._mark_broken(name, exc)
                continue
            containers: list[Any] = self._containers()
            conflicts = [c for container in containers for c in container.conflicts if c.plugins[1] == name]
            if conflicts:
                self._mark_broken(name, conflicts[0])
                continue
            info = self._infos[name]
            info.components = {
                kind: [s.name for s in self.registries[kind].specs() if s.plugin == name] for kind in KINDS
            }
            info.components = {k: v for k, v in info.components.items() if v}
            weights = [w for w in self.weights.names() if self.weights.plugin_of(w) == name]
            if weights:
                info.components["weights"] = weights
            pipelines = [s.name for s in self.pipelines.specs() if s.plugin == name]
            if pipelines:
                info.components["pipelines"] = pipelines

    def _containers(self) -> list[Any]:
        return [*self.registries, self.weights, self.pipelines]

    # -------------------------------------------------------------------------------------------- public
    def register(self, plugin: object, name: str | None = None) -> str:
        """Add a plugin after start-up (e.g. an object with ``@hookimpl`` methods or a local ``my_hooks.py``).

        Unlike an installed plugin, a local one that fails raises at once: the caller asked for it by name.
        """
        name = name or plugin_name(plugin)
        strict, self.strict = self.strict, True  # asked for by name: any problem is an error, on any host
        try:
            self._register_guarded(name, "local", lambda: plugin)
        finally:
            self.strict = strict
        if self._infos[name].status == "broken":
            error = self.load_errors.pop(name)
            del self._infos[name]
            raise error
        self._validate_hooks(strict=True)
        self._collect([name])
        return name

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        containers: list[Any] = self._containers()
        for container in containers:
            container.remove_plugin(name)
        self._infos.pop(name, None)

    def lifecycle_plugins(self) -> list[tuple[str, object]]:
        """``(name, plugin)`` of each loaded plugin that implements a lifecycle hook: every engine created on this
        host registers them on its own plugin manager (the host never calls lifecycle hooks itself)."""
        found = []
        for name, info in self._infos.items():
            plugin = self.pm.get_plugin(name)
            if plugin is None or info.status != "loaded":
                continue
            if any(caller.name in LIFECYCLE_HOOKS for caller in self.pm.get_hookcallers(plugin) or []):
                found.append((name, plugin))
        return found

    @property
    def plugins(self) -> list[PluginInfo]:
        return list(self._infos.values())

    def add_hookspecs(self, module_or_class: Any) -> None:
        self.pm.add_hookspecs(module_or_class)

    @property
    def hook(self) -> Any:
        """pluggy's hook relay; prefer the typed calls of the engine and CLI."""
        return self.pm.hook


def _identity(value: object) -> object:
    return value


def _core_version() -> str:
    from oml_core import __version__

    return __version__


def describe_plugin(name: str, source: str, distribution: str | None = None, version: str | None = None) -> str:
    """How messages name a plugin: an installed one by its distribution (what the user pip-installed).

    Example:
        >>> describe_plugin("vit", "entrypoint", "oml-vit", "0.1.0")
        "installed plugin oml-vit 0.1.0 (entry point 'vit')"
    """
    if source == "entrypoint" and distribution:
        return f"installed plugin {distribution} {version or ''} (entry point {name!r})".replace("  ", " ")
    if source == "builtin":
        return f"built-in plugin {name!r}"
    return f"plugin {name!r}"


def plugin_name(plugin: object) -> str:
    """The name a plugin gets when none is given: a module's name, a class's name, or ``Class-<id>`` for an object.

    Example:
        >>> plugin_name(Host)
        'Host'
    """
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return f"{name}-{id(plugin):x}" if not isinstance(plugin, type) else str(name)


def require_loaded(host: Host, plugin: str) -> None:
    """Raise a clear error if ``plugin`` is not loaded in ``host`` (helper for programs that need one)."""
    info = next((p for p in host.plugins if p.name == plugin), None)
    if info is None or info.status != "loaded":
        why = info.error if info and info.error else "it is not installed"
        raise OMLError(f"plugin {plugin!r} is required but not loaded: {why}")
