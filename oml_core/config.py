"""Typed configs: frozen attrs classes, a strict cattrs converter, YAML in and out, one error for all problems.

Strict means: ``3.7`` is not an int, ``"false"`` is not a bool, ``"3"`` is not a number, unknown keys are errors
(with a "did you mean"), and ``type:`` names a registered component (unknown names list the available ones).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import cattrs
import cattrs.gen
import yaml
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from oml_core.errors import ConfigError, OMLError
from oml_core.registry import Choice

if TYPE_CHECKING:
    from oml_core.registry import Registries

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------ scalars
def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_describe(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_describe(value)}")
    if math.isnan(value):
        raise ValueError("expected a number, got .nan (not a number): a NaN learning rate, margin or weight trains nothing")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_describe(value)}")
    return value


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_describe(value)}")
    return value


def _path(value: Any, _: type) -> Path:
    if not isinstance(value, (str, Path)):
        raise TypeError(f"expected a path, got {_describe(value)}")
    return Path(value)


def make_converter(registries: Registries | None = None) -> cattrs.Converter:
    """A converter with strict scalars, forbidden extra keys and (given ``registries``) ``type:`` selection.

    Example:
        >>> import attrs
        >>> @attrs.frozen
        ... class Opt:
        ...     lr: float = 0.1
        >>> make_converter().structure({"lr": 1}, Opt)
        Opt(lr=1.0)
    """
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(Path, _path)
    converter.register_unstructure_hook(Path, str)

    def structure_choice(value: Any, cls: type[Choice]) -> Choice:
        if isinstance(value, str):
            value = {"type": value}
        if not isinstance(value, Mapping) or "type" not in value:
            raise TypeError(f"expected a {cls.kind} component as a mapping with a 'type' key, got {_describe(value)}")
        name = value["type"]
        if registries is None:
            raise OMLError("component choices need a converter made with the host's registries")
        spec = registries[cls.kind].get(name)  # raises UnknownComponentError listing what is available
        options = {k: v for k, v in value.items() if k != "type"}
        if not options:
            return cls(type=name, config=None)
        return cls(type=name, config=converter.structure(options, spec.config))

    def unstructure_choice(choice: Choice) -> dict[str, Any]:
        options = {} if choice.config is None else converter.unstructure(choice.config)
        return {"type": choice.type, **options}

    def mapping_first(cls: type) -> Any:
        # without this, a scalar where a mapping belongs ("optimizer: adam") fails deep inside cattrs with
        # "AttributeError: 'str' object has no attribute 'keys'"
        fields_hook: Any = cattrs.gen.make_dict_structure_fn(
            cls, converter, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
        )

        def structure_fields(value: Any, _: type) -> Any:
            if not isinstance(value, Mapping):
                names = ", ".join(f.name for f in attrs.fields(cls))
                raise TypeError(f"expected a mapping of {cls.__name__} fields ({names}), got {_describe(value)}")
            return fields_hook(value, cls)

        return structure_fields

    converter.register_structure_hook_factory(lambda t: attrs.has(t) and not issubclass(t, Choice), mapping_first)
    converter.register_structure_hook_func(lambda t: isinstance(t, type) and issubclass(t, Choice), structure_choice)
    converter.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, Choice), unstructure_choice)
    return converter


# ------------------------------------------------------------------------------------------------ errors
def _extra_keys_message(exc: ForbiddenExtraKeysError) -> str:
    known = [f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
    parts = []
    for key in sorted(exc.extra_fields):
        close = difflib.get_close_matches(key, known, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown key{'s' if len(parts) > 1 else ''} {', '.join(parts)}; allowed keys: {', '.join(known) or 'none'}"


_NOT_ITERABLE = re.compile(r"^'(\w+)' object is not iterable$")


def _message(exc: BaseException) -> str:
    not_iterable = _NOT_ITERABLE.match(str(exc)) if isinstance(exc, TypeError) else None
    if not_iterable:
        return f"expected a list (e.g. [1, 5]), got a single {not_iterable.group(1)}"
    if isinstance(exc, ForbiddenExtraKeysError):
        return _extra_keys_message(exc)
    if isinstance(exc, KeyError) and not isinstance(exc, OMLError):
        return "required field missing"
    if isinstance(exc, OMLError):
        return str(exc)
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def config_problems(exc: BaseException, path: str = "$") -> list[str]:
    """Flatten a cattrs validation error into ``"$.path.to.field: message"`` lines."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        lines: list[str] = []
        with_notes, without_notes = exc.group_exceptions()
        for inner, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                lines += config_problems(inner, f"{path}.{note.name}")
            elif isinstance(note, IterableValidationNote):
                lines += config_problems(inner, f"{path}[{note.index!r}]")
            else:
                lines += config_problems(inner, path)
        for inner in without_notes:
            lines += config_problems(inner, path)
        return lines
    if isinstance(exc, BaseExceptionGroup):
        return [line for inner in exc.exceptions for line in config_problems(inner, path)]
    field = getattr(exc, "oml_field", None)  # an attrs validator's error (see field_error): raised by __init__
    return [f"{path}.{field}: {_message(exc)}" if field else f"{path}: {_message(exc)}"]


def field_error(attribute: attrs.Attribute[Any], message: str) -> ValueError:
    """A ValueError for an attrs validator that config errors report at the field's own path (``$.a.b``).

    Example:
        >>> def positive(instance, attribute, value):
        ...     if value < 1:
        ...         raise field_error(attribute, "must be > 0")
        >>> @attrs.frozen
        ... class Cfg:
        ...     n: int = attrs.field(validator=positive)
        >>> structure(make_converter(), {"n": 0}, Cfg)
        Traceback (most recent call last):
        oml_core.errors.ConfigError: config has 1 problem:
          $.n: must be > 0
    """
    error = ValueError(message)
    error.oml_field = attribute.name  # type: ignore[attr-defined]
    return error


def structure(converter: cattrs.Converter, data: Any, cls: type[T], *, source: str | None = None, root: str = "$") -> T:
    """Structure ``data`` into ``cls``; every problem comes back in one ConfigError.

    Example:
        >>> import attrs
        >>> @attrs.frozen
        ... class Opt:
        ...     epochs: int
        ...     lr: float
        >>> try:
        ...     structure(make_converter(), {"epochs": 3.5, "lr": "x"}, Opt)
        ... except ConfigError as e:
        ...     print(e.problems)
        ['$.epochs: expected an integer, got 3.5 (float)', "$.lr: expected a number, got 'x' (str)"]
    """
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise ConfigError([f"{root}: expected a mapping of {cls.__name__} fields, got {_describe(data)}"], source)
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError, TypeError, ValueError, KeyError) as exc:
        raise ConfigError(config_problems(exc, root), source) from None


# ------------------------------------------------------------------------------------------------ YAML
class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``; users write ``1e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


MAX_YAML_NODES = 100_000
"""How many values a YAML document may hold once its aliases are expanded: a config has hundreds; a "billion
laughs" document, a few lines long, expands to billions and would exhaust memory when a list of it is read."""


def _no_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        line = key_node.start_mark.line + 1
        if key in seen:
            problem = f"duplicate key {key!r} (first at line {seen[key]}): one of the two would be ignored"
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-untyped-call]


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """The number of values ``node`` stands for with every alias expanded (aliases share nodes: memoised)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(_expanded_size(child, memo) for child in children)
    memo[id(node)] = size
    return size


def parse_yaml(text: str, *, source: str = "<string>") -> Any:
    """Parse YAML text safely: no Python tags, no duplicate keys, aliases bounded by :data:`MAX_YAML_NODES`.

    Example:
        >>> parse_yaml("epochs: 3\nlr: 1e-3")
        {'epochs': 3, 'lr': 0.001}
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()  # type: ignore[no-untyped-call]
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_YAML_NODES:
            raise ConfigError(
                [f"$: the YAML aliases (&anchor / *alias) expand to {size:,} values, more than the {MAX_YAML_NODES:,} a "
                 "config may hold; write the values out instead of nesting aliases"],
                source,
            )
        return loader.construct_document(node)  # type: ignore[no-untyped-call]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"$: invalid YAML{where}: {problem}"], source) from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a syntax error names the file, line and column.

    Example:
        >>> load_yaml("train.yaml")["epochs"]   # doctest: +SKIP
        3
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"$: file not found: {path}"], str(path)) from None
    except IsADirectoryError:
        raise ConfigError([f"$: {path} is a folder; give the YAML config file inside it"], str(path)) from None
    except OSError as exc:
        raise ConfigError([f"$: cannot read {path}: {exc.strerror or exc}"], str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [f"$: not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} cannot be decoded; save the file as UTF-8"],
            str(path),
        ) from None
    return parse_yaml(text, source=str(path))


def dump_yaml(data: Any, path: str | Path | None = None) -> str:
    """Write plain data (e.g. ``converter.unstructure(cfg)``) as YAML; returns the text."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if path is not None:
        from oml_core.files import atomic_write_text

        atomic_write_text(path, text)
    return text


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """Parse a ``--set a.b.c=value`` override; the value is read as YAML (so ``3`` is an int, ``1e-3`` a float).

    Example:
        >>> parse_override("optimizer.lr=1e-3")
        (['optimizer', 'lr'], 0.001)
    """
    if "=" not in assignment:
        raise ConfigError([f"--set {assignment!r}: expected KEY=VALUE, e.g. epochs=3"])
    key, raw = assignment.split("=", 1)
    try:
        value = parse_yaml(raw, source=f"--set {assignment}") if raw else ""
    except ConfigError as exc:
        problem = exc.problems[0].removeprefix("$: ")
        raise ConfigError(
            [f"--set {assignment!r}: the value is read as YAML and is not valid ({problem}); "
             f"quote the whole value, e.g. --set \"{key}='...'\""]
        ) from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b=value`` overrides applied (creating intermediate mappings)."""
    import copy

    result = copy.deepcopy(data)
    for assignment in overrides:
        keys, value = parse_override(assignment)
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {} if child is None else child
                if not isinstance(child, dict):
                    raise ConfigError([f"--set {assignment}: $.{'.'.join(keys[:-1])} is not a mapping"])
                node[key] = child
            node = child
        node[keys[-1]] = value
    return result
