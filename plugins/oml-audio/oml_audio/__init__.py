"""Audio for OML: ``ECAPATDNNExtractor`` (plain torch, the published checkpoint's layout), the audio datasets with
OML 4.0's names, ``get_mock_audios_dataset`` and spectrogram pictures. Audio is read with soundfile and resampled
with soxr (no torchaudio).

Example:
    >>> from oml_audio import ECAPATDNNExtractor
    >>> ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").feat_dim
    192
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command, even `oml --help`) imports no torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AudioBaseDataset": "oml_audio.datasets",
        "AudioLabeledDataset": "oml_audio.datasets",
        "AudioQueryGalleryDataset": "oml_audio.datasets",
        "AudioQueryGalleryLabeledDataset": "oml_audio.datasets",
        "ECAPATDNN": "oml_audio.ecapa",
        "ECAPAConfig": "oml_audio.extractor",
        "ECAPATDNNExtractor": "oml_audio.extractor",
        "AudioReadError": "oml_audio.io",
        "read_audio": "oml_audio.io",
        "resample": "oml_audio.io",
        "get_mock_audios_dataset": "oml_audio.mock",
        "AudioModality": "oml_audio.modality",
        "AudioModalityConfig": "oml_audio.modality",
        "default_spec_repr_func": "oml_audio.visualize",
        "visualize_audio": "oml_audio.visualize",
        "visualize_audio_with_player": "oml_audio.visualize",
    },
)

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
