"""Opening embedding stores by URL, the optional capabilities a store may have, and the checks and distance
helpers that every store shares.

A store is a plugin component (kind ``stores``) that satisfies ``oml_core.protocols.EmbeddingStore``. The core
keeps no table of URL schemes: a store's config class declares the URLs its store opens (``StoreLocator``), and
``open_store`` asks every registered store. With the project's plugins installed:

=============================================  ===========  ===================
URL                                            store        distribution
=============================================  ===========  ===================
``sqlite:///gallery.db``, ``gallery.db``       ``sql``      ``oml-store-sql``
``postgresql://user@host/db``                  ``sql``      ``oml-store-sql``
``faiss:///path/to/dir``, an existing folder   ``faiss``    ``oml-store-faiss``
=============================================  ===========  ===================

A third-party store opens its own URLs the same way: its config class has ``url_schemes`` and a ``locate(url)``
classmethod (see ``StoreLocator``), and ``open_store(host, "mystore://...")`` / ``oml index --store mystore://...``
find it.

Distances follow one convention whatever the backend, so that results from any store can be compared:
``euclidean`` is the L2 distance (not squared), ``cosine`` is ``1 - cos``, ``dot`` is ``-<q, x>``; smaller is
nearer in all three. Searches return ``-1`` ids and ``inf`` distances where fewer than ``k`` items match.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.host import Host
    from oml_core.protocols import EmbeddingStore

__all__ = [
    "METRICS",
    "Metric",
    "StoreError",
    "StoreLocator",
    "TopK",
    "check_add_batch",
    "check_ids",
    "check_queries",
    "existing_ids",
    "metadata_matches",
    "open_store",
    "pairwise_distances",
    "resolve_store_url",
]

Metric = Literal["euclidean", "cosine", "dot"]
METRICS: tuple[str, ...] = ("euclidean", "cosine", "dot")

_MAX_ID = 2**63 - 1


class StoreError(OMLError):
    """A store was misused or holds something unexpected (wrong dimension, duplicate id, NaN vector, ...)."""


# ----------------------------------------------------------------------------------------------- opening
@runtime_checkable
class StoreLocator(Protocol):
    """What a store's **config class** declares so that ``open_store`` can open it by URL.

    ``url_schemes`` are the schemes it opens (shown in errors and ``oml plugins``). ``locate(url)`` returns the
    config fields that name the location of ``url`` (e.g. ``{"url": "sqlite:///a.db"}`` or ``{"path": "/dir"}``)
    when this store opens it, else ``None``; it is asked for URLs with a scheme and for plain paths alike, so a
    store may claim plain paths too (``gallery.db``, an existing folder). It may raise ``StoreError`` for a URL of
    its scheme that is malformed. Besides the location, the config has ``dim``, ``metric`` and ``create`` fields
    (``create=False``: a store that does not exist is an error, and nothing is created).

    Example:
        >>> @attrs.frozen(kw_only=True)   # doctest: +SKIP
        ... class MemoryStoreConfig:
        ...     url_schemes: ClassVar[tuple[str, ...]] = ("memory",)
        ...     name: str
        ...     dim: int | None = None
        ...     metric: str | None = None
        ...     create: bool = True
        ...
        ...     @classmethod
        ...     def locate(cls, url: str) -> dict[str, Any] | None:
        ...         return {"name": url.removeprefix("memory://")} if url.startswith("memory://") else None
    """

    url_schemes: ClassVar[tuple[str, ...]]

    @classmethod
    def locate(cls, url: str) -> dict[str, Any] | None: ...


def _locators(host: Host) -> list[tuple[str, Any]]:
    """``(store name, config class)`` of every registered store whose config class is a ``StoreLocator``."""
    return [(spec.name, spec.config) for spec in host.registries.stores.specs() if isinstance(spec.config, StoreLocator)]


def resolve_store_url(host: Host, url: str | Path) -> tuple[str, dict[str, Any]]:
    """Return ``(store name, config fields naming the location)`` for ``url``: the registered store whose config
    declares that it opens it (``StoreLocator``).

    Example:
        >>> resolve_store_url(host, "gallery.db")   # doctest: +SKIP
        ('sql', {'url': 'sqlite:///gallery.db'})
    """
    text = str(url)
    claims = [(name, fields) for name, config in _locators(host) if (fields := config.locate(text)) is not None]
    if len(claims) == 1:
        return claims[0][0], dict(claims[0][1])
    if len(claims) > 1:
        names = ", ".join(repr(name) for name, _ in claims)
        raise StoreError(f"store URL {text!r} is claimed by several stores ({names}); write the URL with its scheme")
    scheme = text.split("://", 1)[0] if "://" in text else None
    what = f"no installed store opens URLs of the scheme {scheme!r}" if scheme else f"cannot tell which store {text!r} is"
    raise StoreError(f"{what}. {_schemes_text(host)}")


def _schemes_text(host: Host) -> str:
    from oml_core.catalog import KNOWN_STORE_URLS

    installed = [f"{', '.join(s + '://' for s in config.url_schemes)} ({name!r})" for name, config in _locators(host)]
    text = "Installed stores open: " + ("; ".join(installed) if installed else "nothing (no store plugin is installed)") + "."
    names = {name for name, _ in _locators(host)}
    hints = []
    for store, (forms, dist) in KNOWN_STORE_URLS.items():
        if store not in names:
            broken = host.registries.broken_distribution(dist)
            fix = f"{dist} is installed but failed to load: {broken.cause!r}" if broken else f"pip install {dist}"
            hints.append(f"{forms} -> {fix}")
    if hints:
        text += " Other stores: " + "; ".join(hints) + "."
    return text


def open_store(
    host: Host,
    url: str | Path,
    *,
    dim: int | None = None,
    metric: str | None = None,
    create: bool = True,
    **options: Any,
) -> EmbeddingStore:
    """Open (or create) the store at ``url`` with the store plugin that opens it.

    ``dim`` and ``metric`` are needed to create a store; an existing one remembers them (passing different values
    is an error). ``create=False`` opens an existing store only: a missing one is an error and nothing is created
    (``oml search``). ``options`` are further fields of the store's config (e.g. ``index="hnsw"`` for FAISS,
    ``table="gallery"`` for SQL).

    Example:
        >>> from oml_core import Host
        >>> with open_store(Host(), "sqlite:///gallery.db", dim=384, metric="cosine") as store:  # doctest: +SKIP
        ...     store.add([1, 2], torch.randn(2, 384), metadata=[{"path": "a.jpg"}, {"path": "b.jpg"}])
        ...     ids, distances = store.search(torch.randn(3, 384), k=5)
    """
    if metric is not None and metric not in METRICS:
        raise StoreError(f"unknown metric {metric!r} for store {str(url)!r}; choose one of {', '.join(METRICS)}")
    name, location = resolve_store_url(host, url)
    config = {**location, "dim": dim, "metric": metric, "create": create, **options}
    store: EmbeddingStore = host.registries.stores.create(name, config)
    return store


# ----------------------------------------------------------------------------------------------- validation
def check_ids(ids: Sequence[int] | Tensor | np.ndarray, *, what: str = "ids") -> np.ndarray:
    """Return ``ids`` as a 1-d int64 numpy array, or raise a StoreError saying what is wrong with them.

    Ids are non-negative int64 (``-1`` marks padding in search results).

    Example:
        >>> check_ids([3, 1]).tolist()
        [3, 1]
    """
    if isinstance(ids, Tensor):
        ids = ids.detach().cpu().numpy()
    array = np.asarray(ids)
    if array.ndim != 1:
        raise StoreError(f"{what} must be a 1-d sequence of integers, got shape {tuple(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if array.dtype == object or not np.all(np.isfinite(array.astype(np.float64))) or np.any(array != np.round(array)):
            raise StoreError(f"{what} must be integers, got dtype {array.dtype} (first values: {array[:3].tolist()})")
    if array.size and (np.any(array < 0) or np.any(array > _MAX_ID)):
        bad = array[(array < 0) | (array > _MAX_ID)][:5].tolist()
        raise StoreError(f"{what} must be non-negative int64 values (-1 marks padding in results), got {bad}")
    return array.astype(np.int64, copy=False)


def _as_float32_matrix(x: Tensor | np.ndarray | Sequence[Sequence[float]], dim: int, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(x, dtype=np.float32)
    if array.ndim == 1 and array.size == dim:
        array = array[None, :]
    if array.ndim != 2:
        raise StoreError(f"{what} must be a 2-d (N, {dim}) array, got shape {tuple(array.shape)}")
    if array.shape[1] != dim:
        raise StoreError(f"{what} have dimension {array.shape[1]}, but this store holds {dim}-d embeddings")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)[:5].tolist()
        raise StoreError(f"{what} contain NaN or infinite values in rows {rows}; a store only holds finite vectors")
    return np.ascontiguousarray(array)


def check_queries(queries: Tensor | np.ndarray, dim: int, k: int, metric: str | None = None) -> np.ndarray:
    """Validate a search: ``queries`` (Q, dim) finite (and not all-zero for ``cosine``), ``k`` a positive int;
    returns float32 (Q, dim)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise StoreError(f"k must be a positive integer, got {k!r}")
    q = _as_float32_matrix(queries, dim, "queries")
    if metric == "cosine":
        _reject_zero_vectors(q, None)
    return q


def _reject_zero_vectors(x: np.ndarray, ids: np.ndarray | None) -> None:
    zero = ~np.any(x != 0, axis=1)
    if zero.any():
        where = f"ids {ids[zero][:5].tolist()}" if ids is not None else f"query rows {np.flatnonzero(zero)[:5].tolist()}"
        raise StoreError(f"all-zero vectors ({where}) have no direction, so a cosine store can neither hold nor search them")


def check_add_batch(
    ids: Sequence[int] | Tensor | np.ndarray,
    embeddings: Tensor | np.ndarray,
    metadata: Sequence[Mapping[str, Any] | None] | None,
    dim: int,
    metric: str | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Validate one ``add`` batch; returns ``(ids int64 (N,), embeddings float32 (N, dim), metadata dicts)``.

    Raises a StoreError naming the offending ids / rows: repeated ids in the batch, wrong dimension, NaN or
    infinite values, all-zero vectors in a ``cosine`` store, a metadata list of another length, metadata that is
    not a JSON object.

    Example:
        >>> ids, x, meta = check_add_batch([1, 2], torch.zeros(2, 4), None, dim=4)
        >>> x.dtype, meta
        (dtype('float32'), [{}, {}])
    """
    id_array = check_ids(ids)
    x = _as_float32_matrix(embeddings, dim, "embeddings")
    if len(x) != len(id_array):
        raise StoreError(f"got {len(id_array)} ids but {len(x)} embeddings; pass one id per embedding")
    unique, counts = np.unique(id_array, return_counts=True)
    if len(unique) != len(id_array):
        raise StoreError(f"duplicate ids within one batch: {unique[counts > 1][:10].tolist()}")
    if metric == "cosine":
        _reject_zero_vectors(x, id_array)
    if metadata is None:
        meta: list[dict[str, Any]] = [{} for _ in range(len(id_array))]
    else:
        given = list(metadata)
        if len(given) != len(id_array):
            raise StoreError(f"got {len(id_array)} ids but {len(given)} metadata entries; pass one dict (or None) per id")
        meta = [_check_metadata(m, int(i)) for m, i in zip(given, id_array)]
    return id_array, x, meta


def _check_metadata(value: Mapping[str, Any] | None, item_id: int) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StoreError(f"metadata of id {item_id} must be a dict (a JSON object), got {type(value).__name__}")
    try:
        # allow_nan=False: NaN is not JSON and PostgreSQL's jsonb rejects it; say so here, naming the id
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"metadata of id {item_id} is not JSON-serialisable: {exc}") from None
    return dict(value)


def metadata_json(value: Mapping[str, Any]) -> str:
    """The JSON text a store writes for one item's metadata (stable key order, unicode kept)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)


def check_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate a search filter: a mapping of metadata key -> scalar value (all must be equal)."""
    if filter is None:
        return {}
    if not isinstance(filter, Mapping):
        raise StoreError(f"filter must be a dict of metadata key -> value, got {type(filter).__name__}")
    for key, value in filter.items():
        if not isinstance(key, str):
            raise StoreError(f"filter keys must be strings, got {key!r}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise StoreError(f"filter value of {key!r} must be a string, number, bool or None, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise StoreError(f"filter value of {key!r} must be finite, got {value!r}")
    return dict(filter)


def metadata_matches(metadata: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """True if ``metadata[key] == value`` for every item of ``filter`` (a missing key never matches).

    Example:
        >>> metadata_matches({"split": "gallery", "label": 3}, {"split": "gallery"})
        True
    """
    missing = object()
    for key, value in filter.items():
        got = metadata.get(key, missing)
        if got is missing or isinstance(got, bool) != isinstance(value, bool) or got != value:
            return False
    return True


# ----------------------------------------------------------------------------------------------- search helpers
def pairwise_distances(queries: Tensor, vectors: Tensor, metric: str) -> Tensor:
    """Distances ``(Q, N)`` under the stores' convention: L2, ``1 - cos`` or ``-dot`` (smaller is nearer).

    Example:
        >>> pairwise_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), "euclidean")
        tensor([[5.]])
    """
    from oml_core.distances import normalise, pairwise_dist

    if metric == "euclidean":
        return pairwise_dist(queries, vectors).clamp_min_(0.0)
    if metric == "cosine":
        return 1.0 - normalise(queries) @ normalise(vectors).T
    if metric == "dot":
        return -(queries @ vectors.T)
    raise StoreError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


class TopK:
    """Keeps the ``k`` nearest items per query while chunks of the gallery stream past (exact search without
    holding the gallery in memory).

    Example:
        >>> topk = TopK(n_queries=1, k=2)
        >>> topk.push(torch.tensor([[3.0, 1.0]]), torch.tensor([10, 11]))
        >>> topk.push(torch.tensor([[2.0]]), torch.tensor([12]))
        >>> topk.result()
        (tensor([[11, 12]]), tensor([[1., 2.]]))
    """

    def __init__(self, n_queries: int, k: int) -> None:
        self.k = k
        self.distances = torch.full((n_queries, k), math.inf, dtype=torch.float32)
        self.ids = torch.full((n_queries, k), -1, dtype=torch.int64)

    def push(self, distances: Tensor, ids: Tensor) -> None:
        """Merge ``distances`` (Q, n) of the items ``ids`` (n,) into the running top-k."""
        if distances.shape[1] == 0:
            return
        kk = min(self.k, distances.shape[1])
        d, j = torch.topk(distances, kk, dim=1, largest=False, sorted=False)
        all_d = torch.cat([self.distances, d.to(torch.float32)], dim=1)
        all_i = torch.cat([self.ids, ids.to(torch.int64)[j]], dim=1)
        best_d, best_j = torch.topk(all_d, self.k, dim=1, largest=False, sorted=True)
        self.distances, self.ids = best_d, torch.gather(all_i, 1, best_j)

    def result(self) -> tuple[Tensor, Tensor]:
        """``(ids (Q, k) int64, distances (Q, k) float32)``, nearest first, ``-1`` / ``inf`` where none."""
        ids = self.ids.clone()
        ids[torch.isinf(self.distances)] = -1
        return ids, self.distances.clone()


def existing_ids(store: EmbeddingStore, ids: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` the store already holds (used to resume an interrupted ``oml index``).

    Uses the store's ``contains(ids)`` when it has that capability (``protocols.StoreWithContains``; both OML
    stores do), else probes with ``get``.

    Example:
        >>> existing_ids(store, [1, 2, 3])  # doctest: +SKIP
        array([ True, False,  True])
    """
    from oml_core.protocols import StoreWithContains

    id_array = check_ids(ids)
    if isinstance(store, StoreWithContains):
        return np.asarray(store.contains(id_array), dtype=bool)
    mask = np.zeros(len(id_array), dtype=bool)
    for row, item_id in enumerate(id_array.tolist()):
        try:
            store.get([item_id])
        except OMLError:
            continue
        mask[row] = True
    return mask


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str, what: str) -> str:
    """Table and index names cannot be bound as SQL parameters, so they are restricted to plain identifiers."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise StoreError(f"{what} must be a plain identifier (letters, digits, underscore; at most 63 characters), got {name!r}")
    return name
