# OML 4.0 README, "Zoo: audios" (docs/readme/examples_source/zoo/zoo_audios.md). Only the imports differ:
# ruff: noqa: I001 - the imports keep the original order
# torchaudio's load / functional.resample come from oml_audio.torchaudio_compat (soundfile + soxr).
from oml_audio import torchaudio_compat as torchaudio

from oml_audio import ECAPATDNNExtractor
from oml_audio.const import CKPT_SAVE_ROOT as CKPT_DIR, MOCK_AUDIO_DATASET_PATH as DATA_DIR

# replace it by your actual paths
ckpt_path = CKPT_DIR / "ecapa_tdnn_taoruijie.pth"
file_path = DATA_DIR / "voices" / "voice0_0.wav"

model = ECAPATDNNExtractor(weights=ckpt_path, arch="ecapa_tdnn_taoruijie", normalise_features=False).to("cpu").eval()
audio, sr = torchaudio.load(file_path)

if audio.shape[0] > 1:
    audio = audio.mean(dim=0, keepdim=True)  # mean by channels
if sr != 16000:
    audio = torchaudio.functional.resample(audio, sr, 16000)

embeddings = model.extract(audio)
