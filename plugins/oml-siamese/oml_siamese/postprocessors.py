"""Re-ranking retrieval results with a pairwise model: the second stage of retrieval.

``PairwiseReranker`` (OML 4's shape) works on ``RetrievalResults``: the pairwise model re-scores each query's
top-n; the rest of the list stays behind them in its order. ``PairwiseImagesPostprocessor`` and
``PairwiseEmbeddingsPostprocessor`` (OML 2's shapes) do the same and also accept a dense distance matrix:
``postprocessor.process(distances=..., queries=paths_or_embeddings, galleries=...)``. All three work as
``EmbeddingMetrics(postprocessor=...)``.

All the pairs of all the queries go to the model in batches; nothing loops over queries in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from oml_core.errors import OMLError
from oml_siamese.inference import ImagesFromDataset, ImagesFromPaths, ImageSource, pairwise_inference
from oml_siamese.models import InputKind, model_input_kind
from oml_siamese.rerank import rerank_distance_matrix, rerank_top_n


def _positions(results: Any, dataset: Any, which: str) -> Tensor:
    known = getattr(results, f"{which}_item_ids", None)
    if known is not None:
        return torch.as_tensor(known, dtype=torch.long).cpu()
    method = getattr(dataset, f"get_{which}_ids", None)
    if not callable(method):
        raise OMLError(
            f"re-ranking needs to know which items the {which} ids are: the results do not say, and "
            f"{type(dataset).__name__} has no get_{which}_ids()"
        )
    return torch.as_tensor(method(), dtype=torch.long).cpu()


def _embeddings_of(dataset: Any, key: str) -> Tensor:
    if isinstance(dataset, Mapping) or callable(getattr(dataset, "keys", None)):
        if key in dataset:
            return torch.as_tensor(dataset[key])
    extra = getattr(dataset, "extra_data", None)
    if isinstance(extra, Mapping) and key in extra:
        return torch.as_tensor(np.asarray(extra[key]) if not isinstance(extra[key], Tensor) else extra[key])
    raise OMLError(
        f"re-ranking with a pairwise model on embeddings needs the items' {key!r}: pass the AccumulatedItems of "
        f"EmbeddingMetrics or a dataset with extra_data={{{key!r}: ...}} (got {type(dataset).__name__})"
    )


class PairwiseReranker:
    """Re-scores the ``top_n`` retrieved items of every query with ``pairwise_model`` and puts them in the order of
    the new scores (which become their distances); items beyond ``top_n`` keep their order behind them.

    ``process(results, dataset)`` takes ``RetrievalResults`` and the items: ``EmbeddingMetrics``' accumulated items,
    or the validation dataset (e.g. ``DatasetQueryGallery``). A model on images (``ConcatSiamese``) reads images:
    from the items' ``paths`` with ``transforms`` when given, else from the dataset's items (``input_tensors``); a
    model on embeddings (``LinearSiamese``) takes the items' ``embeddings``.

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> from oml_siamese.models import TrivialDistanceSiamese
        >>> x = torch.tensor([[0.0], [0.1], [0.3], [0.35]])
        >>> rr = RetrievalResults.from_embeddings(x, labels=[0, 0, 1, 1])
        >>> reranker = PairwiseReranker(top_n=2, pairwise_model=TrivialDistanceSiamese())
        >>> reranker.process(rr, {"embeddings": x}).retrieved_ids[0].tolist()
        [1, 2, 3]
    """

    def __init__(
        self,
        top_n: int,
        pairwise_model: Any,
        num_workers: int = 0,
        batch_size: int = 128,
        verbose: bool = False,
        use_fp16: bool = False,
        *,
        transforms: Callable[[Any], Any] | None = None,
        device: str | torch.device | None = None,
        embeddings_key: str = "embeddings",
        input_tensors_key: str = "input_tensors",
        paths_key: str = "paths",
    ) -> None:
        for name, value, low in (("top_n", top_n, 1), ("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise OMLError(f"{type(self).__name__}: {name} must be an int >= {low}, got {value!r}")
        if not callable(getattr(pairwise_model, "predict", None)):
            raise OMLError(
                f"{type(self).__name__}: pairwise_model must have predict(x1, x2), got {type(pairwise_model).__name__}"
            )
        self._top_n = top_n
        self.model = pairwise_model
        self.num_workers, self.batch_size = num_workers, batch_size
        self.verbose, self.use_fp16 = verbose, use_fp16
        self.transforms = transforms
        self.device = device
        self.embeddings_key, self.input_tensors_key, self.paths_key = embeddings_key, input_tensors_key, paths_key

    @property
    def top_n(self) -> int:
        """How many retrieved items of each query the model re-scores."""
        return self._top_n

    @property
    def input_kind(self) -> InputKind:
        return model_input_kind(self.model)

    @property
    def needed_keys(self) -> tuple[str, ...]:
        """What ``EmbeddingMetrics`` must accumulate for this postprocessor (OML 2's attribute)."""
        if self.input_kind == "embeddings":
            return (self.embeddings_key,)
        return (self.paths_key,) if self.transforms is not None else (self.input_tensors_key,)

    # -------------------------------------------------------------------------------------------- RetrievalResults
    def process(self, results: Any, dataset: Any = None) -> Any:
        """New ``RetrievalResults`` with each query's top-n re-ranked by the pairwise model."""
        if not hasattr(results, "padded_ids") or not hasattr(results, "with_retrieved"):
            raise OMLError(
                f"{type(self).__name__}.process(results, dataset) takes RetrievalResults, got {type(results).__name__}; "
                "to re-rank a distance matrix use PairwiseImagesPostprocessor / PairwiseEmbeddingsPostprocessor"
                ".process(distances=..., queries=..., galleries=...)"
            )
        padded_ids, padded_distances = results.padded_ids.cpu(), results.padded_distances.cpu()
        n = min(self.top_n, padded_ids.shape[1])
        if n == 0 or len(results) == 0:
            return results.with_retrieved(padded_ids.clone(), padded_distances.clone(), sort=False)
        query_items = _positions(results, dataset, "query")
        gallery_items = _positions(results, dataset, "gallery")
        top = padded_ids[:, :n]
        rows, cols = (top >= 0).nonzero(as_tuple=True)
        source = self._source(dataset)
        scores = torch.full((len(top), n), torch.inf)
        scores[rows, cols] = pairwise_inference(
            self.model,
            source,
            source,
            query_items[rows],
            gallery_items[top[rows, cols]],
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=self.device,
            use_fp16=self.use_fp16,
            progress=self.verbose,
        )
        distances, ids = rerank_top_n(padded_distances, padded_ids, scores)
        return results.with_retrieved(ids, distances, sort=False)

    def _source(self, dataset: Any) -> Tensor | ImageSource:
        if dataset is None:
            raise OMLError(f"{type(self).__name__}.process needs the items (a dataset, or what EmbeddingMetrics accumulated)")
        if self.input_kind == "embeddings":
            return _embeddings_of(dataset, self.embeddings_key)
        has = getattr(dataset, "__contains__", None)
        accumulated = callable(getattr(dataset, "keys", None)) and has is not None
        if self.transforms is not None:
            paths = self._paths(dataset)
            if paths is not None:
                return ImagesFromPaths(paths, self.transforms)
        if accumulated and self.input_tensors_key in dataset:
            return torch.as_tensor(dataset[self.input_tensors_key])
        if not accumulated and callable(getattr(dataset, "__getitem__", None)) and hasattr(dataset, "__len__"):
            return ImagesFromDataset(dataset, self.input_tensors_key)
        raise OMLError(
            f"{type(self).__name__} re-scores images but got no way to read them from {type(dataset).__name__}: give "
            f"transforms and accumulate {self.paths_key!r} (EmbeddingMetrics(extra_keys=({self.paths_key!r},))), or "
            f"pass the dataset itself"
        )

    def _paths(self, dataset: Any) -> list[str] | None:
        if callable(getattr(dataset, "keys", None)) and self.paths_key in dataset:
            return [str(p) for p in dataset[self.paths_key]]
        get_paths = getattr(dataset, "get_paths", None)
        return [str(p) for p in get_paths()] if callable(get_paths) else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(top_n={self.top_n}, pairwise_model={type(self.model).__name__})"


class PairwisePostprocessor(PairwiseReranker):
    """``PairwiseReranker`` that also takes OML 2's call: ``process(distances=(Q, G), queries=..., galleries=...)``,
    returning the ``(Q, G)`` distances with each row's top-n re-scored and the other distances shifted behind them."""

    def process(  # type: ignore[override]
        self,
        results: Any = None,
        dataset: Any = None,
        galleries: Any = None,
        *,
        distances: Tensor | None = None,
        queries: Any = None,
    ) -> Any:
        """``process(results, dataset)`` -> ``RetrievalResults``; ``process(distances=..., queries=..., galleries=...)``
        (or positionally ``process(distances, queries, galleries)``) -> a distance matrix."""
        if isinstance(results, Tensor) and distances is None:
            distances, results, queries, dataset = results, None, dataset, None
        if distances is None:
            if results is None:
                raise OMLError(f"{type(self).__name__}.process needs results (RetrievalResults) or distances=...")
            return super().process(results, dataset)
        if queries is None or galleries is None:
            raise OMLError(f"{type(self).__name__}.process(distances=...) needs queries=... and galleries=... too")
        return self.process_distances(distances, queries, galleries)

    def process_distances(self, distances: Tensor, queries: Any, galleries: Any) -> Tensor:
        """Re-score each row's ``top_n`` smallest distances of ``distances`` ``(Q, G)``."""
        distances = torch.as_tensor(distances)
        n_queries, n_galleries = len(queries), len(galleries)
        if distances.ndim != 2 or tuple(distances.shape) != (n_queries, n_galleries):
            raise OMLError(
                f"{type(self).__name__}: distances of shape {tuple(distances.shape)} do not match {n_queries} queries and "
                f"{n_galleries} galleries"
            )
        n = min(self.top_n, n_galleries)
        if n == 0 or n_queries == 0:
            return distances.clone()
        top_ids = torch.topk(distances, k=n, largest=False, sorted=True).indices
        source1, source2 = self._pair_sources(queries, galleries)
        scores = pairwise_inference(
            self.model,
            source1,
            source2,
            torch.arange(n_queries).repeat_interleave(n),
            top_ids.reshape(-1).cpu(),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=self.device,
            use_fp16=self.use_fp16,
            progress=self.verbose,
        )
        return rerank_distance_matrix(distances, top_ids, scores.view(n_queries, n).to(distances.device))

    def _pair_sources(self, queries: Any, galleries: Any) -> tuple[Tensor | ImageSource, Tensor | ImageSource]:
        raise NotImplementedError


class PairwiseImagesPostprocessor(PairwisePostprocessor):
    """Re-ranks with a pairwise model on images (e.g. ``ConcatSiamese``), reading them from paths with ``transforms``
    (OML's ``PairwiseImagesPostprocessor``). In ``EmbeddingMetrics`` it needs the items' ``paths``.

    Example:
        >>> postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)  # doctest: +SKIP
        >>> postprocessor.process(distances=distances, queries=query_paths, galleries=gallery_paths)  # doctest: +SKIP
    """

    def __init__(
        self,
        top_n: int,
        pairwise_model: Any,
        transforms: Callable[[Any], Any] | None,
        num_workers: int = 0,
        batch_size: int = 128,
        verbose: bool = False,
        use_fp16: bool = False,
        *,
        device: str | torch.device | None = None,
        paths_key: str = "paths",
    ) -> None:
        if model_input_kind(pairwise_model) != "images":
            raise OMLError(
                f"PairwiseImagesPostprocessor needs a pairwise model on images; {type(pairwise_model).__name__} compares "
                "embeddings: use PairwiseEmbeddingsPostprocessor"
            )
        super().__init__(
            top_n,
            pairwise_model,
            num_workers,
            batch_size,
            verbose,
            use_fp16,
            transforms=transforms,
            device=device,
            paths_key=paths_key,
        )
        if self.transforms is None:
            from oml_core.data.transforms import get_normalisation_torch

            self.transforms = get_normalisation_torch()

    def _pair_sources(self, queries: Any, galleries: Any) -> tuple[ImageSource, ImageSource]:
        return ImagesFromPaths(_as_paths(queries, "queries"), self.transforms), ImagesFromPaths(
            _as_paths(galleries, "galleries"), self.transforms
        )


class PairwiseEmbeddingsPostprocessor(PairwisePostprocessor):
    """Re-ranks with a pairwise model on embeddings (e.g. ``LinearSiamese``) (OML's
    ``PairwiseEmbeddingsPostprocessor``); in the dense call, ``queries`` and ``galleries`` are embeddings.

    Example:
        >>> from oml_siamese.models import LinearSiamese
        >>> postprocessor = PairwiseEmbeddingsPostprocessor(top_n=2, pairwise_model=LinearSiamese(feat_dim=1))
        >>> queries, galleries = torch.tensor([[0.0]]), torch.tensor([[0.5], [0.1], [3.0]])
        >>> distances = torch.cdist(queries, galleries)
        >>> postprocessor.process(distances=distances, queries=queries, galleries=galleries).argsort().tolist()
        [[1, 0, 2]]
    """

    def __init__(
        self,
        top_n: int,
        pairwise_model: Any,
        num_workers: int = 0,
        batch_size: int = 128,
        verbose: bool = False,
        use_fp16: bool = False,
        *,
        device: str | torch.device | None = None,
        embeddings_key: str = "embeddings",
    ) -> None:
        if model_input_kind(pairwise_model) != "embeddings":
            raise OMLError(
                f"PairwiseEmbeddingsPostprocessor needs a pairwise model on embeddings; {type(pairwise_model).__name__} "
                "compares images: use PairwiseImagesPostprocessor"
            )
        super().__init__(
            top_n, pairwise_model, num_workers, batch_size, verbose, use_fp16, device=device, embeddings_key=embeddings_key
        )

    def _pair_sources(self, queries: Any, galleries: Any) -> tuple[Tensor, Tensor]:
        q, g = torch.as_tensor(queries), torch.as_tensor(galleries)
        if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
            raise OMLError(
                f"PairwiseEmbeddingsPostprocessor: queries and galleries must be embeddings (Q, D) and (G, D), got "
                f"{tuple(q.shape)} and {tuple(g.shape)}"
            )
        return q, g


def _as_paths(values: Any, what: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) and not hasattr(values, "tolist"):
        raise OMLError(f"PairwiseImagesPostprocessor: {what} must be a sequence of image paths, got {type(values).__name__}")
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    return [str(p) for p in items]


__all__ = [
    "PairwiseEmbeddingsPostprocessor",
    "PairwiseImagesPostprocessor",
    "PairwisePostprocessor",
    "PairwiseReranker",
]
