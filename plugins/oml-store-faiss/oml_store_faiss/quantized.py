"""``QuantizedFaissStore``: a FAISS store whose search index holds compact codes instead of float vectors.

``quantize="sq8"``: int8 scalar codes (``faiss.IndexScalarQuantizer``, 1/4 of float32); ``quantize="binary"``:
``n_bits`` sign bits per vector (``faiss.IndexBinaryFlat``, Hamming distance; 2 bits per dimension by default,
1/16 of float32). A search takes the ``candidates`` nearest items by code (default ``max(1000, 100 k)`` for binary,
``max(100, 10 k)`` for sq8) and re-scores them exactly from the float vectors, so the distances returned are exact.

The codes are derived from the stored float vectors: they are (re)built when the store is opened or after deletes,
not saved, and the quantiser is fitted on (a sample of) the stored vectors at that time. The choice of quantisation
is saved in the store's info, so reopening the folder without ``quantize=`` keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import faiss
import numpy as np
import torch
from torch import Tensor

from oml_core.quantization import BinaryQuantizer, Int8Quantizer, QuantizedSearchMixin, fit_quantizer
from oml_core.stores import StoreError, check_queries
from oml_store_faiss.store import FaissStore, FaissStoreConfig, _threads_for

__all__ = ["QuantizedFaissStore", "QuantizedFaissStoreConfig", "saved_quantization"]

INFO_KEY = "quantization"


@attrs.frozen(kw_only=True)
class QuantizedFaissStoreConfig(FaissStoreConfig):
    """The ``faiss`` store's options plus ``quantize`` (``sq8`` or ``binary``; ``none``: a plain store; default: as
    saved), ``n_bits`` (binary code length, default ``2 * dim``) and ``candidates`` (items re-scored per query)."""

    quantize: Literal["none", "sq8", "binary"] | None = None
    n_bits: int | None = None
    candidates: int | None = None


def saved_quantization(path: str | Path) -> dict[str, Any] | None:
    """The quantisation recorded in an existing store folder, or None."""
    pointer = Path(path).expanduser() / "CURRENT"
    if not pointer.is_file():
        return None
    settings = Path(path).expanduser() / pointer.read_text().strip() / "store.json"
    try:
        info = json.loads(settings.read_text(encoding="utf-8")).get("info", {})
    except (OSError, ValueError):
        return None  # FaissStore itself reports a damaged folder
    value = info.get(INFO_KEY)
    return dict(value) if isinstance(value, dict) else None


class QuantizedFaissStore(QuantizedSearchMixin, FaissStore):
    """A FaissStore searched through int8 or binary codes, with exact re-scoring of the candidates.

    Example:
        >>> with QuantizedFaissStore("gallery.faiss", quantize="binary", dim=128) as store:   # doctest: +SKIP
        ...     store.add(ids, vectors)
        ...     ids, distances = store.search(queries, k=10)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        quantize: str,
        n_bits: int | None = None,
        candidates: int | None = None,
        dim: int | None = None,
        metric: str | None = None,
        **params: Any,
    ) -> None:
        self._set_quantize_options(quantize, n_bits, candidates)
        if params.get("index") not in (None, "flat"):
            raise StoreError(f"quantize={quantize!r} replaces the index; do not also ask for index={params['index']!r}")
        saved = saved_quantization(path)
        if saved is not None and saved["kind"] != quantize:
            raise StoreError(f"FAISS store {str(path)!r} was made with quantize={saved['kind']!r}, not {quantize!r}")
        if n_bits is None:
            self._n_bits = (saved or {}).get("n_bits")
        self._quantizer: Int8Quantizer | BinaryQuantizer | None = None
        self._codes: Any = None  # the faiss code index over the rows of the stored vectors, None while stale
        super().__init__(path, dim=dim, metric=metric, **params)
        self._index = None  # a float index saved by a plain store is not needed: the codes replace it
        if saved is None:
            self.update_info({INFO_KEY: {"kind": quantize, "n_bits": self._n_bits}})
            self.save()

    def __repr__(self) -> str:
        return f"QuantizedFaissStore({str(self.path)!r}, quantize={self._quantize!r}, dim={self._dim}, count={len(self._ids)})"

    # -------------------------------------------------------------------------------------------- FaissStore hooks
    def _train_size(self) -> int:
        return 2**62  # the base class never builds its float index: the codes replace it

    def _build_index(self) -> None:
        self._index, self._index_stale = None, False
        self._codes = None  # rebuilt from the vectors at the next search

    def _encode_for_index(self, x: np.ndarray) -> np.ndarray:
        assert self._quantizer is not None
        if self._quantize == "binary":
            return self._quantizer.encode(x)
        return x

    def _rebuild_codes(self) -> None:
        vectors = self._for_index(self._vectors)
        if self._quantize == "binary":
            self._quantizer = fit_quantizer("binary", vectors, self._n_bits)
            index: Any = faiss.IndexBinaryFlat(self._quantizer.n_bits)  # type: ignore[union-attr]
            codes = self._quantizer.encode(vectors)
            index.add(codes)
        else:
            self._quantizer = Int8Quantizer.fit(vectors)
            index = faiss.IndexScalarQuantizer(self._dim, faiss.ScalarQuantizer.QT_8bit, self._faiss_metric())
            sample = vectors if len(vectors) <= 100_000 else vectors[:: max(1, len(vectors) // 100_000)]
            index.train(sample)
            with _threads_for(len(vectors) * self._dim * 4):
                index.add(vectors)
        self._codes = index

    # -------------------------------------------------------------------------------------------- protocol
    def add(
        self,
        ids: Sequence[int] | Tensor | np.ndarray,
        embeddings: Tensor | np.ndarray,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Add a batch (all or nothing); its codes join the index at once (rows are appended in order)."""
        before = len(self._ids)
        super().add(ids, embeddings, metadata)
        if self._codes is not None and len(self._ids) > before:
            new = self._for_index(self._vectors[before:])
            self._codes.add(self._encode_for_index(new))

    def delete(self, ids: Sequence[int] | Tensor | np.ndarray) -> int:
        removed = super().delete(ids)
        if removed:
            self._codes = None  # rows moved: rebuild the codes at the next search
        return removed

    def search(self, queries: Tensor | np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest items: candidates by code, re-scored exactly; filtered searches are exact."""
        self._check_open()
        n = len(self._ids)
        if filter or n == 0:
            return super().search(queries, k, filter)
        q = check_queries(queries, self._dim, k, self._metric)
        if len(q) == 0:
            return torch.full((0, k), -1, dtype=torch.int64), torch.full((0, k), float("inf"))
        if self._codes is None:
            self._rebuild_codes()
        candidates = min(n, self.n_candidates(k))
        with _threads_for(len(q) * n * self.code_bytes_per_vector()):
            _, rows = self._codes.search(self._encode_for_index(self._for_index(q)), candidates)
        labels = np.where(rows >= 0, self._ids[np.clip(rows, 0, n - 1)], -1)
        return self._rescore(q, labels, k)


def create_faiss_store(**fields: Any) -> FaissStore:
    """The ``faiss`` store's factory: a QuantizedFaissStore when ``quantize`` is asked for or saved in the folder."""
    path = fields.pop("path")
    quantize = fields.pop("quantize", None)
    n_bits, candidates = fields.pop("n_bits", None), fields.pop("candidates", None)
    if quantize is None:
        saved = saved_quantization(path)
        quantize = saved["kind"] if saved else "none"
    if quantize == "none":
        if n_bits is not None or candidates is not None:
            raise StoreError("n_bits and candidates apply to quantised stores only (quantize=sq8 or binary)")
        return FaissStore(path, **fields)
    return QuantizedFaissStore(path, quantize=quantize, n_bits=n_bits, candidates=candidates, **fields)
