"""The contracts between OML's core and its plugins, readable top to bottom.

A component is any small class that satisfies one of these protocols; nothing here has to be inherited.
Plugins register components (with an attrs config next to each) through the ``oml_register_*`` hooks, and
``oml_core.testing`` checks that a registered component really satisfies its protocol.

Shapes: ``B`` is a batch, ``D`` an embedding dimension, ``Q``/``G`` numbers of queries and gallery items.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover - only for type checkers
    from matplotlib.figure import Figure

__all__ = [
    "Extractor",
    "PairwiseModel",
    "Criterion",
    "Triplets",
    "Pairs",
    "TripletMiner",
    "PairMiner",
    "BatchSampler",
    "BatchSamplerFactory",
    "Postprocessor",
    "EmbeddingStore",
    "StoreWithInfo",
    "StoreWithSave",
    "StoreWithContains",
    "StoreWithIds",
    "StoreWithShards",
    "Logger",
    "LoggerWithOutcome",
]


# ---------------------------------------------------------------------------------------------- models
@runtime_checkable
class Extractor(Protocol):
    """An ``nn.Module`` that maps a batch of images ``(B, C, H, W)`` to embeddings ``(B, feat_dim)``."""

    @property
    def feat_dim(self) -> int:
        """Size ``D`` of the embeddings this extractor returns."""
        ...

    def __call__(self, images: Tensor) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...


@runtime_checkable
class PairwiseModel(Protocol):
    """Scores pairs of inputs: a higher score means "more different" (it re-estimates a distance).

    ``forward(x1, x2)`` returns raw scores ``(B,)`` for training (e.g. logits for BCEWithLogitsLoss);
    ``predict(x1, x2)`` returns the scores used at inference (may apply test-time augmentation).
    """

    def __call__(self, x1: Tensor, x2: Tensor) -> Tensor: ...

    def predict(self, x1: Tensor, x2: Tensor) -> Tensor: ...


# ---------------------------------------------------------------------------------------------- training
@runtime_checkable
class Criterion(Protocol):
    """A loss over a batch of embeddings and their labels: ``criterion(embeddings (B, D), labels (B,)) -> scalar``.

    A criterion may expose ``last_logs: dict[str, float]`` (e.g. positive/negative distances and the fraction of
    active triplets) that the engine logs after each step; read it with ``getattr(criterion, "last_logs", {})``.
    """

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor: ...


def _as_long_tensor(values: Any) -> Tensor:
    return torch.as_tensor(values, dtype=torch.long)


@attrs.frozen
class Triplets:
    """Indices into a batch: ``anchors[i]``, ``positives[i]`` (same label), ``negatives[i]`` (other label).

    Unpacks like OML's tuples: ``anchors, positives, negatives = miner.sample(features, labels)``.
    """

    anchors: Tensor = attrs.field(converter=_as_long_tensor)
    positives: Tensor = attrs.field(converter=_as_long_tensor)
    negatives: Tensor = attrs.field(converter=_as_long_tensor)

    def __attrs_post_init__(self) -> None:
        if not (len(self.anchors) == len(self.positives) == len(self.negatives)):
            raise ValueError(
                f"Triplets need equally long index tensors, got {len(self.anchors)} anchors, "
                f"{len(self.positives)} positives and {len(self.negatives)} negatives"
            )

    def __len__(self) -> int:
        return len(self.anchors)

    def __iter__(self) -> Iterator[Tensor]:
        return iter((self.anchors, self.positives, self.negatives))


@attrs.frozen
class Pairs:
    """Indices into a batch: pairs ``(ids1[i], ids2[i])`` and whether each pair is negative (labels differ).

    Unpacks like OML's tuples: ``ids1, ids2, is_negative = miner.sample(features, labels)``.
    """

    ids1: Tensor = attrs.field(converter=_as_long_tensor)
    ids2: Tensor = attrs.field(converter=_as_long_tensor)
    is_negative: Tensor = attrs.field(converter=lambda v: torch.as_tensor(v, dtype=torch.bool))

    def __attrs_post_init__(self) -> None:
        if not (len(self.ids1) == len(self.ids2) == len(self.is_negative)):
            raise ValueError("Pairs need equally long ids1, ids2 and is_negative")

    def __len__(self) -> int:
        return len(self.ids1)

    def __iter__(self) -> Iterator[Tensor]:
        return iter((self.ids1, self.ids2, self.is_negative))


@runtime_checkable
class TripletMiner(Protocol):
    """Chooses triplets within a batch: ``sample(features (B, D), labels (B,)) -> Triplets``."""

    def sample(self, features: Tensor, labels: Tensor) -> Triplets: ...


@runtime_checkable
class PairMiner(Protocol):
    """Chooses pairs within a batch: ``sample(features (B, D), labels (B,)) -> Pairs``."""

    def sample(self, features: Tensor, labels: Tensor) -> Pairs: ...


@runtime_checkable
class BatchSampler(Protocol):
    """Yields lists of dataset indices, one list per batch (pass it as ``DataLoader(batch_sampler=...)``).

    ``len()`` is the exact number of batches of one epoch on this rank; ``set_epoch(epoch)`` reseeds it so that
    every epoch (and every resumed run) draws the same batches as an uninterrupted one.
    """

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class BatchSamplerFactory(Protocol):
    """What the ``samplers`` registry holds: builds a BatchSampler once the dataset's labels are known.

    Called with the component's config fields plus ``labels`` and, where the sampler uses them, ``label2category``,
    ``seed``, ``rank`` and ``world_size`` (for torch.distributed).
    """

    def __call__(self, labels: Sequence[int], **runtime: Any) -> BatchSampler: ...


# ---------------------------------------------------------------------------------------------- retrieval
@runtime_checkable
class Postprocessor(Protocol):
    """Re-ranks retrieval results: ``process(results, dataset) -> RetrievalResults``.

    ``results`` is an ``oml_core.retrieval.RetrievalResults``; ``dataset`` (optional) gives access to the items
    (images, or precomputed ``embeddings`` in ``extra_data``) that some postprocessors need.
    """

    def process(self, results: Any, dataset: Any = None) -> Any: ...


@runtime_checkable
class EmbeddingStore(Protocol):
    """Persistent nearest-neighbour search over stored embeddings, keyed by non-negative int64 ids.

    Distances follow one convention in every store: ``euclidean`` is L2 (not squared), ``cosine`` is ``1 - cos``,
    ``dot`` is ``-<q, x>``; smaller is nearer. Misuse (an id already stored, a wrong dimension, NaN values) raises
    ``oml_core.stores.StoreError`` and leaves the store unchanged. A store may declare ``exact = False`` and the
    ``expected_recall`` (recall@10) it reaches; ``oml_core.testing.contracts.stores`` checks both. Open one by URL
    with ``oml_core.stores.open_store`` (``gallery.db``, ``postgresql://...``, ``faiss:///dir``).

    Example:
        >>> from oml_core.stores import open_store
        >>> with open_store(host, "sqlite:///gallery.db", dim=384) as store:   # doctest: +SKIP
        ...     store.add([1, 2], embeddings, metadata=[{"path": "a.jpg"}, {"path": "b.jpg"}])
        ...     ids, distances = store.search(queries, k=5)
    """

    @property
    def dim(self) -> int: ...

    @property
    def metric(self) -> str:
        """``"euclidean"``, ``"cosine"`` or ``"dot"``."""
        ...

    def add(
        self, ids: Sequence[int] | Tensor, embeddings: Tensor, metadata: Sequence[Mapping[str, Any] | None] | None = None
    ) -> None:
        """Store one batch, all of it or (on any error) none of it; metadata are JSON objects, one per id."""
        ...

    def search(self, queries: Tensor, k: int, filter: Mapping[str, Any] | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(ids (Q, k) int64, distances (Q, k) float32)``, nearest first; ``-1`` ids with ``inf``
        distances pad queries with fewer than ``k`` results. ``filter``: only items whose metadata hold all of
        these ``key: value`` pairs."""
        ...

    def get(self, ids: Sequence[int] | Tensor) -> tuple[Tensor, list[dict[str, Any]]]:
        """The stored embeddings ``(N, dim)`` and metadata of ``ids``, in that order; unknown ids are an error."""
        ...

    def delete(self, ids: Sequence[int] | Tensor) -> int:
        """Remove ``ids``; returns how many of them were stored."""
        ...

    def count(self) -> int: ...

    def close(self) -> None:
        """Persist what is pending and release the store; using it afterwards is an error."""
        ...

    def __enter__(self) -> EmbeddingStore: ...

    def __exit__(self, *exc_info: object) -> None: ...


# Optional capabilities of a store: ``isinstance(store, StoreWithInfo)`` tells whether a store has one.
@runtime_checkable
class StoreWithInfo(Protocol):
    """A store that keeps free-form facts with its items (``oml index`` records the model identity there).

    Example:
        >>> if isinstance(store, StoreWithInfo):   # doctest: +SKIP
        ...     store.update_info({"model": {...}})
    """

    @property
    def info(self) -> dict[str, Any]: ...

    def update_info(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` (JSON-serialisable) into ``info``."""
        ...


@runtime_checkable
class StoreWithSave(Protocol):
    """A store whose changes stay in memory until ``save()`` (FAISS); ``oml index`` saves it every N images."""

    def save(self) -> None: ...


@runtime_checkable
class StoreWithContains(Protocol):
    """A store that answers ``contains(ids)`` (a boolean mask) without fetching the vectors."""

    def contains(self, ids: Any) -> Any:  # noqa: ANN401 - ids as a sequence, tensor or numpy array; a bool mask back
        ...


@runtime_checkable
class StoreWithIds(Protocol):
    """A store that lists every id it holds."""

    def ids(self) -> Tensor: ...


@runtime_checkable
class StoreWithShards(Protocol):
    """A store that one process writes at a time (FAISS): a distributed ``oml index`` gives each rank its own
    shard store and merges the shards into this one at the end. Stores without this capability take concurrent
    writers themselves (SQL)."""

    def shard_url(self, rank: int) -> str:
        """The URL of rank ``rank``'s shard (created on first open; found again by a resumed run)."""
        ...

    def shard_urls(self) -> list[str]:
        """The URLs of every shard that exists now (of any rank and any earlier run)."""
        ...

    def drop_shard(self, url: str) -> None:
        """Delete a shard once it is merged."""
        ...


# ---------------------------------------------------------------------------------------------- logging
@runtime_checkable
class Logger(Protocol):
    """Receives metrics, hyper-parameters and figures from the engine; written by rank 0 only."""

    def log_hparams(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...

    def log_figure(self, name: str, figure: Figure, step: int) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class LoggerWithOutcome(Protocol):
    """An optional capability of a :class:`Logger`: it records how the run ended. The engine calls
    ``log_outcome`` once, with ``"completed"``, ``"stopped"`` (early stopping, ``request_stop``),
    ``"interrupted"`` (Ctrl-C) or ``"failed"`` (an exception), just before ``close()``; a tracker marks its run
    (MLflow: FINISHED, KILLED or FAILED)."""

    def log_outcome(self, status: str) -> None: ...


# ---------------------------------------------------------------------------------------------- modalities
@runtime_checkable
class Modality(Protocol):
    """What the rows of OML's dataframe hold when they are not image files (texts, audio clips): it builds the
    datasets of ``oml train`` / ``validate`` / ``predict`` / ``index`` / ``search`` over such a dataframe.

    Items of every dataset are dicts with ``input_tensors`` (a tensor, or a dict of tensors such as a tokenizer's
    ``input_ids`` / ``attention_mask``) and ``idx``; labeled datasets add ``labels``, query-gallery datasets
    ``is_query`` / ``is_gallery`` and the ``get_labels`` / ``get_query_ids`` / ``get_gallery_ids`` accessors.
    """

    #: the dataframe columns that describe an item (e.g. ``("text",)``), copied into a store's metadata
    content_columns: tuple[str, ...]

    def labeled_dataset(self, df: Any, dataset_root: Any = None) -> Any:
        """Training data: rows with ``label``."""
        ...

    def query_gallery_dataset(self, df: Any, dataset_root: Any = None) -> Any:
        """Validation / inference data: rows with ``is_query`` and ``is_gallery`` (``label`` optional)."""
        ...

    def base_dataset(self, df: Any, dataset_root: Any = None) -> Any:
        """Every row of ``df`` with no other column required (what ``oml index`` embeds)."""
        ...

    def query_dataset(self, queries: Sequence[str]) -> Any:
        """The queries given on ``oml search``'s command line (texts, or files)."""
        ...
