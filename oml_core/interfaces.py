"""OML 4's interfaces (``oml.interfaces.models`` / ``oml.interfaces.datasets``), so that classes users wrote against
them keep working here.

The engine, ``inference``, ``RetrievalResults`` and ``EmbeddingMetrics`` never check these classes: they rely on
the protocols of :mod:`oml_core.protocols` (an extractor is a module with ``feat_dim`` mapping images to
embeddings; a query/gallery dataset has ``get_query_ids()``, ``get_gallery_ids()``, ``get_labels()``, and
optionally ``extra_data["category"]`` / ``["sequence"]``). Each interface here states the same contract as an
abstract base class: a subclass that implements its abstract methods satisfies the protocol. This project's datasets
are registered as virtual subclasses, so ``isinstance(dataset, IQueryGalleryLabeledDataset)`` holds as in OML 4.

Example:
    >>> import torch
    >>> class MyExtractor(IExtractor):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(3, 2)
    ...     def extract(self, x):
    ...         return self.fc(x.mean(dim=(2, 3)))
    ...     @property
    ...     def feat_dim(self):
    ...         return 2
    >>> MyExtractor()(torch.zeros(1, 3, 4, 4)).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from torch import LongTensor, Tensor, nn
from torch.utils.data import Dataset

from oml_core.errors import OMLError


# ================================================================================================ models
class IExtractor(nn.Module, ABC):
    """An embedding model: implement ``extract(x) -> (B, feat_dim)`` and the ``feat_dim`` property; calling the
    module runs ``extract`` (``forward``), which is what the engine and ``inference`` do."""

    pretrained_models: dict[str, Any] = {}

    @abstractmethod
    def extract(self, x: Tensor) -> Tensor:
        """Embeddings of a batch of inputs."""

    def forward(self, x: Tensor) -> Tensor:
        return self.extract(x)

    @property
    @abstractmethod
    def feat_dim(self) -> int:
        """The size of an embedding."""

    @classmethod
    def from_pretrained(cls, weights: str, **kwargs: Any) -> IExtractor:
        """Build the model with pretrained ``weights``: a subclass provides this (the zoo's extractors do)."""
        raise OMLError(
            f"{cls.__name__}.from_pretrained({weights!r}): this extractor has no pretrained weights; build it and "
            "load a state_dict, or override from_pretrained"
        )


class IFreezable(ABC):
    """A model whose backbone can be frozen and unfrozen (e.g. for a warm-up with a frozen backbone)."""

    @abstractmethod
    def freeze(self) -> None:
        """Stop the gradients of the part that should stay fixed."""

    @abstractmethod
    def unfreeze(self) -> None:
        """Let the gradients flow again."""


class IPairwiseModel(nn.Module):
    """A model scoring pairs (a siamese re-ranker): ``forward(x1, x2)`` returns one logit per pair (training) and
    ``predict(x1, x2)`` the scores used as distances when re-ranking (smaller is closer)."""

    def forward(self, x1: Any, x2: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x1, x2)")

    def predict(self, x1: Any, x2: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement predict(x1, x2)")


# ================================================================================================ datasets
class IIndexedDataset(Dataset[dict[str, Any]], ABC):
    """Items are dicts that carry their own position under ``index_key`` (``"idx"``)."""

    index_key: str = "idx"

    @abstractmethod
    def __getitem__(self, item: int) -> dict[str, Any]: ...

    @abstractmethod
    def __len__(self) -> int: ...


class IBaseDataset(IIndexedDataset, ABC):
    """Items hold ``input_tensors_key``; ``extra_data`` holds per-item records (also ``category``, ``sequence``)."""

    input_tensors_key: str = "input_tensors"
    extra_data: dict[str, Any]


class ILabeledDataset(IBaseDataset, ABC):
    """Items also hold ``labels_key``."""

    labels_key: str = "labels"

    @abstractmethod
    def get_labels(self) -> np.ndarray:
        """One label per item."""

    def get_label2category(self) -> dict[int, Any] | None:
        """``{label: category}``, or None without categories."""
        return None


class IQueryGalleryDataset(IBaseDataset, ABC):
    """A query/gallery split of the items."""

    @abstractmethod
    def get_query_ids(self) -> LongTensor:
        """Positions of the queries."""

    @abstractmethod
    def get_gallery_ids(self) -> LongTensor:
        """Positions of the gallery items."""


class IQueryGalleryLabeledDataset(IQueryGalleryDataset, ILabeledDataset, ABC):
    """A labeled query/gallery split: what validation takes."""


class IPairDataset(IIndexedDataset, ABC):
    """Items are pairs: ``input_tensors_key_1`` and ``input_tensors_key_2``."""

    input_tensors_key_1: str = "input_tensors_1"
    input_tensors_key_2: str = "input_tensors_2"


class IVisualizableDataset(Dataset[dict[str, Any]], ABC):
    """``visualize(item, color) -> (H, W, 3)`` image, used to draw retrieval results."""

    @abstractmethod
    def visualize(self, item: int, color: tuple[int, int, int]) -> np.ndarray: ...


def _register_datasets() -> None:
    from oml_core.data.datasets import DatasetQueryGallery, DatasetWithLabels
    from oml_core.data.image_datasets import (
        ImageBaseDataset,
        ImageLabeledDataset,
        ImageQueryGalleryDataset,
        ImageQueryGalleryLabeledDataset,
        PairDataset,
    )

    registrations: list[tuple[type, type]] = [
        (ILabeledDataset, DatasetWithLabels),
        (ILabeledDataset, ImageLabeledDataset),
        (IQueryGalleryDataset, DatasetQueryGallery),
        (IQueryGalleryDataset, ImageQueryGalleryDataset),
        (IQueryGalleryLabeledDataset, ImageQueryGalleryLabeledDataset),
        (IBaseDataset, ImageBaseDataset),
        (IPairDataset, PairDataset),
        (IVisualizableDataset, DatasetWithLabels),
        (IVisualizableDataset, DatasetQueryGallery),
        (IVisualizableDataset, ImageBaseDataset),
    ]
    for interface, cls in registrations:
        interface.register(cls)  # type: ignore[attr-defined]


_register_datasets()

__all__ = [
    "IBaseDataset",
    "IExtractor",
    "IFreezable",
    "IIndexedDataset",
    "ILabeledDataset",
    "IPairDataset",
    "IPairwiseModel",
    "IQueryGalleryDataset",
    "IQueryGalleryLabeledDataset",
    "IVisualizableDataset",
]
