"""``EmbeddingMetrics``: accumulate a validation set batch by batch, then compute retrieval metrics once.

Call shapes as in OML::

    calculator = EmbeddingMetrics(extra_keys=("paths",), cmc_top_k=(1, 5), postprocessor=postprocessor)
    calculator.setup(num_samples=len(dataset))
    for batch in loader:                       # batches carry embeddings, labels, is_query, is_gallery (and idx)
        calculator.update_data(data_dict=batch)   # or update_data(batch), or update_data(embeddings=..., labels=...)
    metrics = calculator.compute_metrics()        # {"OVERALL": {"cmc": {1: tensor(...), 5: ...}, ...}, <category>: ...}

The state is a ``torchmetrics.Metric``: ``.to(device)``, ``reset()``, Lightning and torch.distributed work as for any
torchmetrics metric. Under torch.distributed, ``compute_metrics()`` gathers every rank's items once (tensors through
torchmetrics, other values such as paths through ``all_gather_object``), drops duplicates by ``idx`` (a
``DistributedSampler`` pads the last batch with repeated items) and every rank computes the same result. Items are
put in ``idx`` order when batches carry ``idx`` (``index_key``), so the order of accumulation never matters; without
``idx``, ties between equal distances are broken by the order of accumulation.

**What a postprocessor receives.** ``postprocessor.process(results, items)`` gets the :class:`RetrievalResults`
(retrieved gallery ids are gallery positions; ``results.query_item_ids[q]`` and ``results.gallery_item_ids[g]`` are the
item positions of query ``q`` and gallery item ``g``) and an :class:`AccumulatedItems` that exposes everything that
was accumulated, by item position: ``items.embeddings`` ``(N, D)``, ``items.labels``, ``items.is_query``,
``items.is_gallery``, and every other key (``items["paths"]``, ``items["input_tensors"]``, categories, sequences,
``extra_keys``), as tensors (numeric values) or lists (anything else). ``items.take(key, positions)`` selects items,
``items.get_query_ids()`` / ``get_gallery_ids()`` / ``get_paths()`` / ``extra_data`` mirror OML's datasets. A pairwise
re-ranker takes, for query ``q``, ``results.padded_ids[q, :top_n]`` -> ``results.gallery_item_ids[...]`` -> paths or
embeddings of those items, re-scores them and returns ``results.with_retrieved(ids, distances)``. As in OML 2.x, the
keys a postprocessor lists in its ``needed_keys`` attribute (if any, e.g. ``("paths",)``) are accumulated as well.

``fnmr@fmr`` (OVERALL only, as in OML) and ``pcf`` describe the embeddings themselves: they are computed before the
postprocessor runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pprint import pprint
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torchmetrics
from torch import Tensor
from torchmetrics.utilities.data import dim_zero_cat

from oml_core.protocols import Postprocessor
from oml_core.retrieval._fnmr import check_fmr_vals
from oml_core.retrieval._search import RetrievalError, check_metric
from oml_core.retrieval.metrics import (
    OVERALL_CATEGORIES_KEY,
    TMetricsDict,
    calc_retrieval_metrics_rr,
    calc_topological_metrics,
    category_index,
    reduce_metrics,
)
from oml_core.retrieval.results import RetrievalResults, dataset_categories, dataset_labels, dataset_sequences

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Queries per metric and gallery items per query drawn by ``visualize()``.
LOG_TOPK_ROWS_PER_METRIC = 5
LOG_TOPK_IMAGES_PER_ROW = 5


class AccumulatedItems:
    """Everything EmbeddingMetrics accumulated, one entry per item, in item order (sorted by ``idx`` when known).

    Example:
        >>> items = AccumulatedItems({"embeddings": torch.zeros(3, 2), "labels": torch.tensor([0, 0, 1]),
        ...                           "is_query": torch.tensor([True, False, True]),
        ...                           "is_gallery": torch.ones(3, dtype=torch.bool),
        ...                           "paths": ["a.jpg", "b.jpg", "c.jpg"]})
        >>> len(items), items.get_query_ids().tolist(), items.take("paths", torch.tensor([2, 0]))
        (3, [0, 2], ['c.jpg', 'a.jpg'])
    """

    def __init__(
        self,
        data: Mapping[str, Tensor | list[Any]],
        *,
        embeddings_key: str = "embeddings",
        labels_key: str = "labels",
        is_query_key: str = "is_query",
        is_gallery_key: str = "is_gallery",
        paths_key: str = "paths",
    ) -> None:
        self._data = dict(data)
        self.embeddings_key, self.labels_key = embeddings_key, labels_key
        self.is_query_key, self.is_gallery_key, self.paths_key = is_query_key, is_gallery_key, paths_key
        lengths = {k: len(v) for k, v in self._data.items()}
        if len(set(lengths.values())) > 1:
            raise RetrievalError(f"accumulated values have different lengths: {lengths}")
        self._n = next(iter(lengths.values())) if lengths else 0

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key: str) -> Tensor | list[Any]:
        if key not in self._data:
            raise KeyError(f"{key!r} was not accumulated; accumulated keys: {', '.join(self._data)}")
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def keys(self) -> list[str]:
        return list(self._data)

    @property
    def extra_data(self) -> dict[str, Tensor | list[Any]]:
        """All accumulated values by key (what OML's datasets call ``extra_data``)."""
        return self._data

    @property
    def embeddings(self) -> Tensor:
        value = self[self.embeddings_key]
        assert isinstance(value, Tensor)
        return value

    @property
    def labels(self) -> Tensor | list[Any]:
        return self[self.labels_key]

    @property
    def is_query(self) -> Tensor:
        return torch.as_tensor(self[self.is_query_key]).bool()

    @property
    def is_gallery(self) -> Tensor:
        return torch.as_tensor(self[self.is_gallery_key]).bool()

    def get_query_ids(self) -> Tensor:
        """Item positions of the queries (in the order of ``RetrievalResults``' queries)."""
        return self.is_query.cpu().nonzero().squeeze(1)

    def get_gallery_ids(self) -> Tensor:
        """Item positions of the gallery items (gallery id ``g`` is item ``get_gallery_ids()[g]``)."""
        return self.is_gallery.cpu().nonzero().squeeze(1)

    def get_labels(self) -> np.ndarray:
        labels = self.labels
        return labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)

    def get_paths(self) -> list[str]:
        if self.paths_key not in self._data:
            raise RetrievalError(
                f"no {self.paths_key!r} were accumulated: add it to EmbeddingMetrics(extra_keys=({self.paths_key!r},)) "
                "to draw or re-rank images"
            )
        return list(self._data[self.paths_key])

    def take(self, key: str, positions: Tensor | Sequence[int]) -> Tensor | list[Any]:
        """Values of ``key`` for the items at ``positions``."""
        value = self[key]
        pos = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
        if isinstance(value, Tensor):
            return value[pos.to(value.device)]
        return [value[i] for i in pos.tolist()]

    def __repr__(self) -> str:
        return f"AccumulatedItems({self._n} items, keys: {', '.join(self._data)})"


#: Where the columns taken from a dataset (OML 4's shape) are kept among the accumulated items.
_SEQUENCES, _CATEGORIES = "__dataset_sequence", "__dataset_category"


def _check_dataset(dataset: Any) -> None:
    missing = [
        m for m in ("__len__", "get_query_ids", "get_gallery_ids", "get_labels") if not callable(getattr(dataset, m, None))
    ]
    if missing:
        raise RetrievalError(
            f"EmbeddingMetrics(dataset=...) takes a labeled query/gallery dataset (e.g. ImageQueryGalleryLabeledDataset); "
            f"{type(dataset).__name__} has no {', '.join(missing)}"
        )


def _state_name(position: int, key: str) -> str:
    return f"acc{position}_" + "".join(c if c.isalnum() else "_" for c in key)


def _check_ks(values: Iterable[int], name: str) -> tuple[int, ...]:
    out = tuple(values)
    if not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in out):
        raise RetrievalError(f"EmbeddingMetrics: {name} must contain positive integers, got {out!r}")
    return out


class EmbeddingMetrics(torchmetrics.Metric):
    """Retrieval metrics of a validation set, accumulated batch by batch (OML's call shapes; see the module doc).

    ``metric`` is ``"euclidean"`` (OML's), ``"cosine"`` or ``"dot"``. ``map_at_r``, ``r_precision`` and ``mrr_top_k``
    add the standard metrics (see ``oml_core.retrieval.metrics``). The retrieval results (and the accumulated items)
    stay on the object after ``compute_metrics()`` as ``retrieval_results`` / ``items``, e.g. to draw the worst queries.

    Example:
        >>> calculator = EmbeddingMetrics(cmc_top_k=(1,), precision_top_k=(), map_top_k=(), pcf_variance=())
        >>> calculator.setup(num_samples=4)
        >>> calculator.update_data({"embeddings": torch.tensor([[0.0], [0.1], [5.0], [5.2]]),
        ...                         "labels": torch.tensor([0, 0, 1, 1]),
        ...                         "is_query": torch.ones(4, dtype=torch.bool), "is_gallery": torch.ones(4, dtype=torch.bool)})
        >>> calculator.compute_metrics()
        {'OVERALL': {'cmc': {1: tensor(1.)}}}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        embeddings_key: str | Any = "embeddings",
        labels_key: str = "labels",
        is_query_key: str = "is_query",
        is_gallery_key: str = "is_gallery",
        extra_keys: Sequence[str] = (),
        cmc_top_k: Sequence[int] = (5,),
        precision_top_k: Sequence[int] = (5,),
        map_top_k: Sequence[int] = (5,),
        fmr_vals: Sequence[float] = (),
        pcf_variance: Sequence[float] = (0.5,),
        categories_key: str | None = None,
        sequence_key: str | None = None,
        postprocessor: Postprocessor | None = None,
        metrics_to_exclude_from_visualization: Iterable[str] = (),
        return_only_overall_category: bool = False,
        visualize_only_overall_category: bool = True,
        verbose: bool = False,
        *,
        metric: str = "euclidean",
        map_at_r: bool = False,
        r_precision: bool = False,
        mrr_top_k: Sequence[int] = (),
        index_key: str = "idx",
        paths_key: str = "paths",
        chunk_size: int | None = None,
        dataset: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_metric(metric)
        if not isinstance(embeddings_key, str):  # OML 4's EmbeddingMetrics(dataset, ...)
            if dataset is not None:
                raise RetrievalError("EmbeddingMetrics: the dataset was given twice (first argument and dataset=)")
            dataset, embeddings_key = embeddings_key, "embeddings"
        if dataset is not None:
            _check_dataset(dataset)
        #: OML 4's shape: labels, the query/gallery split, categories and sequences come from this dataset and the
        #: batches only carry embeddings and item indices
        self.dataset = dataset
        if isinstance(extra_keys, str):
            extra_keys = (extra_keys,)
        self.embeddings_key, self.labels_key = embeddings_key, labels_key
        self.is_query_key, self.is_gallery_key = is_query_key, is_gallery_key
        self.categories_key, self.sequence_key, self.index_key = categories_key, sequence_key, index_key
        self.paths_key = paths_key
        self.extra_keys = tuple(extra_keys)
        self.cmc_top_k = _check_ks(cmc_top_k, "cmc_top_k")
        self.precision_top_k = _check_ks(precision_top_k, "precision_top_k")
        self.map_top_k = _check_ks(map_top_k, "map_top_k")
        self.mrr_top_k = _check_ks(mrr_top_k, "mrr_top_k")
        self.fmr_vals = check_fmr_vals(fmr_vals)
        self.pcf_variance = check_fmr_vals(pcf_variance, what="pcf_variance")
        self.map_at_r, self.r_precision = bool(map_at_r), bool(r_precision)
        if postprocessor is not None and not callable(getattr(postprocessor, "process", None)):
            raise RetrievalError(
                f"postprocessor must have a process(results, dataset) method, got {type(postprocessor).__name__}"
            )
        self.postprocessor = postprocessor
        self.metric = metric
        self.chunk_size = chunk_size
        self.metrics_to_exclude_from_visualization = ["fnmr@fmr", "pcf", *metrics_to_exclude_from_visualization]
        self.return_only_overall_category = return_only_overall_category
        self.visualize_only_overall_category = visualize_only_overall_category
        self.verbose = verbose

        from_batches = [labels_key, is_query_key, is_gallery_key, categories_key, sequence_key] if dataset is None else []
        keys = [
            embeddings_key,
            *from_batches,
            index_key,
            *self.extra_keys,
            # OML 2.x: what the postprocessor reads (e.g. the pairwise re-ranker's "paths") is accumulated too, so
            # EmbeddingMetrics(postprocessor=...) works without repeating those keys in extra_keys
            *tuple(getattr(postprocessor, "needed_keys", None) or ()),
        ]
        self.keys_to_accumulate: tuple[str, ...] = tuple(dict.fromkeys(k for k in keys if k is not None))
        self._state_names = {key: _state_name(i, key) for i, key in enumerate(self.keys_to_accumulate)}
        for name in self._state_names.values():
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._objects: dict[str, list[Any]] = {key: [] for key in self.keys_to_accumulate}
        self._num_samples: int | None = None
        self.retrieval_results: RetrievalResults | None = None
        self.items: AccumulatedItems | None = None
        self.metrics: TMetricsDict | None = None
        self.metrics_unreduced: TMetricsDict | None = None
        self._queries_by_category: dict[Any, Tensor] = {}

    # -------------------------------------------------------------------------------------------- accumulation
    def setup(self, num_samples: int | None = None) -> None:
        """Start a new accumulation; ``num_samples`` (the dataset size) is checked at ``compute_metrics()``."""
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples < 1):
            raise RetrievalError(f"EmbeddingMetrics.setup: num_samples must be a positive int, got {num_samples!r}")
        self.reset()
        self._num_samples = num_samples if num_samples is not None or self.dataset is None else len(self.dataset)

    def reset(self) -> None:
        super().reset()
        self._objects = {key: [] for key in self.keys_to_accumulate}
        self.retrieval_results = None
        self.items = None
        self.metrics = None
        self.metrics_unreduced = None
        self._queries_by_category = {}

    def update_data(self, data_dict: Mapping[str, Any] | None = None, indices: Any = None, **fields: Any) -> None:
        """Add a batch: ``update_data(batch)``, ``update_data(data_dict=batch)`` or ``update_data(embeddings=..., labels=...,
        is_query=..., is_gallery=...)``; with a dataset (OML 4), ``update_data(batch, indices)``. Keys other than the
        accumulated ones are ignored."""
        self.update(data_dict, indices, **fields)

    def update(  # type: ignore[override]
        self, data_dict: Mapping[str, Any] | Tensor | None = None, indices: Any = None, **fields: Any
    ) -> None:
        """Add a batch (see :meth:`update_data`); OML 4's ``update(embeddings, indices)`` also works."""
        if isinstance(data_dict, Tensor):
            data_dict = {self.embeddings_key: data_dict}
        data = {**(data_dict or {}), **fields}
        if "embeddings" in data and self.embeddings_key not in data and self.dataset is not None:
            data[self.embeddings_key] = data["embeddings"]
        if indices is not None:
            data[self.index_key] = indices
        if self.dataset is not None and self.index_key not in data:
            raise RetrievalError(
                f"EmbeddingMetrics(dataset=...) needs the dataset positions of the batch's items: a {self.index_key!r} "
                "key in the batch (the datasets put it there) or update(embeddings, indices)"
            )
        if self.embeddings_key not in data:
            raise RetrievalError(
                f"EmbeddingMetrics.update_data: the batch has no {self.embeddings_key!r} (embeddings_key); it has: "
                f"{', '.join(map(str, data)) or 'nothing'}"
            )
        embeddings = data[self.embeddings_key]
        if not isinstance(embeddings, Tensor):
            embeddings = torch.as_tensor(np.asarray(embeddings))
        if embeddings.ndim != 2:
            raise RetrievalError(
                f"EmbeddingMetrics.update_data: {self.embeddings_key!r} must be (batch, dim), got shape {tuple(embeddings.shape)}"
            )
        n = len(embeddings)
        data[self.embeddings_key] = embeddings
        required = [self.labels_key] if self.dataset is None else []
        missing = [k for k in required if k not in data]
        if missing:
            raise RetrievalError(
                f"EmbeddingMetrics.update_data: the batch has no {missing[0]!r}; it has: {', '.join(map(str, data))}"
            )
        for key in (self.is_query_key, self.is_gallery_key) if self.dataset is None else ():
            if key not in data:  # no query/gallery split given: every item is both (1-vs-rest)
                data[key] = torch.ones(n, dtype=torch.bool, device=embeddings.device)
        for key in self.keys_to_accumulate:
            if key not in data:
                if key in (self.index_key,):
                    continue
                raise RetrievalError(
                    f"EmbeddingMetrics.update_data: the batch has no {key!r}; it has: {', '.join(map(str, data))}"
                )
            self._append(key, data[key], n)

    def _append(self, key: str, value: Any, n: int) -> None:
        tensor: Tensor | None = None
        if isinstance(value, Tensor):
            tensor = value.detach()
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            tensor = torch.from_numpy(value)
        elif isinstance(value, list | tuple) and value and all(isinstance(v, bool | int | float | np.number) for v in value):
            tensor = torch.as_tensor(value)
        if tensor is not None and tensor.ndim == 0:
            tensor = tensor.reshape(1)
        size = len(tensor) if tensor is not None else (len(value) if hasattr(value, "__len__") else -1)
        if size != n:
            raise RetrievalError(f"EmbeddingMetrics.update_data: {key!r} has {size} entries but the batch has {n} embeddings")
        state: list[Tensor] = getattr(self, self._state_names[key])
        objects = self._objects[key]
        if tensor is not None:
            if objects:
                raise RetrievalError(f"EmbeddingMetrics.update_data: {key!r} was given as a list before and as numbers now")
            state.append(tensor)
        else:
            if state:
                raise RetrievalError(f"EmbeddingMetrics.update_data: {key!r} was given as numbers before and as a list now")
            objects.extend(list(value))

    def forward(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Accumulate only: metrics of a single batch mean nothing for retrieval."""
        self.update(*args, **kwargs)

    # -------------------------------------------------------------------------------------------- compute
    def _gathered_objects(self) -> dict[str, list[Any]]:
        import torch.distributed as dist

        if not (self.sync_on_compute and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return self._objects
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self._objects, group=self.process_group)
        return {key: [v for rank in gathered for v in rank[key]] for key in self.keys_to_accumulate}

    def _collect(self) -> AccumulatedItems:
        objects = self._gathered_objects()
        data: dict[str, Tensor | list[Any]] = {}
        for key in self.keys_to_accumulate:
            state = getattr(self, self._state_names[key])
            tensor = dim_zero_cat(state) if (isinstance(state, Tensor) or len(state)) else None
            if tensor is not None and tensor.numel():
                data[key] = tensor
            elif objects[key]:
                data[key] = objects[key]
        if self.embeddings_key not in data:
            raise RetrievalError("EmbeddingMetrics.compute_metrics: nothing was accumulated; call update_data(batch) first")
        emb = data[self.embeddings_key]
        assert isinstance(emb, Tensor)
        lengths = {k: len(v) for k, v in data.items()}
        if len(set(lengths.values())) > 1:
            raise RetrievalError(f"EmbeddingMetrics: accumulated values have different lengths: {lengths}")
        if self.index_key in data:
            idx = torch.as_tensor(data[self.index_key]).long().cpu()
            order = torch.argsort(idx, stable=True)
            sorted_idx = idx[order]
            first = torch.ones(len(idx), dtype=torch.bool)
            first[1:] = sorted_idx[1:] != sorted_idx[:-1]
            keep = order[first]
            data = {k: _take(v, keep) for k, v in data.items()}
        n = len(data[self.embeddings_key])
        if self.dataset is not None:
            data = self._dataset_columns(data)
        if self._num_samples is not None and n != self._num_samples:
            raise RetrievalError(
                f"EmbeddingMetrics: metrics need the whole dataset, but {n} distinct items were accumulated for "
                f"setup(num_samples={self._num_samples})"
            )
        return AccumulatedItems(
            data,
            embeddings_key=self.embeddings_key,
            labels_key=self.labels_key,
            is_query_key=self.is_query_key,
            is_gallery_key=self.is_gallery_key,
            paths_key=self.paths_key,
        )

    def _dataset_columns(self, data: dict[str, Tensor | list[Any]]) -> dict[str, Tensor | list[Any]]:
        """OML 4's shape: labels, the split, categories and sequences of the accumulated items, from the dataset."""
        dataset = self.dataset
        n = len(dataset)
        idx = torch.as_tensor(data[self.index_key]).long().cpu()
        if len(idx) != n or not torch.equal(idx, torch.arange(n)):
            raise RetrievalError(
                f"EmbeddingMetrics(dataset=...): metrics need every item of the dataset ({n}) once, but {len(idx)} distinct "
                "items were accumulated"
            )
        out = dict(data)
        labels = dataset_labels(dataset)
        if labels is None:
            raise RetrievalError(f"EmbeddingMetrics(dataset=...): {type(dataset).__name__} has no labels (get_labels())")
        out[self.labels_key] = torch.as_tensor(np.asarray(labels))
        for key, method in ((self.is_query_key, "get_query_ids"), (self.is_gallery_key, "get_gallery_ids")):
            mask = torch.zeros(n, dtype=torch.bool)
            mask[torch.as_tensor(getattr(dataset, method)(), dtype=torch.long).reshape(-1)] = True
            out[key] = mask
        sequences, categories = dataset_sequences(dataset), dataset_categories(dataset)
        if sequences is not None:
            out[_SEQUENCES] = list(sequences)
        if categories is not None:
            out[_CATEGORIES] = [c.item() if isinstance(c, np.generic) else c for c in categories]
        return out

    def compute(self) -> TMetricsDict:
        items = self._collect()
        embeddings = items.embeddings
        max_k = max([*self.cmc_top_k, *self.precision_top_k, *self.map_top_k, *self.mrr_top_k, 1])
        if self.postprocessor is not None:
            max_k = max(max_k, int(getattr(self.postprocessor, "top_n", 0) or 0))
        sequence_key, categories_key = self.sequence_key, self.categories_key
        if self.dataset is not None:
            sequence_key = _SEQUENCES if _SEQUENCES in items else None
            categories_key = _CATEGORIES if _CATEGORIES in items else None
        sequences = items[sequence_key] if sequence_key is not None else None
        rr, fnmr = RetrievalResults._search_items(
            embeddings,
            labels=items.labels,
            is_query=items.is_query,
            is_gallery=items.is_gallery,
            sequences=sequences,
            n_items=max_k,
            metric=self.metric,
            chunk_size=self.chunk_size,
            fmr_vals=self.fmr_vals,
            at_least_n_gt=self.map_at_r or self.r_precision,
        )
        if self.postprocessor is not None:
            processed = self.postprocessor.process(rr, items if self.dataset is None else self.dataset)
            if not isinstance(processed, RetrievalResults):
                raise RetrievalError(
                    f"postprocessor {type(self.postprocessor).__name__}.process returned {type(processed).__name__}, "
                    "not RetrievalResults"
                )
            rr = processed
        self.retrieval_results, self.items = rr, items

        args: dict[str, Any] = {
            "cmc_top_k": self.cmc_top_k,
            "precision_top_k": self.precision_top_k,
            "map_top_k": self.map_top_k,
            "map_at_r": self.map_at_r,
            "r_precision": self.r_precision,
            "mrr_top_k": self.mrr_top_k,
            "reduce": False,
        }
        query_ids = rr.query_item_ids if rr.query_item_ids is not None else items.get_query_ids()
        self._queries_by_category = {OVERALL_CATEGORIES_KEY: torch.arange(len(rr))}
        if categories_key is not None:
            categories = items[categories_key]
            query_categories = _take(categories, query_ids)
            metrics_r = calc_retrieval_metrics_rr(rr, query_categories=query_categories, **args)
            metrics_t = calc_topological_metrics(embeddings, self.pcf_variance, categories=categories)
            unreduced = {cat: {**metrics_r[cat], **metrics_t.get(cat, {})} for cat in metrics_r}
            names, codes = category_index(query_categories)
            for i, name in enumerate(names):
                self._queries_by_category[name] = (codes == i).nonzero().squeeze(1)
        else:
            metrics_r = calc_retrieval_metrics_rr(rr, **args)
            metrics_t = calc_topological_metrics(embeddings, self.pcf_variance)
            unreduced = {OVERALL_CATEGORIES_KEY: {**metrics_r, **metrics_t}}
        if self.fmr_vals:
            unreduced[OVERALL_CATEGORIES_KEY]["fnmr@fmr"] = {f: torch.tensor(v) for f, v in fnmr.items()}
        self.metrics_unreduced = unreduced
        self.metrics = reduce_metrics(unreduced)
        result = self.metrics
        if self.return_only_overall_category:
            result = {OVERALL_CATEGORIES_KEY: result[OVERALL_CATEGORIES_KEY]}
        if self.verbose and _is_main_process():
            print("\nMetrics:")
            pprint(result)
        return result

    def compute_metrics(self) -> TMetricsDict:
        """``{category or "OVERALL": {metric: {k: value}}}`` over everything accumulated (gathered under DDP)."""
        return self.compute()  # type: ignore[no-any-return]

    # -------------------------------------------------------------------------------------------- visualisation
    def ready_to_visualize(self) -> bool:
        """True when image paths are accumulated (``extra_keys=("paths",)``) or the dataset draws its items."""
        if self.dataset is not None:
            return callable(getattr(self.dataset, "visualize", None)) or callable(getattr(self.dataset, "get_paths", None))
        return self.paths_key in self.keys_to_accumulate

    def get_worst_queries_ids(self, metric_name: str, n_queries: int) -> list[int]:
        """Queries (indices into ``retrieval_results``) with the lowest ``metric_name``, e.g. ``"OVERALL/cmc/1"``."""
        if self.metrics_unreduced is None:
            raise RetrievalError("compute_metrics() first: there are no per-query metrics yet")
        flat = _flatten(self.metrics_unreduced)
        if metric_name not in flat:
            raise RetrievalError(f"unknown metric {metric_name!r}; available: {', '.join(k for k, v in flat.items() if v.ndim)}")
        values = flat[metric_name]
        if values.ndim == 0:
            raise RetrievalError(f"{metric_name!r} is not a per-query metric")
        category = metric_name.split("/")[0]
        order = torch.argsort(torch.nan_to_num(values.double(), nan=-1.0), stable=True)[:n_queries]
        lookup = self._queries_by_category.get(category, torch.arange(len(values)))
        if category not in self._queries_by_category:
            lookup = next((v for k, v in self._queries_by_category.items() if str(k) == category), lookup)
        return lookup[order].tolist()

    def get_plot_for_queries(self, query_ids: list[int], n_instances: int, verbose: bool = False) -> Figure:
        if self.retrieval_results is None or self.items is None:
            raise RetrievalError("compute_metrics() first: there are no retrieval results to draw")
        source = self.items if self.dataset is None else self.dataset
        return self.retrieval_results.visualize(query_ids, source, n_galleries_to_show=n_instances, verbose=verbose)

    def get_plot_for_worst_queries(self, metric_name: str, n_queries: int, n_instances: int, verbose: bool = False) -> Figure:
        return self.get_plot_for_queries(self.get_worst_queries_ids(metric_name, n_queries), n_instances, verbose=verbose)

    def visualize(self) -> tuple[list[Figure], list[str]]:
        """One figure of the worst queries per metric (``OVERALL`` only by default), with titles."""
        if self.metrics_unreduced is None:
            raise RetrievalError("compute_metrics() first: there is nothing to visualize yet")
        figures, titles = [], []
        for name, value in _flatten(self.metrics_unreduced).items():
            if value.ndim == 0 or value.dtype == torch.bool:  # a count, or the mask of queries without relevant items
                continue
            if any(f"/{m}/" in f"/{name}/" for m in self.metrics_to_exclude_from_visualization):
                continue
            if self.visualize_only_overall_category and not name.startswith(OVERALL_CATEGORIES_KEY):
                continue
            figures.append(self.get_plot_for_worst_queries(name, LOG_TOPK_ROWS_PER_METRIC, LOG_TOPK_IMAGES_PER_ROW))
            titles.append(f"top {LOG_TOPK_ROWS_PER_METRIC} worst by {name}".replace("/", "_"))
        return figures, titles


def _take(values: Tensor | list[Any], positions: Tensor) -> Tensor | list[Any]:
    if isinstance(values, Tensor):
        return values[positions.to(values.device)]
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr[positions.cpu().numpy()].tolist()


def _flatten(metrics: Mapping[Any, Any], prefix: str = "") -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, name))
        else:
            out[name] = torch.as_tensor(value)
    return out


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


__all__ = ["AccumulatedItems", "EmbeddingMetrics"]
