"""The weights table of oml-audio: OML 4.0's ECAPA-TDNN speaker embedder, by its OML name.

OML 4.0 publishes only the md5 of this file; the entry is verified by it (the file's sha256 is then recorded in the
cache on first download).
"""

from __future__ import annotations

from oml_core.zoo import WeightsEntry, entry

WEIGHTS: tuple[WeightsEntry, ...] = (
    entry(
        "ecapa_tdnn_taoruijie",
        arch="ecapa_tdnn_taoruijie",
        extractor="ecapa_tdnn",
        urls=["https://github.com/TaoRuijie/ECAPA-TDNN/raw/refs/heads/main/exps/pretrain.model"],
        md5="2bbc0ea09a41217eaff16b676ecb63d7",
        init_args={"normalise_features": False},
        summary="ECAPA-TDNN (C=1024) speaker embeddings trained on VoxCeleb2 by Tao Ruijie; EER 0.86% on Vox1-O",
        architecture="ECAPA-TDNN (C=1024)",
        embedding_size=192,
        source="https://github.com/TaoRuijie/ECAPA-TDNN",
    ),
)

__all__ = ["WEIGHTS"]
