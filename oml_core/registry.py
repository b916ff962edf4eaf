"""Component registries: one per kind, filled by plugins through the ``oml_register_<kind>`` hooks.

A component is registered with a name, an attrs config class and a factory. Creating it structures the config
(strictly, see ``oml_core.config``), creates nested components first, then calls ``factory(**fields, **runtime)``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import attrs

from oml_core.catalog import distribution_for
from oml_core.errors import DuplicateComponentError, OMLError, UnknownComponentError

if TYPE_CHECKING:
    from oml_core.errors import PluginLoadError

T = TypeVar("T")
E = TypeVar("E")

KINDS: tuple[str, ...] = (
    "extractors",
    "pairwise_models",
    "losses",
    "miners",
    "samplers",
    "transforms",
    "postprocessors",
    "stores",
    "loggers",
    "callbacks",
    "optimizers",
    "schedulers",
    "modalities",
)


@attrs.frozen
class NoConfig:
    """Config of a component that takes no options."""


@attrs.frozen
class ComponentSpec:
    """What a plugin registered: everything needed to document, validate and create one component."""

    kind: str
    name: str
    config: type
    factory: Callable[..., Any]
    summary: str
    plugin: str
    example: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Choice:
    """A component selected in a config: ``{type: <name>, <its config fields>...}``.

    ``config=None`` means the component's defaults. Subclasses fix the registry kind, so that a config field
    typed ``MinerChoice`` only accepts registered miners and reports unknown names with the available ones.

    Example:
        >>> MinerChoice("hard_triplets").type
        'hard_triplets'
    """

    kind: ClassVar[str] = ""
    type: str
    config: Any = None


@attrs.frozen
class ExtractorChoice(Choice):
    """A ``extractors`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "extractors"


@attrs.frozen
class PairwiseModelChoice(Choice):
    """A ``pairwise_models`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "pairwise_models"


@attrs.frozen
class LossChoice(Choice):
    """A ``losses`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "losses"


@attrs.frozen
class MinerChoice(Choice):
    """A ``miners`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "miners"


@attrs.frozen
class SamplerChoice(Choice):
    """A ``samplers`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "samplers"


@attrs.frozen
class TransformChoice(Choice):
    """A ``transforms`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "transforms"


@attrs.frozen
class PostprocessorChoice(Choice):
    """A ``postprocessors`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "postprocessors"


@attrs.frozen
class StoreChoice(Choice):
    """A ``stores`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "stores"


@attrs.frozen
class LoggerChoice(Choice):
    """A ``loggers`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "loggers"


@attrs.frozen
class CallbackChoice(Choice):
    """A ``callbacks`` component (an engine plugin with options) chosen by name in a config: ``{type: <name>, ...}``."""

    kind: ClassVar[str] = "callbacks"


@attrs.frozen
class OptimizerChoice(Choice):
    """An ``optimizers`` component chosen by name in a config: ``{type: <name>, ...its options}``."""

    kind: ClassVar[str] = "optimizers"


@attrs.frozen
class SchedulerChoice(Choice):
    """A ``schedulers`` component (an LR schedule, per step or per epoch) chosen by name in a config."""

    kind: ClassVar[str] = "schedulers"


@attrs.frozen
class ModalityChoice(Choice):
    """A ``modalities`` component (what the rows of a dataframe are: texts, audio...) chosen by name in a config."""

    kind: ClassVar[str] = "modalities"


class NamedRegistry(Generic[E]):
    """Named items of one kind, each attributed to the plugin that added it: the common part of the component
    registries and the weights registry (``oml_core.zoo.WeightsRegistry``).

    Example:
        >>> names = NamedRegistry("things")
        >>> with names.registering("my_plugin"):
        ...     names.put("a", 1)
        >>> names.get("a"), names.plugin_of("a")
        (1, 'my_plugin')
    """

    def __init__(self, kind: str, owner: Registries | None = None) -> None:
        self.kind = kind
        self._owner = owner
        self._items: dict[str, E] = {}
        self._plugins: dict[str, str] = {}
        self._current_plugin: str | None = None
        self.conflicts: list[DuplicateComponentError] = []
        self.raise_on_duplicate = True

    @contextmanager
    def registering(self, plugin: str) -> Iterator[Self]:
        """Attribute the items added inside this block to ``plugin`` (the host does this for each hook)."""
        previous, self._current_plugin = self._current_plugin, plugin
        try:
            yield self
        finally:
            self._current_plugin = previous

    @property
    def current_plugin(self) -> str:
        return self._current_plugin or "<unknown>"

    def put(self, name: str, item: E) -> None:
        """Add ``item`` as ``name`` for the current plugin; a second plugin using the same name is a conflict."""
        plugin = self.current_plugin
        if name in self._items:
            error = DuplicateComponentError(self.kind, name, self._plugins[name], plugin)
            if self.raise_on_duplicate:
                raise error
            self.conflicts.append(error)
            return
        self._items[name] = item
        self._plugins[name] = plugin

    def remove_plugin(self, plugin: str) -> None:
        """Forget every item that ``plugin`` added (used when a plugin turns out to be broken)."""
        for name in [n for n, p in self._plugins.items() if p == plugin]:
            del self._items[name], self._plugins[name]

    def plugin_of(self, name: str) -> str:
        return self._plugins[name]

    def get(self, name: str) -> E:
        """Return item ``name``, or raise an error that lists the available names."""
        if name in self._items:
            return self._items[name]
        raise UnknownComponentError(self._explain_unknown(name))

    def _explain_unknown(self, name: str) -> str:
        message = f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or 'none'}."
        close = difflib.get_close_matches(name, list(self._items), n=1)
        return message + (f" Did you mean {close[0]!r}?" if close else "")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind!r}, {self.names()})"


class Registry(NamedRegistry[ComponentSpec], Generic[T]):
    """The components of one kind, by name.

    Example:
        >>> import attrs
        >>> @attrs.frozen
        ... class ScaleConfig:
        ...     factor: float = 2.0
        >>> registry = Registry("transforms")
        >>> with registry.registering("my_plugin"):
        ...     registry.add("scale", config=ScaleConfig, factory=lambda factor: (lambda x: x * factor))
        >>> registry.create("scale", {"factor": 3.0})(2)
        6.0
    """

    def add(
        self,
        name: str,
        *,
        config: type = NoConfig,
        factory: Callable[..., T],
        summary: str = "",
        example: Mapping[str, Any] | None = None,
    ) -> None:
        """Register component ``name``: ``config`` is a frozen attrs class, ``factory(**config_fields, **runtime)``
        builds it, ``summary`` is one line for ``oml plugins`` and the docs, ``example`` holds config values that
        make a working instance (used by the contract checks and in the docs)."""
        plugin = self.current_plugin
        if not attrs.has(config):
            raise OMLError(
                f"plugin {plugin!r} registered {self.kind} {name!r} with config={config!r}, which is not an attrs class"
            )
        self.put(name, ComponentSpec(self.kind, name, config, factory, summary, plugin, dict(example or {})))

    def _explain_unknown(self, name: str) -> str:
        available = ", ".join(self.names()) or "none"
        message = f"unknown {self.kind} component {name!r}; available: {available}."
        close = difflib.get_close_matches(name, list(self._items), n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
        dist = distribution_for(self.kind, name)
        if dist is not None:
            broken = self._owner.broken_distribution(dist) if self._owner else None
            if broken is not None:
                message += f" {name!r} comes from {dist}, which is installed but failed to load: {broken.cause!r}."
            else:
                message += f" {name!r} comes from the distribution {dist}, which is not installed: pip install {dist}."
        return message

    def create(self, name: str | Choice, config: Any = None, /, **runtime: Any) -> T:
        """Build component ``name`` from ``config`` (None, a dict or an instance of its config class) plus
        ``runtime`` arguments that are not part of the config (e.g. a sampler's ``labels``)."""
        if isinstance(name, Choice):
            name, config = name.type, name.config  # type: ignore[attr-defined]
        spec = self.get(name)
        if config is None:
            config = spec.config()
        elif isinstance(config, Mapping):
            if self._owner is None:
                config = spec.config(**config)
            else:
                config = self._owner.structure(config, spec.config, path=f"{self.kind}.{name}")
        elif not isinstance(config, spec.config):
            raise OMLError(f"{self.kind} {name!r} takes a {spec.config.__name__} or a dict, got {type(config).__name__}")
        fields = {f.name: getattr(config, f.name) for f in attrs.fields(spec.config)}
        if self._owner is not None:
            fields = {k: self._owner.build_nested(v) for k, v in fields.items()}
            runtime = {**self._owner.offered_context(spec.factory, exclude={*fields, *runtime}), **runtime}
        try:
            return spec.factory(**fields, **runtime)  # type: ignore[no-any-return]
        except Exception as exc:
            exc.add_note(f"(while creating {self.kind} component {name!r} registered by plugin {spec.plugin!r})")
            raise

    def create_in_context(self, name: str | Choice, config: Any = None, /, **context: Any) -> T:
        """Like ``create``, with values a pipeline knows offered as ``context`` (e.g. ``in_features`` and
        ``num_classes`` to every loss): a context value fills a config field left unset (``None``) and is passed
        as a runtime argument if the factory accepts it; otherwise it is ignored."""
        if isinstance(name, Choice):
            name, config = name.type, name.config  # type: ignore[attr-defined]
        spec = self.get(name)
        if config is None or isinstance(config, Mapping):
            config = self._owner.structure(dict(config or {}), spec.config) if self._owner else spec.config(**(config or {}))
        field_names = {f.name for f in attrs.fields(spec.config)}
        unset = {k: v for k, v in context.items() if k in field_names and getattr(config, k) is None}
        config = attrs.evolve(config, **unset)
        parameters, takes_all = _parameters(spec.factory)
        runtime = {k: v for k, v in context.items() if k not in field_names and (takes_all or k in parameters)}
        return self.create(name, config, **runtime)

    def specs(self) -> list[ComponentSpec]:
        return [self._items[n] for n in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _parameters(factory: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword names ``factory`` accepts, and whether it takes ``**kwargs``."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # callables without a signature: offer nothing
        return set(), False
    return set(parameters), any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class Registries:
    """One registry per kind (``registries.losses``, ``registries["losses"]``), the weights registry
    (``registries.weights``), and the config converter that knows their names.

    ``context`` holds what factories may ask for by naming it as a keyword parameter: ``zoo`` (the weights
    registry), so that an extractor created from a config resolves the weights names of this host's plugins.
    """

    def __init__(self, broken: Mapping[str, PluginLoadError] | None = None) -> None:
        from oml_core.config import make_converter
        from oml_core.zoo import WeightsRegistry

        self._broken = broken if broken is not None else {}
        self._by_kind: dict[str, Registry[Any]] = {kind: Registry(kind, self) for kind in KINDS}
        self.weights = WeightsRegistry(self)
        self.context: dict[str, Any] = {"zoo": self.weights}
        self.converter = make_converter(self)

    def offered_context(self, factory: Callable[..., Any], *, exclude: set[str]) -> dict[str, Any]:
        """The context values that ``factory`` names as keyword parameters (never through ``**kwargs``)."""
        parameters, _ = _parameters(factory)
        return {k: v for k, v in self.context.items() if k in parameters and k not in exclude}

    extractors = property(lambda self: self._by_kind["extractors"])
    pairwise_models = property(lambda self: self._by_kind["pairwise_models"])
    losses = property(lambda self: self._by_kind["losses"])
    miners = property(lambda self: self._by_kind["miners"])
    samplers = property(lambda self: self._by_kind["samplers"])
    transforms = property(lambda self: self._by_kind["transforms"])
    postprocessors = property(lambda self: self._by_kind["postprocessors"])
    stores = property(lambda self: self._by_kind["stores"])
    loggers = property(lambda self: self._by_kind["loggers"])
    callbacks = property(lambda self: self._by_kind["callbacks"])
    optimizers = property(lambda self: self._by_kind["optimizers"])
    schedulers = property(lambda self: self._by_kind["schedulers"])
    modalities = property(lambda self: self._by_kind["modalities"])

    def __getitem__(self, kind: str) -> Registry[Any]:
        if kind not in self._by_kind:
            raise UnknownComponentError(f"unknown component kind {kind!r}; kinds are: {', '.join(KINDS)}")
        return self._by_kind[kind]

    def __iter__(self) -> Iterator[Registry[Any]]:
        return iter(self._by_kind.values())

    def broken_distribution(self, distribution: str) -> PluginLoadError | None:
        for error in self._broken.values():
            if error.distribution == distribution:
                return error
        return None

    def all_specs(self) -> list[ComponentSpec]:
        return [spec for registry in self for spec in registry.specs()]

    def structure(self, data: Any, cls: type[T], *, path: str = "$", source: str | None = None) -> T:
        """Structure ``data`` into ``cls`` with the strict converter; all problems raise one ConfigError."""
        from oml_core.config import structure

        return structure(self.converter, data, cls, source=source, root=path)

    def build_nested(self, value: Any) -> Any:
        """Turn Choices (also inside lists, tuples and dicts) into components; leave other values alone."""
        if isinstance(value, Choice):
            return self[value.kind].create(value)
        if isinstance(value, (list, tuple)) and any(isinstance(v, Choice) for v in value):
            return type(value)(self.build_nested(v) for v in value)
        if isinstance(value, dict) and any(isinstance(v, Choice) for v in value.values()):
            return {k: self.build_nested(v) for k, v in value.items()}
        return value
