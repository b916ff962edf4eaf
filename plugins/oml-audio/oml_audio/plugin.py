"""The ``oml_audio`` plugin: the ``ecapa_tdnn`` extractor, its weights and the ``audio`` modality."""

from __future__ import annotations

from typing import Any

from oml_audio.extractor import ECAPAConfig, create_ecapa
from oml_audio.modality import AudioModality, AudioModalityConfig
from oml_core import hookimpl
from oml_core.weights import PLACEHOLDER_SHA256

# name: (arch, url, sha256, summary). OML 4.0 records only the md5 of this file (2bbc0ea09a41217eaff16b676ecb63d7);
# its full sha256 is not confirmed yet, so the entry refuses to download and asks for the local file (fill it in).
WEIGHTS: dict[str, tuple[str, str, str, str]] = {
    "ecapa_tdnn_taoruijie": (
        "ecapa_tdnn_taoruijie",
        "https://github.com/TaoRuijie/ECAPA-TDNN/raw/refs/heads/main/exps/pretrain.model",
        PLACEHOLDER_SHA256,
        "ECAPA-TDNN (C=1024) speaker embeddings trained on VoxCeleb2 by Tao Ruijie; EER 0.86% on Vox1-O",
    ),
}


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    registry.add(
        "ecapa_tdnn",
        config=ECAPAConfig,
        factory=create_ecapa,
        summary="ECAPA-TDNN speaker embedder for 16 kHz mono audio (published checkpoint layout), plain torch",
        example={"arch": "ecapa_tdnn_taoruijie"},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    for name, (arch, url, sha256, summary) in WEIGHTS.items():
        zoo.add(name, url=url, sha256=sha256, arch=arch, extractor="ecapa_tdnn", summary=summary)


@hookimpl
def oml_register_modalities(registry: Any) -> None:
    registry.add(
        "audio",
        config=AudioModalityConfig,
        factory=AudioModality,
        summary="dataframe rows are audio files (path, optional start_time): mono, resampled, fixed length",
        example={"max_num_seconds": 3.0},
    )
