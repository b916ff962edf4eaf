"""Compact codes of embeddings for quantised store indexes: int8 scalar codes and binary (sign) codes.

A quantised index finds candidates by the codes, then re-scores them exactly from the float vectors; the codes are
what has to stay in memory (or be scanned), at 1/4 (int8) or ``n_bits / (32 dim)`` (binary) of float32's size.

- :class:`Int8Quantizer`: per dimension, ``[lo, hi]`` of the training vectors mapped to 0..255; approximate
  distances are computed on the decoded vectors.
- :class:`BinaryQuantizer`: ``n_bits`` signs of random projections of the centred vectors (2 bits per dimension by
  default: 1/16 of float32); the Hamming distance between codes estimates the angle between vectors.

Both are fitted on a sample of stored vectors and described by a JSON-serialisable ``state()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS: tuple[str, ...] = ("sq8", "binary")
#: vectors of a sample to fit a quantiser on
FIT_SAMPLE = 100_000
_SEED = 20251203


def default_n_bits(dim: int) -> int:
    """Two bits per dimension, rounded up to whole bytes: 1/16 of float32's size.

    Example:
        >>> default_n_bits(128), default_n_bits(6)
        (256, 16)
    """
    return -(-2 * dim // 8) * 8


def _sample(x: np.ndarray, size: int = FIT_SAMPLE) -> np.ndarray:
    if len(x) <= size:
        return x
    rows = np.sort(np.random.default_rng(_SEED).choice(len(x), size=size, replace=False))
    return x[rows]


class Int8Quantizer:
    """Per-dimension affine map to uint8.

    Example:
        >>> q = Int8Quantizer.fit(np.array([[0.0, -1.0], [1.0, 1.0]], dtype=np.float32))
        >>> q.encode(np.array([[0.5, 0.0], [2.0, -3.0]], dtype=np.float32)).tolist()
        [[128, 128], [255, 0]]
    """

    kind = "sq8"

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo = np.asarray(lo, dtype=np.float32)
        self.scale = np.maximum(np.asarray(hi, dtype=np.float32) - self.lo, 1e-12) / 255.0

    @classmethod
    def fit(cls, x: np.ndarray) -> Int8Quantizer:
        sample = _sample(np.asarray(x, dtype=np.float32))
        return cls(sample.min(axis=0), sample.max(axis=0))

    def encode(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint((np.asarray(x, dtype=np.float32) - self.lo) / self.scale), 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return codes.astype(np.float32) * self.scale + self.lo

    @property
    def code_bytes(self) -> int:
        return len(self.lo)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "lo": self.lo.tolist(), "hi": (self.lo + self.scale * 255).tolist()}


class BinaryQuantizer:
    """Signs of ``n_bits`` random projections of ``x - mean``, packed 8 to a byte; each projection's threshold is its
    median on the training sample, so every bit splits the data in halves.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
        >>> q = BinaryQuantizer.fit(x, n_bits=16)
        >>> q.encode(x).shape, q.code_bytes
        ((100, 2), 2)
    """

    kind = "binary"

    def __init__(self, mean: np.ndarray, projection: np.ndarray, thresholds: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.projection = np.asarray(projection, dtype=np.float32)  # (dim, n_bits)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)

    @staticmethod
    def _projection(dim: int, n_bits: int) -> np.ndarray:
        """Blocks of random orthonormal directions (orthogonal within each block of ``dim``)."""
        rng = np.random.default_rng(_SEED)
        blocks = []
        for start in range(0, n_bits, dim):
            q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            blocks.append(q[:, : min(dim, n_bits - start)])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    @classmethod
    def fit(cls, x: np.ndarray, n_bits: int | None = None) -> BinaryQuantizer:
        x = np.asarray(x, dtype=np.float32)
        dim = x.shape[1]
        n_bits = n_bits if n_bits is not None else default_n_bits(dim)
        if n_bits < 8 or n_bits % 8:
            raise ValueError(f"n_bits must be a positive multiple of 8, got {n_bits}")
        sample = _sample(x)
        mean = sample.mean(axis=0)
        projection = cls._projection(dim, n_bits)
        thresholds = np.median((sample - mean) @ projection, axis=0)
        return cls(mean, projection, thresholds)

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        out = np.empty((len(x), self.code_bytes), dtype=np.uint8)
        for start in range(0, len(x), 65536):  # bounded temporaries for large batches
            bits = ((x[start : start + 65536] - self.mean) @ self.projection) > self.thresholds
            out[start : start + 65536] = np.packbits(bits, axis=1)
        return out

    @property
    def n_bits(self) -> int:
        return int(self.projection.shape[1])

    @property
    def code_bytes(self) -> int:
        return self.n_bits // 8

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_bits": self.n_bits, "mean": self.mean.tolist(), "thresholds": self.thresholds.tolist()}


def quantizer_from_state(state: dict[str, Any]) -> Int8Quantizer | BinaryQuantizer:
    """Rebuild a quantiser from ``state()`` (the binary projection is regenerated from the fixed seed)."""
    if state["kind"] == "sq8":
        return Int8Quantizer(np.asarray(state["lo"]), np.asarray(state["hi"]))
    mean = np.asarray(state["mean"], dtype=np.float32)
    return BinaryQuantizer(mean, BinaryQuantizer._projection(len(mean), int(state["n_bits"])), np.asarray(state["thresholds"]))


def fit_quantizer(kind: str, x: np.ndarray, n_bits: int | None = None) -> Int8Quantizer | BinaryQuantizer:
    """``"sq8"`` or ``"binary"`` fitted on ``x``."""
    if kind == "sq8":
        return Int8Quantizer.fit(x)
    if kind == "binary":
        return BinaryQuantizer.fit(x, n_bits)
    raise ValueError(f"unknown quantisation {kind!r}; choose one of {', '.join(KINDS)}")


class QuantizedSearchMixin:
    """What the quantised stores share: their options and what they report (mixed into a store class).

    Example:
        >>> class Store(QuantizedSearchMixin):
        ...     _dim = 128
        >>> store = Store(); store._set_quantize_options("binary", None, None)
        >>> store.code_bytes_per_vector(), store.n_candidates(10)
        (32, 1000)
    """

    _dim: int
    _quantize: str
    _n_bits: int | None
    _candidates: int | None

    def _set_quantize_options(self, quantize: str, n_bits: int | None, candidates: int | None) -> None:
        from oml_core.stores import StoreError

        if quantize not in KINDS:
            raise StoreError(f"unknown quantisation {quantize!r}; choose one of {', '.join(KINDS)}")
        for name, value in (("n_bits", n_bits), ("candidates", candidates)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise StoreError(f"{name} must be a positive integer, got {value!r}")
        if n_bits is not None and n_bits % 8:
            raise StoreError(f"n_bits must be a multiple of 8, got {n_bits}")
        self._quantize, self._n_bits, self._candidates = quantize, n_bits, candidates

    @property
    def quantize(self) -> str:
        return self._quantize

    @property
    def exact(self) -> bool:
        return False

    @property
    def expected_recall(self) -> float:
        """The recall@10 the store contract expects on clustered data."""
        return 0.9

    def code_bytes_per_vector(self) -> int:
        """Bytes of one vector's code in the search index."""
        return self._dim if self._quantize == "sq8" else (self._n_bits or default_n_bits(self._dim)) // 8

    def n_candidates(self, k: int) -> int:
        """Items re-scored per query: ``candidates``, else ``max(1000, 100 k)`` (binary) / ``max(100, 10 k)`` (sq8)."""
        default = max(1000, 100 * k) if self._quantize == "binary" else max(100, 10 * k)
        return max(k, self._candidates or default)


def hamming_distances(query_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(Q, N)`` numbers of differing bits between packed codes (uint8 rows of equal length)."""
    width = query_codes.shape[1]
    if width % 8 == 0:  # 64 bits at a time
        q = np.ascontiguousarray(query_codes).view(np.uint64)
        c = np.ascontiguousarray(codes).view(np.uint64)
    else:
        q, c = query_codes, codes
    out = np.zeros((len(q), len(c)), dtype=np.int32)
    for word in range(q.shape[1]):
        out += np.bitwise_count(q[:, word : word + 1] ^ c[None, :, word]).astype(np.int32)
    return out
