"""Lazy package attributes (PEP 562), so that importing a plugin package, and so ``oml --help``, does not import
torch: ``from oml_vit import ViTExtractor`` still works and imports ``oml_vit.extractor`` at that moment.

Example (a package's ``__init__.py``)::

    from oml_core.lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {"ViTExtractor": "oml_vit.extractor"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: attribute ``name`` is taken from module ``exports[name]`` on
    first use and then kept in the package's namespace.

    Example:
        >>> getattr_, dir_ = lazy_exports("json", {"dumps": "json"})
        >>> getattr_("dumps")({"a": 1})
        '{"a": 1}'
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
