"""docs/production.md: every shell command of the page runs, in order, in one shell (train, calibrate, export, index,
search on the mock data), then its Python example. A step whose command is not part of this checkout yet
(`oml calibrate`, `oml export --format`, merged from other branches) is reported by a warning naming it, and runs
as soon as the command exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "production.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def _blocks(language: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(PAGE.read_text(encoding="utf-8")) if m.group(1) == language]


def _missing_commands() -> dict[str, str]:
    """Commands of the page this checkout lacks: ``{line prefix: why}``."""
    from oml_core import Host
    from oml_core.cli import collect_commands

    commands = collect_commands(Host(env={}))
    missing = {}
    if "calibrate" not in commands.names():
        missing["oml calibrate"] = "`oml calibrate` is not registered (issue 16 item 4)"
    if "export" not in commands.names() or "--format" not in _export_help(commands) or "--run" not in _export_help(commands):
        missing["oml export"] = "`oml export --run --format onnx` is not available (issue 16 item 3)"
    return missing


def _export_help(commands: Any) -> str:
    import argparse

    parser = argparse.ArgumentParser()
    commands["export"].configure(parser)
    return parser.format_help()


@pytest.mark.slow
def test_production_walkthrough_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    missing = _missing_commands()
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            pending = [why for prefix, why in missing.items() if line.startswith(prefix)]
            lines.append(f"echo 'not run yet: {pending[0]}'" if pending else line)
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]
    for why in missing.values():
        warnings.warn(f"docs/production.md: a step could not run in this checkout: {why}", stacklevel=1)

    run = sorted((tmp_path / "runs").glob("prod-train-*"))[-1]
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "embeddings.safetensors").is_file() and (tmp_path / "gallery.db").is_file()
    assert (tmp_path / "validation_embeddings.pt").is_file() and '"OVERALL/cmc/1"' in done.stdout
    assert (tmp_path / "matches.png").read_bytes()[:4] == b"\x89PNG"
    assert "rank" in done.stdout and "the store holds 288 items" in done.stdout
    assert not (tmp_path / "gallery.faiss" / "shards").exists()
    if "oml calibrate" not in missing:
        assert (run / "calibration.json").is_file() and "same" in done.stdout
    if "oml export" not in missing:
        assert (tmp_path / "model.onnx").is_file()

    # the Python example, in the same directory
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        for code in _blocks("python"):
            exec(compile(code, str(PAGE), "exec"), {"__name__": "docs_production"})  # noqa: S102 - our own docs
    finally:
        os.chdir(cwd)
