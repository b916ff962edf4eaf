"""The search service behind the HTTP app: a model, a store, a decision threshold and the dataset root.

Concurrency: searches share a read lock, writes (add, delete) take the write lock one at a time, so a write is
never interleaved with another write or with a search, and nothing is lost or stored twice. A FAISS store is
saved after every write (its changes otherwise live in memory until it is closed).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from oml_core.errors import OMLError
from oml_core.fingerprint import ModelFingerprint
from oml_serve.limits import Limits

#: where a store records the model that filled it (as oml index does)
MODEL_INFO_KEY = "model"
_MAX_ID = 2**63 - 1


class ServiceError(OMLError):
    """A request the service refuses; ``status`` is the HTTP status to answer with (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds new readers back (writes are not starved)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def content_id(data: bytes) -> int:
    """The default id of an uploaded image: 63 bits of its SHA-256, so the same image uploaded twice is one item."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") & _MAX_ID


@attrs.define
class Timing:
    embed_s: float = 0.0
    search_s: float = 0.0


class SearchService:
    """Embeds images with a run's model and searches / edits an embedding store.

    Example:
        >>> service = SearchService(store, extractor, transform, threshold=0.8, dataset_root="data/")  # doctest: +SKIP
        >>> service.search_vectors(torch.randn(1, store.dim), k=3)                                      # doctest: +SKIP
    """

    def __init__(
        self,
        store: Any,
        extractor: torch.nn.Module,
        transform: Any,
        *,
        threshold: float | None,
        dataset_root: str | Path | None,
        upload_dir: str | Path | None = None,
        fingerprint: ModelFingerprint | None = None,
        model_record: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
        device: str = "cpu",
    ) -> None:
        self.store = store
        self.extractor = extractor.to(device).eval()
        self.transform = transform
        self.threshold = threshold
        self.dataset_root = Path(dataset_root).resolve() if dataset_root is not None else None
        self.upload_dir = Path(upload_dir).resolve() if upload_dir is not None else None
        self.fingerprint = fingerprint
        self.model_record = dict(model_record) if model_record is not None else None
        self.limits = limits or Limits()
        self.device = torch.device(device)
        self.lock = ReadWriteLock()
        self._check_model()

    # -------------------------------------------------------------------------------------------- set-up
    def _check_model(self) -> None:
        dim = int(getattr(self.extractor, "feat_dim", 0) or 0)
        if dim and dim != self.store.dim:
            raise OMLError(
                f"the run's model makes {dim}-d embeddings, but the store holds {self.store.dim}-d ones: it was filled "
                "by another model. Serve it with that model's run, or index into a new store."
            )
        recorded = dict(getattr(self.store, "info", {}) or {}).get(MODEL_INFO_KEY)
        if isinstance(recorded, Mapping) and "fingerprint" in recorded and self.fingerprint is not None:
            # the same identity check as oml index / oml search (oml_core.fingerprint)
            stored = ModelFingerprint.from_dict(recorded["fingerprint"])
            stored.check_same(self.fingerprint, store=str(getattr(self.store, "url", "the store")), given="the run being served")

    def _record_model(self) -> None:
        update = getattr(self.store, "update_info", None)
        info = dict(getattr(self.store, "info", {}) or {})
        if callable(update) and self.model_record is not None and MODEL_INFO_KEY not in info:
            update({MODEL_INFO_KEY: self.model_record})

    @property
    def dim(self) -> int:
        return int(self.store.dim)

    def count(self) -> int:
        with self.lock.read():
            return int(self.store.count())

    # -------------------------------------------------------------------------------------------- images
    def decode_image(self, data: bytes, name: str) -> Any:
        """An RGB PIL image, or a ServiceError (size, pixels, not an image) naming the upload."""
        from PIL import Image, UnidentifiedImageError

        from oml_core.data import read_image

        if not data:
            raise ServiceError(f"the upload {name!r} is empty")
        if len(data) > self.limits.max_upload_bytes:
            raise ServiceError(f"the upload {name!r} has {len(data)} bytes; the limit is {self.limits.max_upload_bytes}", 413)
        try:
            with Image.open(io.BytesIO(data)) as probe:  # reads the header only: the size is known before decoding
                width, height = probe.size
        except (UnidentifiedImageError, OSError, ValueError):
            raise ServiceError(f"the upload {name!r} is not an image that can be read (corrupt or not an image file)") from None
        except Image.DecompressionBombError:
            raise ServiceError(f"the upload {name!r} has too many pixels", 413) from None
        if width * height > self.limits.max_pixels:
            raise ServiceError(
                f"the upload {name!r} is {width}x{height} = {width * height} pixels; the limit is {self.limits.max_pixels}", 413
            )
        try:
            return read_image(data, name=name)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the upload's fault, answered with 400
            raise ServiceError(f"the upload {name!r} could not be decoded: {exc}") from None

    def embed_images(self, images: Sequence[Any]) -> torch.Tensor:
        batch = torch.stack([self.transform(image) for image in images]).to(self.device)
        with torch.inference_mode():
            return self.extractor(batch).float().cpu()

    def check_vectors(self, vectors: Any) -> torch.Tensor:
        try:
            x = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        except (TypeError, ValueError):
            raise ServiceError(f"'vector' must be a list of {self.dim} numbers (or a list of such lists)") from None
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            got = x.shape[-1] if x.ndim >= 1 else 0
            raise ServiceError(f"vectors must have {self.dim} numbers (the store's dimension), got {got}")
        if not bool(torch.isfinite(x).all()):
            raise ServiceError("vectors must hold finite numbers (no NaN or infinity)")
        return x

    # -------------------------------------------------------------------------------------------- search
    def search(self, vectors: torch.Tensor, k: int, timing: Timing | None = None) -> list[list[dict[str, Any]]]:
        """Top-``k`` of each vector: ``[{"id", "distance", "same", "metadata"}, ...]`` nearest first."""
        if not 1 <= k <= self.limits.max_k:
            raise ServiceError(f"k must be between 1 and {self.limits.max_k}, got {k}")
        started = time.perf_counter()
        with self.lock.read():
            ids, distances = self.store.search(vectors, k)
            found = sorted({int(i) for i in ids.flatten().tolist() if i >= 0})
            metadata = dict(zip(found, self.store.get(found)[1])) if found else {}
        if timing is not None:
            timing.search_s += time.perf_counter() - started
        results = []
        for row_ids, row_d in zip(ids.tolist(), distances.tolist()):
            row = []
            for i, d in zip(row_ids, row_d):
                if i < 0:
                    continue
                d = 0.0 if d == 0 else float(d)  # never -0.0
                same = None if self.threshold is None else bool(d < self.threshold)
                row.append({"id": int(i), "distance": d, "same": same, "metadata": metadata[int(i)]})
            results.append(row)
        return results

    # -------------------------------------------------------------------------------------------- writes
    def add(self, ids: Sequence[int], vectors: torch.Tensor, metadata: Sequence[Mapping[str, Any]]) -> None:
        from oml_core.stores import StoreError

        with self.lock.write():
            present = self._present(ids)
            if present:
                raise ServiceError(f"ids already stored: {present[:10]}; delete them first to replace them", 409)
            try:
                self.store.add(list(ids), vectors, metadata=list(metadata))
            except StoreError as exc:
                raise ServiceError(str(exc)) from None
            self._record_model()
            self._persist()

    def delete(self, item_id: int) -> None:
        with self.lock.write():
            if self.store.delete([item_id]) == 0:
                raise ServiceError(f"no item with id {item_id} in the store", 404)
            self._persist()

    def get(self, item_id: int) -> dict[str, Any]:
        from oml_core.stores import StoreError

        with self.lock.read():
            try:
                return self.store.get([item_id])[1][0]
            except StoreError:
                raise ServiceError(f"no item with id {item_id} in the store", 404) from None

    def _present(self, ids: Sequence[int]) -> list[int]:
        contains = getattr(self.store, "contains", None)
        if callable(contains):
            mask = np.asarray(contains(list(ids)))
            return [int(i) for i, m in zip(ids, mask.tolist()) if m]
        return []

    def _persist(self) -> None:
        save = getattr(self.store, "save", None)
        if callable(save):
            save()

    def save_upload(self, item_id: int, data: bytes, suffix: str) -> str | None:
        """Keep an uploaded image under the upload folder (inside the dataset root, so it gets a thumbnail)."""
        if self.upload_dir is None:
            return None
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        path = self.upload_dir / f"{item_id}{suffix}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return str(path)

    # -------------------------------------------------------------------------------------------- thumbnails
    def image_file(self, item_id: int) -> Path:
        """The image file of a stored item, only if it lies inside the dataset root."""
        metadata = self.get(item_id)
        path = metadata.get("path")
        if not path or self.dataset_root is None:
            raise ServiceError(f"item {item_id} has no image to show", 404)
        file = Path(str(path))
        file = (file if file.is_absolute() else self.dataset_root / file).resolve()
        if not file.is_relative_to(self.dataset_root):
            raise ServiceError(f"the image of item {item_id} is outside the dataset root; it is not served", 403)
        if not file.is_file():
            raise ServiceError(f"the image of item {item_id} is missing", 404)
        return file
