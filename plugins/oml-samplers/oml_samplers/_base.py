"""What the batch samplers share: seeded epochs, resuming mid-epoch, splitting across ranks, and drawing
"k items from each group" for many groups at once (instances of labels, labels of categories)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from oml_core.errors import OMLError

__all__ = ["EpochBatchSampler", "Groups", "SamplerError", "as_label_tensor", "epoch_generator", "resolve_rank", "stable_order"]


class SamplerError(OMLError, ValueError):
    """A sampler cannot be built from these labels and arguments."""


def as_label_tensor(labels: Any, who: str) -> Tensor:
    """Dataset labels (list, numpy array, pandas Series, tensor) as a 1-d int64 tensor."""
    try:
        tensor = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        tensor = torch.as_tensor(list(labels))
    if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.ndim != 1:
        raise SamplerError(
            f"{who} needs one integer label per dataset item, got {tensor.dtype} labels of shape {tuple(tensor.shape)}"
        )
    if len(tensor) == 0:
        raise SamplerError(f"{who} got no labels (an empty dataset?)")
    return tensor.long()


def check_count(value: Any, name: str, who: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SamplerError(f"{who}({name}={value!r}): expected an integer >= {minimum}")
    return value


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator that depends only on ``(seed, epoch)``: the batches of an epoch are a pure function of them.

    Example:
        >>> a, b = epoch_generator(0, 3), epoch_generator(0, 3)
        >>> torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
        True
    """
    digest = hashlib.blake2b(f"oml-sampler:{seed}:{epoch}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def resolve_rank(rank: int | None, world_size: int | None, who: str) -> tuple[int, int]:
    """``(rank, world_size)``: as given, else from ``torch.distributed`` when it is initialised, else ``(0, 1)``."""
    if rank is None and world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise SamplerError(f"{who}: give both rank and world_size (got rank={rank}, world_size={world_size}), or neither")
    if world_size < 1 or not 0 <= rank < world_size:
        raise SamplerError(f"{who}(rank={rank}, world_size={world_size}): need world_size >= 1 and 0 <= rank < world_size")
    return rank, world_size


def stable_order(keys: Tensor) -> Tensor:
    """``torch.sort(keys, stable=True).indices``; sorts integer keys as float64 where that is exact, which is several
    times faster on CPU (torch 2.13 sorts int64 slowly)."""
    if len(keys) and int(keys.abs().max()) < 2**53:
        return torch.sort(keys.double(), stable=True).indices
    return torch.sort(keys, stable=True).indices


class Groups:
    """Items grouped by a key (instances by label, labels by category), for drawing ``k`` per group, vectorised.

    ``members`` lists the items group after group (in increasing item order within a group); group ``g`` (the
    ``g``-th smallest key, ``keys[g]``) is ``members[start[g] : start[g] + count[g]]``.
    """

    def __init__(self, group_key: Tensor) -> None:
        self.members = stable_order(group_key)
        self.keys, self.count = torch.unique_consecutive(group_key[self.members], return_counts=True)
        self.start = torch.cumsum(self.count, 0) - self.count

    def sample(self, groups: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """``(len(groups), k)`` items: ``k`` distinct members of each group when it has ``k``; otherwise all of
        its members (in random order) and then random repeats. Draws are independent between rows.

        Example:
            >>> g = Groups(torch.tensor([5, 9, 5, 9, 9]))
            >>> rows = g.sample(torch.tensor([0, 1]), 2, torch.Generator().manual_seed(0))
            >>> sorted(rows[0].tolist()), set(rows[1].tolist()) <= {1, 3, 4}
            ([0, 2], True)
        """
        counts = self.count[groups]
        if bool((counts == 0).any()):
            raise SamplerError("cannot sample from an empty group")
        # shuffle each chosen group: a random key per member, sorted within the group (row id + key in [0, 1))
        # row r repeated counts[r] times (searchsorted: torch.repeat_interleave costs ~15 ms a call on CPU)
        ends = torch.cumsum(counts, 0)
        flat = torch.arange(int(ends[-1]))
        row = torch.searchsorted(ends, flat, right=True)
        offset = flat - (ends - counts)[row]
        member = self.members[self.start[groups][row] + offset]
        keys = row.double() + torch.rand(len(row), generator=generator, dtype=torch.float64) * 0.5
        shuffled = member[torch.argsort(keys)]
        row_start = torch.cumsum(counts, 0) - counts
        slot = torch.arange(k)[None, :].expand(len(groups), k)
        repeat = torch.floor(torch.rand(len(groups), k, generator=generator, dtype=torch.float64) * counts[:, None]).long()
        position = torch.where(slot < counts[:, None], slot, repeat.clamp(max=counts[:, None] - 1))
        return shuffled[row_start[:, None] + position]


class EpochBatchSampler:
    """Base of the batch samplers: ``_global_batches(generator)`` draws every batch of an epoch (for all ranks);
    this class makes it seeded per epoch, splits it across ranks and resumes mid-epoch.

    - ``set_epoch(epoch, start_batch=0)``: the next iteration yields epoch ``epoch`` from its batch ``start_batch``
      (the engine passes the number of batches this rank already trained on, to resume exactly).
    - Without ``set_epoch``, each new iteration moves to the next epoch (so plain ``for epoch ...: for batch in
      loader`` loops see different batches every epoch).
    - ``seed=None`` draws a seed from torch's global RNG when the sampler is built (``torch.manual_seed`` makes it
      reproducible); a given ``seed`` yields the same batches for the same epoch, in every process.
    - Ranks take batches ``rank, rank + world_size, ...`` of the epoch, which is padded with extra batches to a
      multiple of ``world_size``: every rank gets ``len(sampler)`` different batches.
    """

    def __init__(self, who: str, seed: int | None, rank: int | None, world_size: int | None) -> None:
        self.seed = int(torch.randint(0, 2**62, (1,))) if seed is None else int(seed)
        self.rank, self.world_size = resolve_rank(rank, world_size, who)
        self._who = who
        self._epoch = 0
        self._start_batch = 0

    # -------------------------------------------------------------------------------------- for subclasses
    def _global_len(self) -> int:
        raise NotImplementedError

    def _global_batches(self, generator: torch.Generator, n_batches: int) -> list[list[int]]:
        """``n_batches`` batches (``>= _global_len()``; the extra ones pad for ranks) of one epoch."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- protocol
    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return math.ceil(self._global_len() / self.world_size)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration yields."""
        return self._epoch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration yield epoch ``epoch`` from its batch ``start_batch`` (0-based, on this rank).

        Example:
            >>> sampler.set_epoch(3, start_batch=10)   # doctest: +SKIP
            >>> batches = list(sampler)  # doctest: +SKIP
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise SamplerError(f"{self._who}.set_epoch(epoch={epoch!r}): expected an integer >= 0")
        if isinstance(start_batch, bool) or not isinstance(start_batch, int) or not 0 <= start_batch <= len(self):
            raise SamplerError(
                f"{self._who}.set_epoch(start_batch={start_batch!r}): expected 0 <= start_batch <= {len(self)} (len of an epoch)"
            )
        self._epoch, self._start_batch = epoch, start_batch

    def batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` on this rank, without changing the sampler's position."""
        per_rank = len(self)
        every = self._global_batches(epoch_generator(self.seed, epoch), per_rank * self.world_size)
        return every[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, start = self._epoch, self._start_batch
        self._epoch, self._start_batch = epoch + 1, 0
        return iter(self.batches(epoch)[start:])

    def _instances(
        self, groups: Groups, labels_per_batch: Tensor, n_instances: int, generator: torch.Generator
    ) -> list[list[int]]:
        """Flatten ``(n_batches, n_labels)`` label ids into batches of ``n_instances`` items per label."""
        n_batches, n_labels = labels_per_batch.shape
        items = groups.sample(labels_per_batch.reshape(-1), n_instances, generator)
        return items.reshape(n_batches, n_labels * n_instances).tolist()  # type: ignore[no-any-return]


def check_instances(unique: Tensor, counts: Tensor, who: str) -> None:
    single = unique[counts < 2]
    if len(single):
        shown = ", ".join(str(int(v)) for v in single[:10]) + (f", ... ({len(single)} labels)" if len(single) > 10 else "")
        raise SamplerError(
            f"{who}: every label needs at least 2 items to form positive pairs, but label(s) {shown} have only one. "
            "Drop them from the training dataframe (or merge them into other labels)."
        )


def lbl2idx_of(labels: Tensor) -> dict[int, list[int]]:
    """``{label: [dataset indices]}`` in the order labels first appear (OML's ``BalanceSampler.lbl2idx``)."""
    mapping: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        mapping.setdefault(label, []).append(index)
    return mapping
