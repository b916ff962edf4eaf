"""Loading the plugin imports no audio library; torchaudio is never needed."""

from __future__ import annotations

import subprocess
import sys


def test_loading_the_plugin_imports_no_audio_library() -> None:
    code = (
        "import sys; from oml_core import Host; host = Host(env={}); "
        "assert 'oml_audio' in [p.name for p in host.plugins if p.status == 'loaded']; "
        "print(sorted(m for m in ('soundfile', 'soxr', 'torchaudio', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_reading_and_embedding_audio_needs_no_torchaudio(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys, numpy as np, soundfile, torch\n"
        "sys.modules['torchaudio'] = None  # any import of it fails\n"
        "from oml_audio import AudioBaseDataset, ECAPATDNNExtractor\n"
        f"soundfile.write({str(tmp_path / 'a.wav')!r}, np.zeros(22050, dtype=np.float32), 22050)\n"
        f"item = AudioBaseDataset([{str(tmp_path / 'a.wav')!r}], max_num_seconds=0.5)[0]['input_tensors']\n"
        "print(tuple(ECAPATDNNExtractor(None).eval()(item).shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(1, 192)"
