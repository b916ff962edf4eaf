"""``RetrievalResults``: for each query, the retrieved gallery ids with their distances, and the relevant ids.

Stored as padded ``(Q, K)`` tensors (``-1`` / ``+inf`` where a query has fewer than ``K`` items), so every metric is
one vectorised expression; ``retrieved_ids``, ``distances`` and ``gt_ids`` give OML's ragged per-query view.

Ground truth is either explicit (ragged ``gt_ids``) or implicit: built from labels (``from_embeddings``), the relevant
items of a query are the gallery items with its label, except the excluded ones (itself, its sequence). The implicit
form never materialises the relevant ids unless ``gt_ids`` is read, so it also works when classes are huge.

Gallery ids are positions in the gallery (``0..G-1``) as in OML, or the store's ids for ``from_store``.
``query_item_ids`` / ``gallery_item_ids`` map queries and gallery positions back to item positions in the dataset
(or in what ``EmbeddingMetrics`` accumulated) when known, for postprocessors and visualisation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pprint import pformat
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from oml_core.retrieval._search import Groups, RetrievalError, Search, check_metric, exclusion_groups, factorize_pair

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from oml_core.protocols import EmbeddingStore


class _LabelGroundTruth:
    """Relevant = same label, minus the excluded pairs (same item, same sequence)."""

    def __init__(self, positives: Groups, exclude: Sequence[Groups]) -> None:
        self.positives = positives
        self.exclude = list(exclude)

    def n_gt(self) -> Tensor:
        # inclusion-exclusion over the exclusion groupings: |same label| - |same label and excluded|
        n = self.positives.counts().clone()
        k = len(self.exclude)
        for mask in range(1, 2**k):
            chosen = [g for i, g in enumerate(self.exclude) if mask >> i & 1]
            sign = -1 if bin(mask).count("1") % 2 else 1
            n += sign * self._joint([self.positives, *chosen]).counts()
        return n

    @staticmethod
    def _joint(groups: Sequence[Groups]) -> Groups:
        """Groups by the tuple of keys (pairs sharing every key)."""
        codes = torch.cat([groups[0].query_codes, groups[0].gallery_codes])
        for g in groups[1:]:
            other = torch.cat([g.query_codes, g.gallery_codes])
            codes = codes * (int(other.max()) + 1) + other
            codes = torch.from_numpy(pd.factorize(codes.numpy(), sort=False)[0].astype(np.int64))
        n_q = len(groups[0].query_codes)
        return Groups(codes[:n_q], codes[n_q:])

    def is_correct(self, ids: Tensor) -> Tensor:
        valid = ids >= 0
        safe = ids.clamp_min(0).cpu()
        correct = self.positives.gallery_codes[safe] == self.positives.query_codes[:, None]
        for g in self.exclude:
            correct &= g.gallery_codes[safe] != g.query_codes[:, None]
        return (correct.to(ids.device)) & valid

    def gt_ids(self) -> tuple[Tensor, ...]:
        rows, cols = self.positives.pairs(0, len(self.positives.query_codes))
        keep = torch.ones(len(rows), dtype=torch.bool)
        for g in self.exclude:
            keep &= g.query_codes[rows] != g.gallery_codes[cols]
        rows, cols = rows[keep], cols[keep]
        counts = np.bincount(rows.numpy(), minlength=len(self.positives.query_codes))
        return tuple(torch.split(cols, counts.tolist()))


class RetrievalResults:
    """Per query: the retrieved gallery ids and distances (nearest first) and, if known, the relevant gallery ids.

    ``distances`` / ``retrieved_ids`` are ``(Q, K)`` tensors padded with ``+inf`` / ``-1``, or OML's lists of 1-D
    tensors (one per query, possibly of different lengths); ``gt_ids`` is a list of 1-D tensors or None.

    Example:
        >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [0.1], [5.0], [5.2]]), labels=torch.tensor([0, 0, 1, 1]),
        ...                                       n_items=2)
        >>> rr.retrieved_ids[0].tolist(), [round(d, 3) for d in rr.distances[0].tolist()], rr.gt_ids[0].tolist()
        ([1, 2], [0.1, 5.0], [1])
        >>> rr.is_correct()[:, 0].tolist()
        [True, True, True, True]
    """

    _max_elements_in_str_repr = 100

    def __init__(
        self,
        distances: Tensor | Sequence[Any],
        retrieved_ids: Tensor | Sequence[Any],
        gt_ids: Sequence[Any] | None = None,
        *,
        query_item_ids: Tensor | None = None,
        gallery_item_ids: Tensor | None = None,
        check_sorted: bool = True,
        metric: str | None = None,
        _label_gt: _LabelGroundTruth | None = None,
        _n_gt: Tensor | None = None,
        _exclude: Sequence[Groups] = (),
    ) -> None:
        self._distances, self._ids = _as_padded(distances, retrieved_ids)
        n_queries = len(self._ids)
        valid = self._ids >= 0
        if self._ids.shape[1] > 1 and bool((valid[:, 1:] & ~valid[:, :-1]).any()):
            row = int((valid[:, 1:] & ~valid[:, :-1]).any(dim=1).nonzero()[0])
            raise RetrievalError(f"retrieved ids of query {row} have padding (-1) before real ids; padding goes at the end")
        if check_sorted and self._distances.shape[1] > 1:
            unsorted = (self._distances[:, 1:] < self._distances[:, :-1]) & valid[:, 1:]
            if bool(unsorted.any()):
                row = int(unsorted.any(dim=1).nonzero()[0])
                raise RetrievalError(f"distances of query {row} are not sorted ascending: {self._distances[row].tolist()}")
        self._distances = torch.where(valid, self._distances, torch.full_like(self._distances, float("inf")))
        self._label_gt = _label_gt
        self._gt_cache: tuple[Tensor, ...] | None = None
        self._gt_flat: Tensor | None = None
        self._gt_rows: Tensor | None = None
        self._n_gt: Tensor | None = _n_gt
        if gt_ids is not None:
            if len(gt_ids) != n_queries:
                raise RetrievalError(f"gt_ids has {len(gt_ids)} entries but there are {n_queries} queries")
            rows = [torch.as_tensor(g, dtype=torch.long).reshape(-1) for g in gt_ids]
            self._gt_cache = tuple(rows)
            counts = torch.tensor([len(r) for r in rows], dtype=torch.long)
            self._gt_flat = torch.cat(rows) if rows else torch.empty(0, dtype=torch.long)
            self._gt_rows = torch.repeat_interleave(torch.arange(n_queries), counts)
            self._n_gt = counts
            if bool((counts == 0).any()):
                warnings.warn("Some of the queries don't have available gts.", stacklevel=2)
        elif _label_gt is not None and self._n_gt is None:
            self._n_gt = _label_gt.n_gt()
        self.query_item_ids = query_item_ids
        self.gallery_item_ids = gallery_item_ids
        #: the distance the results were searched with (None when built from given distances or a store)
        self.metric = metric
        self._exclude = list(_exclude)

    # -------------------------------------------------------------------------------------------- views
    @property
    def padded_ids(self) -> Tensor:
        """``(Q, K)`` retrieved gallery ids, nearest first, ``-1`` where there is none."""
        return self._ids

    @property
    def padded_distances(self) -> Tensor:
        """``(Q, K)`` distances, ascending, ``+inf`` where there is no item."""
        return self._distances

    @property
    def n_retrieved(self) -> Tensor:
        """``(Q,)`` number of items retrieved for each query."""
        return (self._ids >= 0).sum(dim=1).cpu()

    @property
    def n_retrieved_items(self) -> int:
        """The largest number of items retrieved for a query (OML's name)."""
        return int(self.n_retrieved.max()) if len(self) else 0

    @property
    def retrieved_ids(self) -> tuple[Tensor, ...]:
        """OML's view: one 1-D LongTensor of retrieved gallery ids per query."""
        return tuple(row[:n] for row, n in zip(self._ids.cpu(), self.n_retrieved.tolist()))

    @property
    def distances(self) -> tuple[Tensor, ...]:
        """OML's view: one 1-D tensor of (sorted) distances per query."""
        return tuple(row[:n] for row, n in zip(self._distances.cpu(), self.n_retrieved.tolist()))

    @property
    def gt_ids(self) -> tuple[Tensor, ...] | None:
        """One 1-D LongTensor of relevant gallery ids per query, or None when the ground truth is unknown."""
        if self._gt_cache is None and self._label_gt is not None:
            self._gt_cache = self._label_gt.gt_ids()
        return self._gt_cache

    @property
    def n_gt(self) -> Tensor | None:
        """``(Q,)`` number of relevant gallery items of each query, or None."""
        return self._n_gt

    def __len__(self) -> int:
        return len(self._ids)

    def is_empty(self) -> bool:
        return not bool((self._ids >= 0).any())

    def is_correct(self) -> Tensor:
        """``(Q, K)`` bool: is the ``j``-th retrieved item of query ``i`` relevant (False on padding)."""
        if self._label_gt is not None:
            return self._label_gt.is_correct(self._ids).cpu()
        if self._gt_flat is None or self._gt_rows is None:
            raise RetrievalError("these retrieval results have no ground truth (labels or gt_ids)")
        ids = self._ids.cpu()
        span = int(max(int(ids.max()) if ids.numel() else 0, int(self._gt_flat.max()) if len(self._gt_flat) else 0)) + 2
        rows = torch.arange(len(ids))[:, None]
        keys = rows * span + ids + 1
        gt_keys = self._gt_rows * span + self._gt_flat + 1
        return torch.isin(keys, gt_keys) & (ids >= 0)

    def with_retrieved(self, retrieved_ids: Tensor, distances: Tensor, *, sort: bool = True) -> RetrievalResults:
        """A copy with new retrieved ids and distances (padded ``(Q, K')``) and the same ground truth and items;
        with ``sort``, rows are ordered by (distance, id), which is what a re-ranking postprocessor wants."""
        if retrieved_ids.shape != distances.shape or len(retrieved_ids) != len(self):
            raise RetrievalError(
                f"with_retrieved needs ids and distances of shape ({len(self)}, k), "
                f"got {tuple(retrieved_ids.shape)} and {tuple(distances.shape)}"
            )
        ids = retrieved_ids.long()
        dist = torch.where(ids >= 0, distances, torch.full_like(distances, float("inf")))
        if sort and ids.shape[1] > 1:
            order = torch.argsort(
                torch.where(ids >= 0, ids, torch.full_like(ids, torch.iinfo(torch.long).max)), dim=1, stable=True
            )
            ids, dist = ids.gather(1, order), dist.gather(1, order)
            order = torch.argsort(dist, dim=1, stable=True)
            ids, dist = ids.gather(1, order), dist.gather(1, order)
        out = RetrievalResults.__new__(RetrievalResults)
        out.__dict__.update(self.__dict__)
        out._ids, out._distances = ids, dist
        return out

    def search_again(
        self, queries: Tensor, gallery: Tensor, k: int | None = None, *, chunk_size: int | None = None
    ) -> RetrievalResults:
        """Search ``gallery`` ``(G, D)`` again with new query vectors ``(Q, D)`` (e.g. expanded queries), with the same
        metric and the same exclusions (the query itself, its sequence); the ground truth and items are kept.

        Example:
            >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [1.0], [3.0]]), labels=[0, 0, 1], n_items=1)
            >>> rr.search_again(torch.tensor([[2.9], [2.9], [0.0]]), torch.tensor([[0.0], [1.0], [3.0]])).retrieved_ids
            (tensor([2]), tensor([2]), tensor([0]))
        """
        if self.metric is None:
            raise RetrievalError("these retrieval results were not searched from embeddings, so they cannot be searched again")
        if len(queries) != len(self):
            raise RetrievalError(f"search_again needs one query vector per query ({len(self)}), got {len(queries)}")
        n_items = k if k is not None else max(1, self._ids.shape[1])
        search = Search(queries, gallery, metric=self.metric, chunk_size=chunk_size, exclude=self._exclude)
        raw, ids = search.run(n_items)
        return self.with_retrieved(ids, search.to_final(raw), sort=False)

    def deepcopy(self) -> RetrievalResults:
        out = RetrievalResults.__new__(RetrievalResults)
        out.__dict__.update(self.__dict__)
        out._ids, out._distances = self._ids.clone(), self._distances.clone()
        return out

    def __str__(self) -> str:
        m = self._max_elements_in_str_repr
        text = (
            f"Maximum number of retrieved items: {self.n_retrieved_items}.\n"
            f"Distances to the retrieved items:\n{pformat(self.distances[:m])}.\n"
            f"Ids of the retrieved gallery items:\n{pformat(self.retrieved_ids[:m])}.\n"
        )
        gt = self.gt_ids
        if gt is None:
            return text + "Ground truths are unknown.\n"
        return text + f"Ground truth gallery ids are:\n{pformat([g.tolist() for g in gt[:m]])}.\n"

    def __repr__(self) -> str:
        return f"RetrievalResults({len(self)} queries, up to {self.n_retrieved_items} retrieved each)"

    # -------------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_embeddings(
        cls,
        embeddings: Tensor,
        dataset: Any = None,
        *,
        labels: Any = None,
        is_query: Any = None,
        is_gallery: Any = None,
        sequences: Any = None,
        n_items: int = 100,
        metric: str = "euclidean",
        chunk_size: int | None = None,
        verbose: bool = False,
    ) -> RetrievalResults:
        """Search the gallery items for every query item among ``embeddings`` ``(N, D)`` (one row per item).

        Queries and gallery come from ``dataset`` (``get_query_ids()``, ``get_gallery_ids()``, ``get_labels()`` and
        ``extra_data["sequence"]`` when it has them) or from the ``is_query`` / ``is_gallery`` masks (default: every
        item is both: 1-vs-rest). An item never retrieves itself, nor items of its ``sequence``. ``labels`` give the
        ground truth. At most ``n_items`` items are kept per query.

        Example:
            >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [1.0], [3.0]]), is_query=[True, True, False],
            ...                                       is_gallery=[False, True, True], n_items=1)
            >>> rr.retrieved_ids, rr.query_item_ids.tolist(), rr.gallery_item_ids.tolist()
            ((tensor([0]), tensor([1])), [0, 1], [1, 2])
        """
        rr, _ = cls._search_items(
            embeddings,
            dataset,
            labels=labels,
            is_query=is_query,
            is_gallery=is_gallery,
            sequences=sequences,
            n_items=n_items,
            metric=metric,
            chunk_size=chunk_size,
        )
        return rr

    @classmethod
    def _search_items(
        cls,
        embeddings: Tensor,
        dataset: Any = None,
        *,
        labels: Any = None,
        is_query: Any = None,
        is_gallery: Any = None,
        sequences: Any = None,
        n_items: int = 100,
        metric: str = "euclidean",
        chunk_size: int | None = None,
        fmr_vals: Sequence[float] = (),
        at_least_n_gt: bool = False,
    ) -> tuple[RetrievalResults, dict[float, float]]:
        check_metric(metric)
        if not isinstance(n_items, int) or n_items < 1:
            raise RetrievalError(f"n_items must be a positive int, got {n_items!r}")
        emb = torch.as_tensor(embeddings) if not isinstance(embeddings, Tensor) else embeddings
        n = len(emb)
        if dataset is not None:
            if len(dataset) != n:
                raise RetrievalError(f"got {n} embeddings for a dataset of {len(dataset)} items")
            query_pos = torch.as_tensor(dataset.get_query_ids(), dtype=torch.long)
            gallery_pos = torch.as_tensor(dataset.get_gallery_ids(), dtype=torch.long)
            if labels is None:
                labels = dataset_labels(dataset)
            if sequences is None:
                sequences = dataset_sequences(dataset)
        else:
            query_pos = _positions(is_query, n, "is_query")
            gallery_pos = _positions(is_gallery, n, "is_gallery")
        seq = _item_values(sequences, n, "sequences")
        lab = _item_values(labels, n, "labels")
        both = bool(np.intersect1d(query_pos.numpy(), gallery_pos.numpy()).size)
        exclude = exclusion_groups(
            query_ids=query_pos if both else None,
            gallery_ids=gallery_pos if both else None,
            query_sequences=_take_items(seq, query_pos),
            gallery_sequences=_take_items(seq, gallery_pos),
        )
        device_pos_q, device_pos_g = query_pos.to(emb.device), gallery_pos.to(emb.device)
        search = Search(emb[device_pos_q], emb[device_pos_g], metric=metric, chunk_size=chunk_size, exclude=exclude)
        label_gt = None
        if lab is not None:
            positives = Groups.build(_take_items(lab, query_pos), _take_items(lab, gallery_pos), what="labels")
            label_gt = _LabelGroundTruth(positives, exclude)
        n_gt = label_gt.n_gt() if label_gt is not None else None
        if at_least_n_gt and n_gt is not None and len(n_gt):
            n_items = max(n_items, int(n_gt.max()))
        hooks = []
        stream = None
        if fmr_vals:
            if label_gt is None:
                raise RetrievalError("fnmr@fmr needs labels")
            from oml_core.retrieval._fnmr import FnmrStream

            stream = FnmrStream(search, label_gt.positives, fmr_vals)
            hooks.append(stream.hook)
        raw, ids = search.run(n_items, hooks=hooks)
        fnmr = stream.result() if stream is not None else {}
        rr = cls(
            search.to_final(raw),
            ids,
            query_item_ids=query_pos,
            gallery_item_ids=gallery_pos,
            check_sorted=False,
            metric=metric,
            _label_gt=label_gt,
            _n_gt=n_gt,
            _exclude=exclude,
        )
        return rr, fnmr

    @classmethod
    def from_embeddings_qg(
        cls,
        embeddings_query: Tensor,
        embeddings_gallery: Tensor,
        dataset_query: Any = None,
        dataset_gallery: Any = None,
        *,
        query_labels: Any = None,
        gallery_labels: Any = None,
        query_sequences: Any = None,
        gallery_sequences: Any = None,
        n_items: int = 100,
        metric: str = "euclidean",
        chunk_size: int | None = None,
        verbose: bool = False,
    ) -> RetrievalResults:
        """Queries and gallery given separately (no item is both, so only ``sequences`` exclude pairs).

        OML 4's shape ``from_embeddings_qg(embeddings_query, embeddings_gallery, dataset_query, dataset_gallery,
        n_items=100)`` takes labels and sequences from the two datasets when they have them (``get_labels()``,
        ``get_sequences()`` or ``extra_data["sequence"]``).

        Example:
            >>> rr = RetrievalResults.from_embeddings_qg(torch.tensor([[0.0]]), torch.tensor([[2.0], [1.0]]), n_items=2)
            >>> rr.retrieved_ids[0].tolist()
            [1, 0]
        """
        for dataset, embeddings, what in (
            (dataset_query, embeddings_query, "query"),
            (dataset_gallery, embeddings_gallery, "gallery"),
        ):
            if dataset is not None and len(dataset) != len(embeddings):
                raise RetrievalError(f"got {len(embeddings)} {what} embeddings for a {what} dataset of {len(dataset)} items")
        if dataset_query is not None and dataset_gallery is not None and query_labels is None and gallery_labels is None:
            query_labels, gallery_labels = dataset_labels(dataset_query), dataset_labels(dataset_gallery)
            if query_labels is None or gallery_labels is None:
                query_labels = gallery_labels = None
        if dataset_query is not None and query_sequences is None:
            query_sequences = dataset_sequences(dataset_query)
        if dataset_gallery is not None and gallery_sequences is None:
            gallery_sequences = dataset_sequences(dataset_gallery)
        if (query_sequences is None) != (gallery_sequences is None):
            query_sequences = gallery_sequences = None  # OML 4: a sequence only excludes items of the same sequence
        exclude = exclusion_groups(query_sequences=query_sequences, gallery_sequences=gallery_sequences)
        search = Search(embeddings_query, embeddings_gallery, metric=metric, chunk_size=chunk_size, exclude=exclude)
        label_gt = None
        if (query_labels is None) != (gallery_labels is None):
            raise RetrievalError("give both query_labels and gallery_labels, or neither")
        if query_labels is not None:
            label_gt = _LabelGroundTruth(Groups.build(query_labels, gallery_labels, what="labels"), exclude)
        raw, ids = search.run(n_items)
        return cls(search.to_final(raw), ids, check_sorted=False, metric=metric, _label_gt=label_gt, _exclude=exclude)

    @classmethod
    def from_store(
        cls,
        store: EmbeddingStore,
        queries: Tensor,
        k: int = 100,
        *,
        gt_ids: Sequence[Any] | None = None,
        query_ids: Sequence[int] | Tensor | None = None,
        filter: dict[str, Any] | None = None,
    ) -> RetrievalResults:
        """Search an embedding store (``store.search(queries, k) -> (ids, distances)``); ids are the store's.

        ``query_ids`` (the store ids of the queries, when they are stored too) keeps a query from retrieving itself;
        ``gt_ids`` (store ids per query) gives the ground truth.

        Example:
            >>> class Store:  # any EmbeddingStore
            ...     def search(self, queries, k, filter=None):
            ...         return torch.tensor([[7, 3, -1]]), torch.tensor([[0.0, 0.5, float("inf")]])
            >>> rr = RetrievalResults.from_store(Store(), torch.zeros(1, 4), k=2, query_ids=[7], gt_ids=[[3]])
            >>> rr.retrieved_ids[0].tolist(), rr.is_correct().tolist()
            ([3], [[True, False]])
        """
        if not isinstance(k, int) or k < 1:
            raise RetrievalError(f"k must be a positive int, got {k!r}")
        extra = 1 if query_ids is not None else 0
        result = store.search(queries, k + extra) if filter is None else store.search(queries, k + extra, filter=filter)
        ids, dist = (torch.as_tensor(x) for x in result)
        ids, dist = ids.long().cpu(), dist.float().cpu()
        if ids.ndim != 2 or ids.shape != dist.shape or len(ids) != len(queries):
            raise RetrievalError(
                f"store.search returned ids {tuple(ids.shape)} and distances {tuple(dist.shape)} for {len(queries)} queries"
            )
        if query_ids is not None:
            own = torch.as_tensor(query_ids, dtype=torch.long).reshape(-1, 1)
            if len(own) != len(ids):
                raise RetrievalError(f"query_ids has {len(own)} entries but there are {len(ids)} queries")
            ids = torch.where(ids == own, torch.full_like(ids, -1), ids)
        dist = torch.where(ids >= 0, dist, torch.full_like(dist, float("inf")))
        # push padding (-1) to the end, keeping order, then keep k
        order = torch.argsort((ids < 0).int(), dim=1, stable=True)
        ids, dist = ids.gather(1, order)[:, :k], dist.gather(1, order)[:, :k]
        return cls(dist, ids, gt_ids, check_sorted=False)

    # -------------------------------------------------------------------------------------------- worst & visualise
    def worst_queries(self, metric: str = "map", k: int = 5, n_queries: int = 5) -> Tensor:
        """Indices of the ``n_queries`` queries with the lowest ``metric@k`` (``cmc``, ``precision``, ``map``,
        ``mrr``; ``map_at_r`` and ``r_precision`` ignore ``k``), worst first, ties by query index; NaN counts as worst.

        Example:
            >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [0.1], [0.2], [5.0]]), labels=[0, 0, 1, 1])
            >>> rr.worst_queries("cmc", k=1, n_queries=2).tolist()  # query 2 (at 0.2) finds 0.1 of the other label
            [2, 0]
        """
        from oml_core.retrieval.metrics import calc_retrieval_metrics_rr

        if metric in ("map_at_r", "r_precision"):
            values = calc_retrieval_metrics_rr(
                self,
                cmc_top_k=(),
                precision_top_k=(),
                map_top_k=(),
                reduce=False,
                map_at_r=metric == "map_at_r",
                r_precision=metric == "r_precision",
            )[metric]["R"]
        elif metric in ("cmc", "precision", "map", "mrr"):
            kwargs: dict[str, Any] = {"cmc_top_k": (), "precision_top_k": (), "map_top_k": ()}
            kwargs[f"{metric}_top_k"] = (k,)
            values = calc_retrieval_metrics_rr(self, reduce=False, **kwargs)[metric][k]
        else:
            raise RetrievalError(f"unknown metric {metric!r}; use cmc, precision, map, mrr, map_at_r or r_precision")
        values = torch.nan_to_num(values.double(), nan=-1.0)
        order = torch.argsort(values, stable=True)
        return order[: min(n_queries, len(order))]

    def visualize(
        self,
        query_ids: Sequence[int] | Tensor,
        dataset: Any = None,
        *,
        images: Sequence[Any] | Callable[[int], Any] | None = None,
        n_galleries_to_show: int = 5,
        n_gt_to_show: int = 0,
        path: str | None = None,
        show: bool = False,
        verbose: bool = False,
    ) -> Figure:
        """Draw each query (blue frame) and its top ``n_galleries_to_show`` gallery items (green frame if relevant, red
        if not, black if the ground truth is unknown), then ``n_gt_to_show`` relevant items (gray); save to ``path``
        (PNG) when given. Needs matplotlib (``pip install oml-core[viz]``).

        Images come from ``images`` (one per item: paths, arrays, PIL images or CHW tensors; or a function
        ``item -> image``), else from ``dataset``: its ``visualize(item, color)`` (OML's datasets) or its paths
        (``get_paths()``, ``paths``, or ``dataset["paths"]`` for what EmbeddingMetrics accumulated).
        Items are ``query_item_ids[q]`` / ``gallery_item_ids[g]`` when known, else the query / gallery ids themselves.
        """
        from oml_core.retrieval.visualize import draw_retrieval

        if verbose:
            print(f"Visualizing {n_galleries_to_show} for the following query ids: {list(map(int, query_ids))}.")
        return draw_retrieval(
            self,
            [int(q) for q in query_ids],
            dataset=dataset,
            images=images,
            n_galleries_to_show=n_galleries_to_show,
            n_gt_to_show=n_gt_to_show,
            path=path,
            show=show,
        )

    def visualize_qg(
        self,
        query_ids: Sequence[int] | Tensor,
        dataset_query: Any = None,
        dataset_gallery: Any = None,
        *,
        query_images: Sequence[Any] | Callable[[int], Any] | None = None,
        gallery_images: Sequence[Any] | Callable[[int], Any] | None = None,
        n_galleries_to_show: int = 5,
        n_gt_to_show: int = 2,
        path: str | None = None,
        show: bool = False,
        verbose: bool = False,
    ) -> Figure:
        """OML 4's ``visualize_qg``: like :meth:`visualize` for results of :meth:`from_embeddings_qg`, whose queries
        and gallery items come from two datasets (query ``q`` is item ``q`` of ``dataset_query``, gallery item ``g``
        item ``g`` of ``dataset_gallery``)."""
        from oml_core.retrieval.visualize import draw_retrieval, image_source

        if dataset_query is not None and len(dataset_query) != len(self):
            raise RetrievalError(f"the results have {len(self)} queries but dataset_query has {len(dataset_query)} items")
        if verbose:
            print(f"Visualizing {n_galleries_to_show} for the following query ids: {list(map(int, query_ids))}.")
        return draw_retrieval(
            self,
            [int(q) for q in query_ids],
            dataset=dataset_query,
            images=query_images,
            n_galleries_to_show=n_galleries_to_show,
            n_gt_to_show=n_gt_to_show,
            path=path,
            show=show,
            gallery_source=image_source(dataset_gallery, gallery_images),
        )

    def visualize_as_html(
        self,
        query_ids: Sequence[int] | Tensor,
        dataset: Any = None,
        *,
        images: Sequence[Any] | Callable[[int], Any] | None = None,
        dataset_gallery: Any = None,
        gallery_images: Sequence[Any] | Callable[[int], Any] | None = None,
        n_galleries_to_show: int = 3,
        n_gt_to_show: int = 2,
        path: str | None = None,
        title: str = "Retrieval results",
        show: bool = False,
    ) -> str:
        """The queries ``query_ids`` and their nearest gallery items as one self-contained HTML page (images embedded
        as PNG), returned as a string and written to ``path`` when given. Images come from ``dataset`` / ``images``
        as in :meth:`visualize`; for results of :meth:`from_embeddings_qg` pass the gallery's as ``dataset_gallery``
        / ``gallery_images``. ``show=True`` displays it in a notebook (IPython), if there is one.

        Example:
            >>> import numpy as np
            >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [0.1], [5.0]]), labels=[0, 0, 1], n_items=2)
            >>> page = rr.visualize_as_html([0], images=[np.zeros((8, 8, 3), np.uint8)] * 3)
            >>> page.count("<img"), "Gallery #1 - 0.100" in page
            (4, True)
        """
        from oml_core.retrieval.html import retrieval_html
        from oml_core.retrieval.visualize import image_source

        query_source = image_source(dataset, images)
        separate = dataset_gallery is not None or gallery_images is not None
        page = retrieval_html(
            self,
            [int(q) for q in query_ids],
            query_source,
            image_source(dataset_gallery, gallery_images) if separate else query_source,
            n_galleries_to_show=n_galleries_to_show,
            n_gt_to_show=n_gt_to_show,
            title=title,
        )
        if path is not None:
            from pathlib import Path

            Path(path).write_text(page, encoding="utf-8")
        if show:
            try:
                from IPython.display import HTML, display
            except ImportError:
                pass
            else:
                display(HTML(page))
        return page

    def visualize_worst(
        self,
        metric: str = "map",
        k: int = 5,
        n_queries: int = 5,
        dataset: Any = None,
        *,
        images: Sequence[Any] | Callable[[int], Any] | None = None,
        n_galleries_to_show: int = 5,
        path: str | None = None,
    ) -> Figure:
        """``visualize`` the ``n_queries`` worst queries by ``metric@k`` (see :meth:`worst_queries`)."""
        worst = self.worst_queries(metric, k, n_queries)
        return self.visualize(worst, dataset, images=images, n_galleries_to_show=n_galleries_to_show, path=path)


# ---------------------------------------------------------------------------------------------- helpers
def dataset_labels(dataset: Any) -> Any:
    """The labels of a dataset (``get_labels()``), or None when it has none (an unlabeled dataset).

    Example:
        >>> class Unlabeled: ...
        >>> dataset_labels(Unlabeled()) is None
        True
    """
    get_labels = getattr(dataset, "get_labels", None)
    if not callable(get_labels):
        return None
    try:
        return get_labels()
    except Exception:  # noqa: BLE001 - unlabeled datasets may raise anything here; then there is no ground truth
        return None


def dataset_sequences(dataset: Any) -> Any:
    """The sequence of each item of a dataset: ``get_sequences()`` (this project's datasets), else OML 4's
    ``extra_data["sequence"]``; None when the dataset has no sequences.

    Example:
        >>> class OML4Style:
        ...     extra_data = {"sequence": ["a", "a", "b"]}
        >>> dataset_sequences(OML4Style())
        ['a', 'a', 'b']
    """
    get_sequences = getattr(dataset, "get_sequences", None)
    if callable(get_sequences):
        sequences = get_sequences()
        if sequences is not None:
            return sequences
    extra = getattr(dataset, "extra_data", None) or {}
    return extra.get("sequence")


def dataset_categories(dataset: Any) -> Any:
    """The category of each item of a dataset: ``get_categories()``, else OML 4's ``extra_data["category"]``; None
    when it has none.

    Example:
        >>> class OML4Style:
        ...     extra_data = {"category": ["shoes", "bags"]}
        >>> dataset_categories(OML4Style())
        ['shoes', 'bags']
    """
    get_categories = getattr(dataset, "get_categories", None)
    if callable(get_categories):
        categories = get_categories()
        if categories is not None:
            return categories
    extra = getattr(dataset, "extra_data", None) or {}
    return extra.get("category")


def _as_padded(distances: Tensor | Sequence[Any], retrieved_ids: Tensor | Sequence[Any]) -> tuple[Tensor, Tensor]:
    if isinstance(retrieved_ids, Tensor) and retrieved_ids.ndim == 2:
        ids = retrieved_ids.long()
        dist = torch.as_tensor(distances) if not isinstance(distances, Tensor) else distances
        if dist.shape != ids.shape:
            raise RetrievalError(f"distances {tuple(dist.shape)} and retrieved_ids {tuple(ids.shape)} must have the same shape")
        return dist.float() if not dist.is_floating_point() else dist, ids
    id_rows = [torch.as_tensor(r, dtype=torch.long).reshape(-1) for r in retrieved_ids]
    dist_rows = [torch.as_tensor(d).reshape(-1) for d in distances]
    if len(id_rows) != len(dist_rows):
        raise RetrievalError(f"got distances for {len(dist_rows)} queries but retrieved ids for {len(id_rows)}")
    for i, (d, r) in enumerate(zip(dist_rows, id_rows)):
        if len(d) != len(r):
            raise RetrievalError(f"query {i} has {len(d)} distances but {len(r)} retrieved ids")
    if not id_rows:
        return torch.zeros((0, 0)), torch.zeros((0, 0), dtype=torch.long)
    ids = torch.nn.utils.rnn.pad_sequence(id_rows, batch_first=True, padding_value=-1)
    dist_rows = [d.float() if not d.is_floating_point() else d for d in dist_rows]
    dist = torch.nn.utils.rnn.pad_sequence(dist_rows, batch_first=True, padding_value=float("inf"))
    return dist, ids


def _positions(mask: Any, n: int, what: str) -> Tensor:
    if mask is None:
        return torch.arange(n)
    m = torch.as_tensor(np.asarray(mask.cpu() if isinstance(mask, Tensor) else mask))
    if m.ndim != 1 or len(m) != n:
        raise RetrievalError(f"{what} must have one value per item ({n}), got shape {tuple(m.shape)}")
    return m.bool().nonzero().squeeze(1)


def _item_values(values: Any, n: int, what: str) -> Any:
    if values is None:
        return None
    if isinstance(values, Tensor):
        out: Any = values.detach().cpu()
    elif isinstance(values, np.ndarray):
        out = values
    else:
        out = list(values)
    if len(out) != n:
        raise RetrievalError(f"{what} must have one value per item ({n}), got {len(out)}")
    return out


def _take_items(values: Any, positions: Tensor) -> Any:
    if values is None:
        return None
    if isinstance(values, Tensor):
        return values[positions]
    if isinstance(values, np.ndarray):
        return values[positions.numpy()]
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr[positions.numpy()]


__all__ = ["RetrievalResults", "factorize_pair"]
