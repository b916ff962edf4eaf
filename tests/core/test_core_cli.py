"""The ``oml`` command line: plugins listing, config check, version, behaviour with broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oml_core import __version__
from oml_core.cli import main

BROKEN = "raise RuntimeError('cannot import me')"


def run_cli(*args: str, env: dict[str, str] | None = None, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OML_")}
    full_env.update(env or {})
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "oml_core.cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"oml-core {__version__}"


def test_plugins_json_lists_a_broken_plugin_and_still_works(fake_distribution, capsys, monkeypatch) -> None:
    fake_distribution("broken-plug", "brokenplug", BROKEN, version="0.9")
    monkeypatch.setenv("OML_LOAD_PLUGINS", "brokenplug")
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    broken = next(p for p in listing if p["name"] == "brokenplug")
    assert broken["status"] == "broken" and broken["distribution"] == "broken-plug" and broken["version"] == "0.9"
    assert "cannot import me" in broken["error"]
    assert any(p["name"] == "oml_core.builtin.commands" and p["status"] == "loaded" for p in listing)


def test_plugins_in_a_real_process_with_a_broken_plugin(fake_distribution) -> None:
    site = fake_distribution("broken-plug", "brokenplug", BROKEN)
    result = run_cli("plugins", pythonpath=site, env={"OML_LOAD_PLUGINS": "brokenplug"})
    assert result.returncode == 0, result.stderr
    assert "brokenplug (broken-plug 1.2.3) [broken]" in result.stdout
    assert "cannot import me" in result.stdout


def test_other_commands_warn_about_a_broken_plugin_but_run(fake_distribution, tmp_path: Path) -> None:
    site = fake_distribution("broken-plug", "brokenplug", BROKEN)
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: many\n")
    result = run_cli("config", "check", str(config), pythonpath=site, env={"OML_LOAD_PLUGINS": "brokenplug"})
    assert "warning: plugin 'brokenplug' (broken-plug 1.2.3) failed to load" in result.stderr
    assert result.returncode == 2
    assert "$.epochs: expected an integer, got 'many' (str)" in result.stderr


def test_misspelled_hook_stops_every_command_but_plugins(fake_distribution, tmp_path: Path) -> None:
    site = fake_distribution("typo-plug", "typoplug", "def oml_register_lossess(registry):\n    pass\n")
    env = {"OML_LOAD_PLUGINS": "typoplug"}
    result = run_cli("config", "check", str(tmp_path / "x.yaml"), pythonpath=site, env=env)
    assert result.returncode == 2 and "unknown hook 'oml_register_lossess'" in result.stderr
    listing = run_cli("plugins", "--json", pythonpath=site, env=env)
    assert listing.returncode == 0
    assert next(p for p in json.loads(listing.stdout) if p["name"] == "typoplug")["status"] == "broken"


def test_config_check_reports_every_problem(tmp_path: Path, capsys) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 2.5\nseed: '1'\nextractor: {type: no_such_model}\n")
    assert main(["config", "check", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config} has" in err
    for line in [
        "$.epochs: expected an integer",
        "$.seed: expected an integer",
        "$.extractor: unknown extractors component 'no_such_model'",
        "$.data: required field missing",
    ]:
        assert line in err


def test_core_alone_lists_only_builtins(tmp_path: Path) -> None:
    """With no plugin installed (entry points hidden, plugin packages unimportable) the core imports and works."""
    script = tmp_path / "no_plugins.py"
    script.write_text(
        textwrap.dedent(
            """
            import importlib.abc, importlib.metadata, json, sys

            class HidePlugins(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0].startswith("oml_") and name.split(".")[0] != "oml_core":
                        raise ImportError(f"{name} is not installed")
                    return None

            sys.meta_path.insert(0, HidePlugins())
            real = importlib.metadata.entry_points
            importlib.metadata.entry_points = lambda **kw: [] if kw.get("group") == "oml" else real(**kw)
            from oml_core.cli import main
            sys.exit(main(["plugins", "--json"]))
            """
        )
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing and all(p["source"] == "builtin" and p["status"] == "loaded" for p in listing)
    assert not [m for m in result.stderr.splitlines() if "warning" in m]


@pytest.mark.parametrize("argv", [["--help"], ["plugins", "--help"], ["config", "check", "--help"]])
def test_help_works(argv: list[str]) -> None:
    result = run_cli(*argv)
    assert result.returncode == 0 and "usage: oml" in result.stdout
