"""docs/production.md: every shell command of the page runs, in order, in one shell (train, calibrate, export, index,
search on the mock data), then its Python example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "production.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def _blocks(language: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(PAGE.read_text(encoding="utf-8")) if m.group(1) == language]


@pytest.mark.slow
def test_production_walkthrough_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    script = "set -euo pipefail\n" + "\n".join(_blocks("bash")) + "\n"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]

    run = sorted((tmp_path / "runs").glob("prod-train-*"))[-1]
    assert (run / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "embeddings.safetensors").is_file() and (tmp_path / "gallery.db").is_file()
    assert (tmp_path / "validation_embeddings.pt").is_file() and '"OVERALL/cmc/1"' in done.stdout
    assert (tmp_path / "matches.png").read_bytes()[:4] == b"\x89PNG"
    assert "rank" in done.stdout and "the store holds 288 items" in done.stdout
    assert not (tmp_path / "gallery.faiss" / "shards").exists()
    assert (run / "calibration.json").is_file() and "same" in done.stdout
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.card.json").is_file()

    # the Python example, in the same directory
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        for code in _blocks("python"):
            exec(compile(code, str(PAGE), "exec"), {"__name__": "docs_production"})  # noqa: S102 - our own docs
    finally:
        os.chdir(cwd)
