"""The ``oml_audio`` plugin: the ``ecapa_tdnn`` extractor, its weights and the ``audio`` modality."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl

# components are imported inside the hooks: the host imports this module for every command, `oml --help` too


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    from oml_audio.extractor import ECAPAConfig, create_ecapa

    registry.add(
        "ecapa_tdnn",
        config=ECAPAConfig,
        factory=create_ecapa,
        summary="ECAPA-TDNN speaker embedder for 16 kHz mono audio (published checkpoint layout), plain torch",
        example={"arch": "ecapa_tdnn_taoruijie"},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    from oml_audio import pretrained
    from oml_core.zoo import register_table

    register_table(zoo, pretrained.WEIGHTS)


@hookimpl
def oml_register_modalities(registry: Any) -> None:
    from oml_audio.modality import AudioModality, AudioModalityConfig

    registry.add(
        "audio",
        config=AudioModalityConfig,
        factory=AudioModality,
        summary="dataframe rows are audio files (path, optional start_time): mono, resampled, fixed length",
        example={"max_num_seconds": 3.0},
    )
