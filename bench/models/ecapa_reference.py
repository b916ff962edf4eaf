"""Reference outputs of OML 4.0's ECAPATDNNExtractor for the parity test of plugins/oml-audio.

Run in the peers venv (OML 4.0, see ../shared/peers/install.sh), with torchaudio's pure-Python parts available:
the only torchaudio wheel for torch 2.13 is a CUDA build whose compiled extension cannot load on the CPU torch, so
it is installed outside the venv and its extension loader is stubbed (OML's ECAPA only uses
``torchaudio.transforms.MelSpectrogram``, which is pure Python on top of ``torch.stft``)::

    pip install --no-deps --target /tmp/torchaudio-py torchaudio==2.11.0
    PYTHONPATH=/tmp/torchaudio-py:../shared/peers /work/peers-venv/bin/python bench/models/ecapa_reference.py

It builds OML's model (C=1024), loads a seeded random state dict (tests/ecapa_random_state.py) through OML's own
loader (``ECAPATDNNExtractor(weights=file)``, strict), embeds a seeded input and writes the key layout (names and
shapes) and the embeddings to plugins/oml-audio/tests/data/ecapa_reference.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "plugins" / "oml-audio" / "tests"
sys.path.insert(0, str(TESTS))


def _stub_torchaudio_extension() -> None:
    stub = types.ModuleType("torchaudio._extension")
    stub._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
    stub._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]
    stub.fail_if_no_align = lambda f: f  # type: ignore[attr-defined]
    sys.modules["torchaudio._extension"] = stub


def main() -> None:
    _stub_torchaudio_extension()
    import tv_shim

    tv_shim.ensure_torchvision()
    import oml
    import torchaudio
    from ecapa_random_state import INPUT_SEED, WEIGHTS_SEED, random_ecapa_state, seeded_input
    from oml.models import ECAPATDNNExtractor

    template = ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").model.state_dict()
    state = random_ecapa_state(template)
    # the published file wraps the model's keys: speaker_encoder.* plus the AAM-softmax head
    published = {f"speaker_encoder.{k}": v for k, v in state.items()}
    published["speaker_loss.weight"] = torch.zeros(5994, 192)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pretrain.model"
        torch.save(published, path)
        extractor = ECAPATDNNExtractor(weights=path, arch="ecapa_tdnn_taoruijie", normalise_features=False).eval()
        normalised = ECAPATDNNExtractor(weights=path, arch="ecapa_tdnn_taoruijie", normalise_features=True).eval()
    waveforms = seeded_input()
    with torch.no_grad():
        embeddings = extractor(waveforms)
        embeddings_3d = extractor(waveforms.unsqueeze(1))
        embeddings_normalised = normalised(waveforms)
    assert torch.equal(embeddings, embeddings_3d)
    out = {
        "generated_by": "bench/models/ecapa_reference.py",
        "oml_version": oml.__version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "weights_seed": WEIGHTS_SEED,
        "input_seed": INPUT_SEED,
        "keys": {k: list(v.shape) for k, v in template.items()},
        "fbank_sum": float(template["torchfbank.1.mel_scale.fb"].sum()),
        "embeddings": embeddings.tolist(),
        "embeddings_normalised": embeddings_normalised.tolist(),
    }
    target = TESTS / "data" / "ecapa_reference.json"
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}: {len(out['keys'])} keys, embeddings {tuple(embeddings.shape)}")


if __name__ == "__main__":
    main()
