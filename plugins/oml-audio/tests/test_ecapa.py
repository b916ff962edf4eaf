"""ECAPA-TDNN: the published checkpoint's key layout, strict loading, and OML 4.0's outputs on the same weights.

The reference (data/ecapa_reference.json) was written by bench/models/ecapa_reference.py in the peers venv: OML
4.0's own ECAPATDNNExtractor (with torchaudio's MelSpectrogram) loaded the seeded random state dict of
ecapa_random_state.py from a file in the published layout and embedded the seeded input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ecapa_random_state import INPUT_SEED, WEIGHTS_SEED, random_ecapa_state, seeded_input
from oml_audio import ECAPATDNNExtractor
from oml_audio.ecapa import mel_filterbank

from oml_core.errors import OMLError
from oml_core.weights import WeightsError

REFERENCE = json.loads((Path(__file__).parent / "data" / "ecapa_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def published_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded random weights in the layout of Tao Ruijie's exps/pretrain.model."""
    template = ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").model.state_dict()
    state = {f"speaker_encoder.{k}": v for k, v in random_ecapa_state(template, WEIGHTS_SEED).items()}
    state["speaker_loss.weight"] = torch.zeros(5994, 192)
    path = tmp_path_factory.mktemp("ecapa") / "pretrain.model"
    torch.save(state, path)
    return path


def test_key_layout_is_the_published_one() -> None:
    own = ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").model.state_dict()
    assert list(own) == list(REFERENCE["keys"])
    assert {k: list(v.shape) for k, v in own.items()} == REFERENCE["keys"]
    assert float(own["torchfbank.1.mel_scale.fb"].sum()) == pytest.approx(REFERENCE["fbank_sum"], rel=1e-6)


def test_outputs_equal_oml_4_on_the_same_random_weights(published_file: Path) -> None:
    assert (REFERENCE["weights_seed"], REFERENCE["input_seed"]) == (WEIGHTS_SEED, INPUT_SEED)
    extractor = ECAPATDNNExtractor(published_file, arch="ecapa_tdnn_taoruijie").eval()
    waveforms = seeded_input()
    with torch.no_grad():
        embeddings = extractor(waveforms)
        embeddings_3d = extractor(waveforms.unsqueeze(1))
    expected = torch.tensor(REFERENCE["embeddings"])
    assert embeddings.shape == (2, 192) == expected.shape
    assert torch.allclose(embeddings, expected, rtol=1e-4, atol=1e-4), (embeddings - expected).abs().max()
    assert torch.equal(embeddings, embeddings_3d)
    normalised = ECAPATDNNExtractor(published_file, normalise_features=True).eval()
    with torch.no_grad():
        assert torch.allclose(normalised(waveforms), torch.tensor(REFERENCE["embeddings_normalised"]), atol=1e-5)
    assert torch.allclose(extractor.extract(waveforms), embeddings) and extractor.feat_dim == 192


def test_loading_is_strict_and_names_the_problem(tmp_path: Path, published_file: Path) -> None:
    state = torch.load(published_file, weights_only=True)
    del state["speaker_encoder.layer2.conv3.weight"]
    broken = tmp_path / "broken.model"
    torch.save(state, broken)
    with pytest.raises(WeightsError, match=r"1 missing key\(s\), e\.g\. layer2\.conv3\.weight"):
        ECAPATDNNExtractor(broken)
    with pytest.raises(OMLError, match="unknown arch 'ecapa_small'"):
        ECAPATDNNExtractor(None, arch="ecapa_small")


def test_mel_filterbank_is_triangular_htk() -> None:
    fb = mel_filterbank(257, 20.0, 7600.0, 80, 16000)
    assert fb.shape == (257, 80) and fb.min() >= 0 and fb.max() <= 1
    peaks = fb.argmax(dim=0)
    assert (peaks[1:] >= peaks[:-1]).all()  # filters ordered by frequency
    assert fb[0].sum() == 0 and fb[244:].sum() == 0 and fb[1].sum() > 0  # bins of 31.25 Hz: none under 20 Hz or over 7.6 kHz


def test_stereo_input_is_refused_with_a_hint() -> None:
    extractor = ECAPATDNNExtractor(None).eval()
    with pytest.raises(OMLError, match="down-mix to mono"):
        extractor(torch.zeros(2, 2, 1600))
    with torch.no_grad():
        assert extractor(torch.zeros(1, 1, 3200)).shape == (1, 192)


def test_zoo_entry_is_verified_by_oml4s_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry carries OML 4.0's md5 of the published file: another file served at its URL is refused."""
    import attrs
    from oml_audio import pretrained

    from oml_core.weights import ChecksumMismatchError

    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    impostor = tmp_path / "pretrain.model"
    torch.save({"speaker_encoder.fc6.weight": torch.zeros(192, 3072)}, impostor)
    served = tuple(attrs.evolve(e, urls=(impostor.as_uri(),)) for e in pretrained.WEIGHTS)
    monkeypatch.setattr(pretrained, "WEIGHTS", served)
    assert served[0].md5 == "2bbc0ea09a41217eaff16b676ecb63d7" and served[0].sha256 is None
    with pytest.raises(ChecksumMismatchError):
        ECAPATDNNExtractor.from_pretrained("ecapa_tdnn_taoruijie")
