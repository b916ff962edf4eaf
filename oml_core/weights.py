"""The weights zoo: named pretrained checkpoints registered by plugins (``oml_register_weights``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from oml_core.errors import DuplicateComponentError, UnknownComponentError


@attrs.frozen
class WeightsEntry:
    """One named checkpoint: where to get it, its full sha256, which architecture it fits and its transforms."""

    name: str
    url: str
    sha256: str
    arch: str
    extractor: str
    transforms: Mapping[str, Any] = attrs.field(factory=dict)
    summary: str = ""
    plugin: str = ""


class WeightsZoo:
    """Named weights, by name.

    Example:
        >>> zoo = WeightsZoo()
        >>> zoo.add("vits16_dino", url="https://example/x.pth", sha256="0" * 64, arch="vits16", extractor="vit")
        >>> zoo.get("vits16_dino").arch
        'vits16'
    """

    def __init__(self) -> None:
        self._entries: dict[str, WeightsEntry] = {}
        self._current_plugin: str | None = None
        self.raise_on_duplicate = True
        self.conflicts: list[DuplicateComponentError] = []

    @contextmanager
    def registering(self, plugin: str) -> Iterator[WeightsZoo]:
        previous, self._current_plugin = self._current_plugin, plugin
        try:
            yield self
        finally:
            self._current_plugin = previous

    def add(
        self,
        name: str,
        *,
        url: str,
        sha256: str,
        arch: str,
        extractor: str,
        transforms: Mapping[str, Any] | None = None,
        summary: str = "",
    ) -> None:
        """Register checkpoint ``name``; ``extractor`` is the registered extractor that loads it."""
        plugin = self._current_plugin or "<unknown>"
        if name in self._entries:
            error = DuplicateComponentError("weights", name, self._entries[name].plugin, plugin)
            if self.raise_on_duplicate:
                raise error
            self.conflicts.append(error)
            return
        self._entries[name] = WeightsEntry(name, url, sha256.lower(), arch, extractor, dict(transforms or {}), summary, plugin)

    def get(self, name: str) -> WeightsEntry:
        if name not in self._entries:
            raise UnknownComponentError(f"unknown weights {name!r}; available: {', '.join(sorted(self._entries)) or 'none'}")
        return self._entries[name]

    def remove_plugin(self, plugin: str) -> None:
        self._entries = {n: e for n, e in self._entries.items() if e.plugin != plugin}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
