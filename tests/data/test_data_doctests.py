"""The examples in the data modules' docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "oml_core.data",
    "oml_core.data.const",
    "oml_core.data.dataframe",
    "oml_core.data.datasets",
    "oml_core.data.images",
    "oml_core.data.mock",
    "oml_core.data.transforms",
    "oml_core.builtin.data",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see the output above)"
    if name not in ("oml_core.data.const", "oml_core.builtin.data"):
        assert result.attempted > 0
