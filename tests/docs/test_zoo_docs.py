"""The `oml zoo` commands shown in docs/zoo.md run (offline: they only read the registry and the cache)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from oml_core.cli import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "zoo.md"


def test_the_zoo_commands_of_the_page_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("OML_OFFLINE", "1")  # `oml zoo download` must then explain, not fetch
    commands = re.findall(r"^(oml zoo [^#\n]+?)\s*(?:#.*)?$", PAGE.read_text(), re.M)
    assert {c.split()[2] for c in commands} == {"list", "show", "download"}
    for command in commands:
        status = main(shlex.split(command)[1:])
        assert status == (2 if " download " in command else 0), command
