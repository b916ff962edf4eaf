"""pytest fixtures of ``oml_core.testing`` (opt in with ``pytest_plugins = ["oml_core.testing"]``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from oml_core.host import Host
from oml_core.testing.data import tiny_embeddings, tiny_labels


@pytest.fixture
def oml_host_factory() -> Callable[..., Host]:
    """Build hosts that see no environment variables, so a developer's OML_* settings never leak into tests.

    Example (in a test)::

        host = oml_host_factory(plugins=[my_plugin], entry_points=False)
    """

    def make(
        *, plugins: Iterable[object] = (), entry_points: bool = True, strict: bool = True, env: dict[str, str] | None = None
    ) -> Host:
        return Host(plugins=plugins, entry_points=entry_points, strict=strict, env=env or {})

    return make


@pytest.fixture
def oml_host(oml_host_factory: Callable[..., Host]) -> Host:
    """A strict host with the built-ins and every installed plugin, isolated from OML_* variables."""
    return oml_host_factory()


@pytest.fixture
def tiny_batch() -> dict[str, Any]:
    """A batch dict as the datasets yield: ``labels`` (12,), ``embeddings`` (12, 8), ``input_tensors`` (12, 3, 32, 32)."""
    labels = tiny_labels(4, 3)
    generator = __import__("torch").Generator().manual_seed(0)
    return {
        "labels": labels,
        "embeddings": tiny_embeddings(labels),
        "input_tensors": __import__("torch").rand(len(labels), 3, 32, 32, generator=generator),
        "idx": __import__("torch").arange(len(labels)),
    }
