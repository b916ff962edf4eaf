"""Exact nearest-neighbour search over queries x gallery in chunks of queries, keeping only the top-k.

One pass computes the distances of a chunk of queries to the whole gallery with one GEMM into a reused buffer,
excludes pairs (the same item, the same sequence) by setting them to ``+inf``, keeps the top-k of each row and hands
the block to optional hooks (FNMR@FMR's streaming statistics use them), so no Q x G matrix is ever held.

Distances (``metric``), in the "raw" domain used for ranking and the final one reported:

- ``euclidean``: raw = ``|q|^2 + |g|^2 - 2 q.g`` computed as ``torch.cdist`` does (one GEMM of the augmented
  matrices ``[-2q, |q|^2, 1]`` and ``[g, 1, |g|^2]``), final = ``sqrt(max(raw, 1e-30))`` - as OML's ``pairwise_dist``;
- ``cosine``: raw = ``-cos(q, g)``, final = ``1 - cos(q, g)``;
- ``dot``: raw = final = ``-q.g`` (a larger dot product is closer).

The raw-to-final maps are monotone, so ranking by raw values equals ranking by final values; ties are broken by the
gallery position (the smaller first), deterministically, whatever the chunking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from oml_core.distances import normalise
from oml_core.errors import OMLError

Metric = Literal["euclidean", "cosine", "dot"]
METRICS: tuple[str, ...] = ("euclidean", "cosine", "dot")

#: Bytes of the distance block of one chunk (queries x gallery) when ``chunk_size`` is not given.
BLOCK_BYTES_CPU = 192 * 2**20
BLOCK_BYTES_CUDA = 512 * 2**20
#: Gallery tile for the two-stage top-k (minimum of each tile, then the top-k inside the best tiles).
TILE = 128

BlockHook = Callable[[int, int, Tensor], None]


class RetrievalError(OMLError):
    """Bad input to the retrieval functions (shapes, devices, non-finite embeddings, unknown metric...)."""


# ---------------------------------------------------------------------------------------------- grouping
def factorize_pair(query_keys: Any, gallery_keys: Any, *, what: str) -> tuple[Tensor, Tensor]:
    """Codes ``(Q,)``, ``(G,)`` (int64, on CPU) such that equal keys get equal codes across both sides.

    Keys are tensors, arrays or sequences of hashables (e.g. strings of a ``sequence`` column); NaN is a key too.
    """
    q = _as_key_array(query_keys, what=f"query {what}")
    g = _as_key_array(gallery_keys, what=f"gallery {what}")
    if q.dtype.kind in "biuf" and g.dtype.kind in "biuf":
        both = np.concatenate([q, g])
    else:
        both = np.concatenate([q.astype(object), g.astype(object)])
    # pandas' hash-based factorize: O(n), unlike torch.unique on CPU which is very slow on some inputs
    codes_np, _ = pd.factorize(both, sort=False, use_na_sentinel=False)
    codes = torch.from_numpy(np.ascontiguousarray(codes_np, dtype=np.int64))
    return codes[: len(q)].clone(), codes[len(q) :].clone()


def _as_key_array(keys: Any, *, what: str) -> np.ndarray:
    if isinstance(keys, Tensor):
        arr = keys.detach().cpu().numpy()
    elif isinstance(keys, np.ndarray):
        arr = keys
    else:
        arr = np.asarray(list(keys), dtype=object)
        if len(arr) and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in arr):
            arr = arr.astype(np.int64)
    if arr.ndim != 1:
        raise RetrievalError(f"{what} must be one-dimensional (one value per item), got shape {arr.shape}")
    return arr


class Groups:
    """For each query, the gallery positions that share its key (same id, same sequence or same label), as CSR.

    Example:
        >>> g = Groups.build(torch.tensor([1, 2]), torch.tensor([2, 1, 2]), what="labels")
        >>> rows, cols = g.pairs(0, 2)
        >>> rows.tolist(), cols.tolist(), g.counts().tolist()
        ([0, 1, 1], [1, 0, 2], [1, 2])
    """

    def __init__(self, query_codes: Tensor, gallery_codes: Tensor) -> None:
        self.query_codes = query_codes.long().cpu()
        self.gallery_codes = gallery_codes.long().cpu()
        # the index arithmetic runs in numpy: torch's small CPU ops (repeat_interleave, unique) are much slower
        self._q = self.query_codes.numpy()
        g = self.gallery_codes.numpy()
        n_codes = max(int(self._q.max(initial=-1)), int(g.max(initial=-1))) + 1
        self._members = np.argsort(g, kind="stable")
        self._per_code = np.bincount(g, minlength=n_codes)
        self._offsets = np.zeros(n_codes + 1, dtype=np.int64)
        np.cumsum(self._per_code, out=self._offsets[1:])

    @classmethod
    def build(cls, query_keys: Any, gallery_keys: Any, *, what: str) -> Groups:
        q, g = factorize_pair(query_keys, gallery_keys, what=what)
        return cls(q, g)

    def counts(self) -> Tensor:
        """``(Q,)`` number of gallery items sharing each query's key."""
        return torch.from_numpy(self._per_code[self._q].astype(np.int64))

    def pairs(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """``(rows, cols)`` of every (query, gallery) pair sharing a key, for queries ``start:stop`` (rows relative)."""
        codes = self._q[start:stop]
        counts = self._per_code[codes]
        total = int(counts.sum())
        if total == 0:
            empty = torch.empty(0, dtype=torch.long)
            return empty, empty
        rows = np.repeat(np.arange(len(codes)), counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = self._members[np.repeat(self._offsets[codes], counts) + within]
        return torch.from_numpy(rows), torch.from_numpy(cols)


# ---------------------------------------------------------------------------------------------- the search
def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise RetrievalError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def _check_embeddings(x: Any, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as exc:
            raise RetrievalError(f"{what} must be a 2-D float tensor (N, D), got {type(x).__name__}") from exc
    if x.ndim != 2:
        raise RetrievalError(f"{what} must be a 2-D tensor (N, D), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    x = x.detach()
    if x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).nonzero()[0])
        raise RetrievalError(f"{what} contain NaN or infinite values (first at row {bad}); distances would be meaningless")
    return x


class Search:
    """The chunked pass; ``run(k, hooks)`` returns the top-k ``(raw distances, gallery positions)``.

    ``exclude`` lists groupings whose pairs are excluded (the same item, the same sequence).
    """

    def __init__(
        self,
        queries: Any,
        gallery: Any,
        *,
        metric: str = "euclidean",
        chunk_size: int | None = None,
        exclude: Sequence[Groups] = (),
    ) -> None:
        check_metric(metric)
        q = _check_embeddings(queries, "queries")
        g = _check_embeddings(gallery, "gallery embeddings")
        if q.shape[1] != g.shape[1]:
            raise RetrievalError(f"queries have dimension {q.shape[1]} but the gallery has {g.shape[1]}")
        if q.device != g.device:
            raise RetrievalError(f"queries are on {q.device} but the gallery is on {g.device}; put both on one device")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise RetrievalError(f"chunk_size must be a positive int, got {chunk_size!r}")
        dtype = torch.promote_types(q.dtype, g.dtype)
        q, g = q.to(dtype), g.to(dtype)
        self.metric = metric
        self.device = q.device
        self.dtype = dtype
        self.n_queries, self.n_gallery = len(q), len(g)
        self.exclude = list(exclude)

        self.tiled = self.n_gallery >= 16 * TILE
        multiple = TILE if self.tiled else 8
        self.padded = max(multiple, -(-self.n_gallery // multiple) * multiple)
        self.q_aug, self.g_aug = self._augment(q, g)
        if chunk_size is None:
            budget = BLOCK_BYTES_CUDA if self.device.type == "cuda" else BLOCK_BYTES_CPU
            chunk_size = max(16, min(4096, budget // (self.padded * q.element_size())))
        self.chunk_size = int(chunk_size)

    def _augment(self, q: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        n_pad = self.padded - len(g)
        inf = torch.full((n_pad, 1), float("inf"), dtype=g.dtype, device=g.device)
        zeros = torch.zeros((n_pad, g.shape[1] + 1), dtype=g.dtype, device=g.device)
        if self.metric == "euclidean":
            # exactly torch.cdist's "use_mm" formulation, so that distances equal OML's pairwise_dist
            q_norm = q.pow(2).sum(dim=-1, keepdim=True)
            g_norm = g.pow(2).sum(dim=-1, keepdim=True)
            q_aug = torch.cat([q.mul(-2), q_norm, torch.ones_like(q_norm)], dim=-1)
            g_aug = torch.cat([g, torch.ones_like(g_norm), g_norm], dim=-1)
            pad = torch.cat([zeros, inf], dim=-1)
        else:
            if self.metric == "cosine":
                q, g = normalise(q), normalise(g)
            q_aug = torch.cat([-q, torch.ones((len(q), 1), dtype=q.dtype, device=q.device)], dim=-1)
            g_aug = torch.cat([g, torch.zeros((len(g), 1), dtype=g.dtype, device=g.device)], dim=-1)
            pad = torch.cat([zeros[:, :-1], inf], dim=-1)
        return q_aug.contiguous(), torch.cat([g_aug, pad]).contiguous()

    # -------------------------------------------------------------------------------------------- domains
    def to_final(self, raw: Tensor) -> Tensor:
        """Raw values (ranking domain) to the reported distances; monotone non-decreasing."""
        if self.metric == "euclidean":
            return raw.clamp_min(1e-30).sqrt()
        if self.metric == "cosine":
            return raw + 1
        return raw.clone()

    def raw_pairs(self, q_idx: Tensor, g_idx: Tensor) -> Tensor:
        """Raw distances of the given pairs, one by one (for sampling; rounding may differ from the GEMM's)."""
        return (self.q_aug[q_idx] * self.g_aug[g_idx]).sum(dim=-1)

    # -------------------------------------------------------------------------------------------- the pass
    def chunks(self) -> list[tuple[int, int]]:
        return [(s, min(s + self.chunk_size, self.n_queries)) for s in range(0, self.n_queries, self.chunk_size)]

    def run(self, k: int | None, hooks: Sequence[BlockHook] = ()) -> tuple[Tensor, Tensor]:
        """Top-``k`` raw distances ``(Q, min(k, G))`` and gallery positions (``-1`` and ``+inf`` where a query has
        fewer candidates left after the exclusions); every block also goes through ``hooks``."""
        n_keep = min(k, self.n_gallery) if k is not None else 0
        out_d = torch.full((self.n_queries, n_keep), float("inf"), dtype=self.dtype, device=self.device)
        out_i = torch.full((self.n_queries, n_keep), -1, dtype=torch.long, device=self.device)
        if self.n_queries == 0 or (n_keep == 0 and not hooks):
            return out_d, out_i
        buffer = torch.empty((min(self.chunk_size, self.n_queries), self.padded), dtype=self.dtype, device=self.device)
        g_t = self.g_aug.t()
        for start, stop in self.chunks():
            block = buffer[: stop - start]
            torch.mm(self.q_aug[start:stop], g_t, out=block)
            for groups in self.exclude:
                rows, cols = groups.pairs(start, stop)
                if len(rows):
                    block[rows.to(self.device), cols.to(self.device)] = float("inf")
            if n_keep:
                d, i = topk_rows(block, n_keep, tiled=self.tiled)
                out_d[start:stop], out_i[start:stop] = d, i
            for hook in hooks:
                hook(start, stop, block)
        return out_d, out_i


def topk_rows(block: Tensor, k: int, *, tiled: bool) -> tuple[Tensor, Tensor]:
    """The ``k`` smallest values of each row and their columns, ordered by (value, column); ``+inf`` entries are
    returned as column ``-1``.

    With ``tiled``, the row is cut into tiles of ``TILE`` columns: the ``k + 1`` smallest values of a row lie in the
    ``k + 1`` tiles with the smallest minima, so one cheap reduction replaces most of the top-k work.
    """
    n_rows, n_cols = block.shape
    kk = min(k + 1, n_cols)
    if tiled and n_cols // TILE >= 4 * kk:
        tile_min = block.view(n_rows, n_cols // TILE, TILE).amin(dim=-1)
        _, tiles = torch.topk(tile_min, kk, dim=1, largest=False, sorted=False)
        cols = (tiles.unsqueeze(-1) * TILE + torch.arange(TILE, device=block.device)).view(n_rows, kk * TILE)
        values, where = torch.topk(block.gather(1, cols), kk, dim=1, largest=False, sorted=False)
        cols = cols.gather(1, where)
    else:
        values, cols = torch.topk(block, kk, dim=1, largest=False, sorted=False)
    # lexicographic (value, column): sort by column, then stably by value
    order = torch.argsort(cols, dim=1, stable=True)
    values, cols = values.gather(1, order), cols.gather(1, order)
    order = torch.argsort(values, dim=1, stable=True)
    values, cols = values.gather(1, order), cols.gather(1, order)
    if kk > k:
        boundary = values[:, k - 1]
        tied = (boundary == values[:, k]) & torch.isfinite(boundary)
        if bool(tied.any()):
            rows = tied.nonzero().squeeze(1)
            fixed_v, fixed_c = _resolve_boundary_ties(block[rows], values[rows, :k], cols[rows, :k], k)
            values[rows, :k], cols[rows, :k] = fixed_v, fixed_c
    values, cols = values[:, :k], cols[:, :k]
    cols = torch.where(torch.isfinite(values), cols, torch.full_like(cols, -1))
    return values, cols


def _resolve_boundary_ties(rows: Tensor, values: Tensor, cols: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Rows whose k-th value ties with the (k+1)-th: keep the tied columns with the smallest positions."""
    boundary = values[:, k - 1 : k]
    n_less = (values < boundary).sum(dim=1, keepdim=True)
    positions = torch.arange(rows.shape[1], device=rows.device).expand_as(rows)
    tied_cols = torch.where(rows == boundary, positions, torch.full_like(positions, rows.shape[1]))
    tied_cols = torch.topk(tied_cols, k, dim=1, largest=False, sorted=True).values
    slot = torch.arange(k, device=rows.device).unsqueeze(0)
    take_tied = slot >= n_less
    new_cols = torch.where(take_tied, tied_cols.gather(1, (slot - n_less).clamp_min(0)), cols)
    new_values = torch.where(take_tied, boundary.expand_as(values), values)
    return new_values, new_cols


def exclusion_groups(
    *,
    query_ids: Any = None,
    gallery_ids: Any = None,
    query_sequences: Any = None,
    gallery_sequences: Any = None,
) -> list[Groups]:
    """Groupings of the pairs to exclude: the same item (by id) and the same sequence."""
    groups: list[Groups] = []
    for a, b, what in ((query_ids, gallery_ids, "ids"), (query_sequences, gallery_sequences, "sequences")):
        if (a is None) != (b is None):
            raise RetrievalError(f"give both query_{what} and gallery_{what}, or neither")
        if a is not None:
            groups.append(Groups.build(a, b, what=what))
    return groups
