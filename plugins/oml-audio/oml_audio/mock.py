"""``get_mock_audios_dataset``: a tiny dataset of synthetic "voices" in OML's format, generated locally.

Each label is a speaker: a buzz at its own pitch shaped by its own three formants (a crude source-filter vowel),
with per-clip pitch drift, vibrato, loudness and noise. Labels 0-3 are the training split, 4-7 the validation
split (every clip both query and gallery). A few clips are stereo at 22.05 kHz, so that down-mixing and resampling
are exercised; ``start_time`` is 0 except for a few clips that start later.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

MOCK_AUDIO_DATASET_PATH = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oml" / "mock_audio_dataset"
MOCK_DATASET_DEFAULT_CSV = "df.csv"
N_LABELS, N_TRAIN_LABELS, CLIPS_PER_LABEL = 8, 4, 4
SECONDS = 2.0
_VERSION = 1


def _speaker(label: int) -> tuple[float, tuple[float, float, float]]:
    rng = np.random.default_rng(1000 + label)
    pitch = 90.0 + 22.0 * label + rng.uniform(-5, 5)
    formants = (rng.uniform(300, 900), rng.uniform(900, 2300), rng.uniform(2300, 3400))
    return pitch, formants


def synthesize_voice(label: int, clip: int, sample_rate: int = 16_000, seconds: float = SECONDS) -> np.ndarray:
    """One clip ``(samples,)`` float32 of speaker ``label`` (deterministic in ``label`` and ``clip``).

    Example:
        >>> synthesize_voice(0, 0, 16000, 0.5).shape
        (8000,)
    """
    pitch, formants = _speaker(label)
    rng = np.random.default_rng(label * 100 + clip)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = pitch * (1 + rng.uniform(-0.04, 0.04)) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    signal = np.zeros_like(t)
    for harmonic in range(1, int(4000 / pitch)):
        freq = harmonic * pitch
        gain = sum(math.exp(-(((freq - f) / 120.0) ** 2)) for f in formants) + 0.02
        signal += gain / harmonic**0.5 * np.sin(harmonic * phase)
    envelope = np.clip(np.minimum(t, t[-1] - t) / 0.05, 0, 1)
    signal = signal * envelope / (np.abs(signal).max() + 1e-9)
    signal = rng.uniform(0.4, 0.8) * signal + rng.uniform(0.005, 0.02) * rng.standard_normal(len(t))
    return np.clip(signal, -1, 1).astype(np.float32)


def generate_mock_audio_dataset(root: str | os.PathLike[str]) -> Path:
    """Write ``voices/voice{label}_{clip}.wav`` and ``df.csv`` under ``root`` (overwriting)."""
    import soundfile

    root = Path(root)
    (root / "voices").mkdir(parents=True, exist_ok=True)
    rows = []
    for label in range(N_LABELS):
        for clip in range(CLIPS_PER_LABEL):
            special = (label + clip) % 5 == 0  # stereo at 22.05 kHz
            rate = 22_050 if special else 16_000
            voice = synthesize_voice(label, clip, rate)
            data = np.stack([voice, 0.8 * voice], axis=1) if special else voice
            name = f"voices/voice{label}_{clip}.wav"
            soundfile.write(root / name, data, rate, subtype="PCM_16")
            train = label < N_TRAIN_LABELS
            rows.append({
                "label": label,
                "path": name,
                "split": "train" if train else "validation",
                "is_query": None if train else True,
                "is_gallery": None if train else True,
                "start_time": 0.25 if clip == 3 else 0.0,
            })
    pd.DataFrame(rows).to_csv(root / MOCK_DATASET_DEFAULT_CSV, index=False)
    (root / ".oml-mock-audio.json").write_text(json.dumps({"version": _VERSION, "digest": _digest(root)}), encoding="utf-8")
    return root


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((root / "voices").glob("*.wav")) + [root / MOCK_DATASET_DEFAULT_CSV]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _is_generated(root: Path, check_md5: bool) -> bool:
    marker = root / ".oml-mock-audio.json"
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if recorded.get("version") != _VERSION:
        return False
    return not check_md5 or recorded.get("digest") == _digest(root)


def get_mock_audios_dataset(
    dataset_root: str | os.PathLike[str] = MOCK_AUDIO_DATASET_PATH,
    df_name: str = MOCK_DATASET_DEFAULT_CSV,
    check_md5: bool = True,
    global_paths: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(df_train, df_val)`` of the mock audio dataset, generated under ``dataset_root`` when missing or changed
    (OML 4.0's call shape; ``check_md5`` checks the files' digest). ``global_paths`` makes the paths absolute.

    Example:
        >>> df_train, df_val = get_mock_audios_dataset(global_paths=True)   # doctest: +SKIP
        >>> sorted(df_train["label"].unique()), len(df_val)   # doctest: +SKIP
        ([0, 1, 2, 3], 16)
    """
    root = Path(dataset_root)
    if not _is_generated(root, check_md5):
        generate_mock_audio_dataset(root)
    df = pd.read_csv(root / df_name)
    if global_paths:
        df["path"] = [str(root / p) for p in df["path"]]
    df_train = df[df["split"] == "train"].reset_index(drop=True)
    df_val = df[df["split"] == "validation"].reset_index(drop=True)
    return df_train, df_val


__all__ = ["MOCK_AUDIO_DATASET_PATH", "generate_mock_audio_dataset", "get_mock_audios_dataset", "synthesize_voice"]
