"""Reading audio: ``soundfile`` (libsndfile, bundled in its wheel: WAV, FLAC, OGG/Vorbis, MP3) and ``soxr`` for
resampling. Neither pulls torch or CUDA libraries. Every failure is an ``AudioReadError`` naming the file (and the
dataframe row when known)."""

from __future__ import annotations

import os
from collections.abc import Hashable

import numpy as np

from oml_core.errors import OMLError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
#: below this a file's sample rate is taken for a broken header rather than audio
MIN_SAMPLE_RATE = 1000


class AudioReadError(OMLError):
    """An audio file cannot be used: unreadable, empty, or at a sample rate the dataset does not accept."""


def _where(path: str | os.PathLike[str], row: Hashable | None) -> str:
    return f"row {row} ({os.fspath(path)})" if row is not None else os.fspath(path)


def audio_info(path: str | os.PathLike[str], *, row: Hashable | None = None) -> tuple[int, int, int]:
    """``(sample_rate, frames, channels)`` of an audio file, read from its header.

    Example:
        >>> audio_info("clip.wav")   # doctest: +SKIP
        (16000, 48000, 1)
    """
    import soundfile

    try:
        info = soundfile.info(os.fspath(path))
    except (RuntimeError, OSError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        reason = "file not found" if not os.path.exists(path) else str(exc).strip().splitlines()[0]
        raise AudioReadError(f"cannot read the audio of {_where(path, row)}: {reason}") from None
    if info.frames <= 0:
        raise AudioReadError(f"the audio of {_where(path, row)} is empty (zero samples)")
    if info.samplerate < MIN_SAMPLE_RATE:
        raise AudioReadError(
            f"the audio of {_where(path, row)} claims a sample rate of {info.samplerate} Hz, which is not a usable audio "
            f"rate (at least {MIN_SAMPLE_RATE} Hz); the file's header is probably wrong"
        )
    return int(info.samplerate), int(info.frames), int(info.channels)


def read_audio(
    path: str | os.PathLike[str],
    *,
    start: float = 0.0,
    duration: float | None = None,
    row: Hashable | None = None,
) -> tuple[np.ndarray, int]:
    """``(audio, sample_rate)``: float32 ``(channels, samples)`` in [-1, 1] at the file's own rate, from ``start``
    seconds for ``duration`` seconds (to the end when None). Only that part of the file is read.

    Example:
        >>> audio, rate = read_audio("clip.wav", start=0.5, duration=1.0)   # doctest: +SKIP
        >>> audio.shape, rate
        ((1, 16000), 16000)
    """
    import soundfile

    rate, frames, _ = audio_info(path, row=row)
    if start < 0:
        raise AudioReadError(f"the start time of {_where(path, row)} is negative ({start} s)")
    first = int(round(start * rate))
    if first >= frames:
        raise AudioReadError(
            f"the start time {start:g} s of {_where(path, row)} is past the end of the audio ({frames / rate:.3f} s long)"
        )
    count = -1 if duration is None else max(1, int(np.ceil(duration * rate)))
    try:
        data, _ = soundfile.read(os.fspath(path), start=first, frames=count, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise AudioReadError(f"cannot read the audio of {_where(path, row)}: {str(exc).strip().splitlines()[0]}") from None
    if data.shape[0] == 0:
        raise AudioReadError(f"the audio of {_where(path, row)} is empty (zero samples)")
    if not np.isfinite(data).all():
        raise AudioReadError(f"the audio of {_where(path, row)} holds NaN or infinite samples")
    return np.ascontiguousarray(data.T), rate


def resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """``audio`` ``(channels, samples)`` from ``rate`` to ``target_rate`` (soxr, high quality).

    Example:
        >>> resample(np.zeros((1, 44100), dtype=np.float32), 44100, 16000).shape
        (1, 16000)
    """
    if rate == target_rate:
        return audio
    import soxr

    out = soxr.resample(audio.T, rate, target_rate, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


__all__ = ["AUDIO_EXTENSIONS", "AudioReadError", "audio_info", "read_audio", "resample"]
