"""Audio for OML: ``ECAPATDNNExtractor`` (plain torch, the published checkpoint's layout), the audio datasets with
OML 4.0's names, ``get_mock_audios_dataset`` and spectrogram pictures. Audio is read with soundfile and resampled
with soxr (no torchaudio).

Example:
    >>> from oml_audio import ECAPATDNNExtractor
    >>> ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").feat_dim
    192
"""

from oml_audio.datasets import (
    AudioBaseDataset,
    AudioLabeledDataset,
    AudioQueryGalleryDataset,
    AudioQueryGalleryLabeledDataset,
)
from oml_audio.ecapa import ECAPATDNN
from oml_audio.extractor import ECAPAConfig, ECAPATDNNExtractor
from oml_audio.io import AudioReadError, read_audio, resample
from oml_audio.mock import get_mock_audios_dataset
from oml_audio.modality import AudioModality, AudioModalityConfig
from oml_audio.visualize import default_spec_repr_func, visualize_audio, visualize_audio_with_player

__all__ = [
    "ECAPATDNN",
    "AudioBaseDataset",
    "AudioLabeledDataset",
    "AudioModality",
    "AudioModalityConfig",
    "AudioQueryGalleryDataset",
    "AudioQueryGalleryLabeledDataset",
    "AudioReadError",
    "ECAPAConfig",
    "ECAPATDNNExtractor",
    "default_spec_repr_func",
    "get_mock_audios_dataset",
    "read_audio",
    "resample",
    "visualize_audio",
    "visualize_audio_with_player",
]
