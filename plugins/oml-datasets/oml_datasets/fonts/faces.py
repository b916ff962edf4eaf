"""Judging rendered faces as a whole: which draw letters that people read as those letters, and which repeat another.

Both work on small grey-level signatures of a face's glyphs, so a few thousand faces compare in seconds.

Example:
    >>> import numpy as np
    >>> glyphs = np.random.default_rng(0).random((3, 4, 16, 16)).astype(np.float32)
    >>> glyphs[2] = glyphs[0]                          # face 2 repeats face 0
    >>> duplicate_of(signatures(glyphs), max_distance=0.01)
    [None, None, 0]
"""

from __future__ import annotations

import numpy as np

SIGNATURE_SIZE = 16


def signatures(glyphs: np.ndarray) -> np.ndarray:
    """``(faces, characters, h, w)`` images with ink high and paper 0 (any scale) to ``(faces, characters, s*s)``
    float32 signatures of side ``SIGNATURE_SIZE`` (area-averaged), values in [0, 1]."""
    faces, chars, height, width = glyphs.shape
    side = SIGNATURE_SIZE
    if height % side or width % side:
        raise ValueError(f"glyph size {height}x{width} is not a multiple of {side}")
    blocks = glyphs.reshape(faces, chars, side, height // side, side, width // side).astype(np.float32)
    pooled = blocks.mean(axis=(3, 5))
    peak = float(pooled.max()) or 1.0
    return (pooled / peak).reshape(faces, chars, side * side)


def _standardised(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.maximum(norms, 1e-6)


def legibility(sigs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """For each face, the share of its glyphs whose closest consensus glyph is the same character, or one of its
    group (``groups[c]``: e.g. one group per letter regardless of case, as caps-only faces draw "a" as "A").

    The consensus of a character is the mean of every face's standardised glyph; faces that map letters to
    symbols (dingbats, pi fonts) or draw nothing legible score near ``1 / characters``, text faces near 1.
    Two rounds: the second consensus leaves out faces that scored below one half in the first.
    """
    std = _standardised(sigs)
    group = np.arange(sigs.shape[1]) if groups is None else np.asarray(groups)
    keep = np.ones(len(sigs), dtype=bool)
    scores = np.zeros(len(sigs))
    for _ in range(2):
        templates = _standardised(std[keep].mean(axis=0))
        similarity = np.einsum("fcd,kd->fck", std, templates)
        scores = (group[similarity.argmax(axis=2)] == group).mean(axis=1)
        if (scores >= 0.5).sum() >= 2:
            keep = scores >= 0.5
    return scores


def duplicate_of(sigs: np.ndarray, *, max_distance: float) -> list[int | None]:
    """For each face, the earlier face it nearly repeats (root-mean-square signature difference at most
    ``max_distance``), or None: the first of a group of near-duplicates is kept, in the given order."""
    flat = sigs.reshape(len(sigs), -1).astype(np.float64)
    squared = (flat**2).sum(axis=1)
    result: list[int | None] = [None] * len(flat)
    kept = np.zeros(len(flat), dtype=bool)
    limit = max_distance**2 * flat.shape[1]
    for start in range(0, len(flat), 512):
        block = flat[start : start + 512]
        d2 = squared[start : start + 512, None] + squared[None, :] - 2 * block @ flat.T
        for offset, row in enumerate(d2):
            face = start + offset
            earlier = np.flatnonzero(kept[:face] & (row[:face] <= limit))
            if len(earlier):
                result[face] = int(earlier[np.argmin(row[earlier])])
            else:
                kept[face] = True
    return result
