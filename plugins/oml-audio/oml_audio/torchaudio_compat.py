"""The two ``torchaudio`` calls OML 4.0's audio examples make, on soundfile + soxr, so that such code runs with
``from oml_audio import torchaudio_compat as torchaudio`` instead of ``import torchaudio`` (which would pull a CUDA
build of torch on this project's platforms).

Example:
    >>> from oml_audio import torchaudio_compat as torchaudio
    >>> audio, sr = torchaudio.load("clip.wav")   # doctest: +SKIP
    >>> audio = torchaudio.functional.resample(audio, sr, 16000)   # doctest: +SKIP
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from oml_audio.io import read_audio
from oml_audio.io import resample as _resample


def load(uri: str | os.PathLike[str]) -> tuple[Tensor, int]:
    """``(waveform, sample_rate)``: float32 ``(channels, samples)`` in [-1, 1], as ``torchaudio.load``."""
    audio, rate = read_audio(uri)
    return torch.from_numpy(audio), rate


class functional:  # noqa: N801 - mirrors the torchaudio.functional module
    """``torchaudio.functional.resample``."""

    @staticmethod
    def resample(waveform: Tensor, orig_freq: int, new_freq: int) -> Tensor:
        """``waveform`` ``(..., samples)`` from ``orig_freq`` to ``new_freq`` Hz."""
        flat = waveform.detach().cpu().float().reshape(-1, waveform.shape[-1]).numpy()
        out = torch.from_numpy(_resample(flat, int(orig_freq), int(new_freq)))
        return out.reshape(*waveform.shape[:-1], out.shape[-1])


__all__ = ["functional", "load"]
