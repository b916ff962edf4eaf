"""OML 4.0's ``oml.const`` names used by its audio examples."""

from __future__ import annotations

from oml_audio.datasets import DEFAULT_CONVERT_TO_MONO, DEFAULT_SAMPLE_RATE, MAX_AUDIO_LEN, START_TIME_COLUMN
from oml_audio.io import AUDIO_EXTENSIONS
from oml_audio.mock import MOCK_AUDIO_DATASET_PATH
from oml_core.weights import cache_dir

#: where downloaded weights go (OML 4.0's ``CKPT_SAVE_ROOT``): the weights cache of ``oml_core.weights``
CKPT_SAVE_ROOT = cache_dir() / "weights"

__all__ = [
    "AUDIO_EXTENSIONS",
    "CKPT_SAVE_ROOT",
    "DEFAULT_CONVERT_TO_MONO",
    "DEFAULT_SAMPLE_RATE",
    "MAX_AUDIO_LEN",
    "MOCK_AUDIO_DATASET_PATH",
    "START_TIME_COLUMN",
]
