"""Exceptions raised by OML. Every message is one paragraph that names the file, field, plugin or row at fault."""

from __future__ import annotations

from collections.abc import Sequence


class OMLError(Exception):
    """Base class of every error OML raises on purpose (as opposed to bugs)."""


class PluginLoadError(OMLError):
    """A plugin could not be loaded or registered; the host goes on without it.

    Example:
        >>> err = PluginLoadError("vit", "oml-vit", "0.1.0", ImportError("no module named foo"))
        >>> "oml-vit 0.1.0" in str(err)
        True
    """

    def __init__(self, plugin: str, distribution: str | None, version: str | None, cause: BaseException) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self.cause = cause
        where = f"{distribution} {version}" if distribution else "no distribution"
        super().__init__(
            f"plugin {plugin!r} ({where}) failed to load: {type(cause).__name__}: {cause}. "
            f"OML goes on without it; set OML_DISABLE_PLUGINS={plugin} to silence this, or reinstall/fix the plugin."
        )


class PluginValidationError(OMLError):
    """A plugin implements a hook that does not exist (usually a misspelling) or with wrong arguments."""


class PluginImportExit(OMLError):
    """A plugin called ``sys.exit`` while being imported (reported as a broken plugin, never ending ``oml``)."""


class PluginHookError(OMLError):
    """A plugin's hook raised while a run was going on: the run stopped, its last good checkpoint is kept."""

    def __init__(self, plugin: str, hook: str, cause: BaseException, checkpoint: str | None = None) -> None:
        self.plugin, self.hook, self.cause = plugin, hook, cause
        kept = f"the last good checkpoint is kept: {checkpoint}" if checkpoint else "no checkpoint had been written yet"
        super().__init__(
            f"plugin {plugin!r} raised in hook {hook}: {type(cause).__name__}: {cause}. The run stopped; {kept} "
            f"(resume with --resume once fixed). Fix the plugin, or remove it from the config's plugins.local / "
            f"disable it with OML_DISABLE_PLUGINS={plugin}. Run with --debug (or OML_DEBUG=1) for the traceback."
        )


class DuplicateComponentError(OMLError):
    """Two plugins registered a component of the same kind under the same name."""

    def __init__(self, kind: str, name: str, first_plugin: str, second_plugin: str) -> None:
        self.kind, self.name = kind, name
        self.plugins = (first_plugin, second_plugin)
        super().__init__(
            f"{kind} component {name!r} is registered by two plugins: {first_plugin!r} and {second_plugin!r}. "
            f"Uninstall or disable one of them (OML_DISABLE_PLUGINS=...), or rename the component in one."
        )


class UnknownComponentError(OMLError, KeyError):
    """A component name that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ConfigError(OMLError):
    """All the problems of one config, each as ``$.path.to.field: message``.

    Example:
        >>> print(ConfigError(["$.lr: expected a float, got 'abc'"], source="train.yaml"))
        train.yaml has 1 problem:
          $.lr: expected a float, got 'abc'
    """

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source or 'config'} has {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}:"
        super().__init__("\n  ".join([head, *self.problems]))
