"""Loading the plugin imports no text library, and the core never does."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_loading_the_plugin_imports_no_text_library() -> None:
    code = (
        "import sys; from oml_core import Host; host = Host(env={}); "
        "assert 'oml_text' in [p.name for p in host.plugins if p.status == 'loaded']; "
        "print(sorted(m for m in ('transformers', 'tokenizers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_core_does_not_depend_on_text_or_audio_libraries() -> None:
    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]).lower()
    for library in ("transformers", "tokenizers", "soundfile", "soxr", "torchaudio", "librosa"):
        assert library not in deps
        hits = [p for p in (ROOT / "oml_core").rglob("*.py") if f"import {library}" in p.read_text(encoding="utf-8")]
        assert not hits, hits
