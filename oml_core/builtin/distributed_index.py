"""``oml index`` under ``torchrun``: the images are shared out among the ranks (rank r takes every world-th image
the store lacks).

* A store that takes concurrent writers (the SQL store: PostgreSQL, and SQLite which queues them) is written by
  every rank directly.
* A store that one process writes at a time (``protocols.StoreWithShards``, the FAISS store) gets one shard store
  per rank; when every rank is done, rank 0 merges the shards into the store (checking that each was filled by the
  same model) and deletes them.

Rank 0 creates the store and records the model first; the others wait for it. A killed run resumes: ids already in
the store or in a rank's shard are not embedded again, and shards left by a killed run (of any world size) are
merged by the next one.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.builtin.model_options import LoadedModel
    from oml_core.builtin.stores import Item
    from oml_core.host import Host

T = TypeVar("T")
_MERGE_CHUNK = 4096


@attrs.frozen
class Ranks:
    """This process's rank and the world size; owns the process group when it started it."""

    rank: int = 0
    world: int = 1
    started_group: bool = False

    @classmethod
    def from_environment(cls) -> Ranks:
        """From torchrun's ``RANK`` / ``WORLD_SIZE``; starts a gloo process group (CPU collectives suffice here)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        started = False
        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
            started = True
        return cls(dist.get_rank(), dist.get_world_size(), started)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def on_main(self, work: Callable[[], T]) -> T | None:
        """Run ``work`` on rank 0; every rank raises the same OMLError if it failed there (no rank is left waiting)."""
        outcome: list[Any] = [None]
        if self.rank == 0:
            try:
                outcome = [("ok", work())]
            except OMLError as exc:
                outcome = [("error", str(exc))]
        if self.world > 1:
            import torch.distributed as dist

            dist.broadcast_object_list(outcome, src=0)
        status, value = outcome[0]
        if status == "error":
            raise OMLError(value if self.rank == 0 else f"rank 0 failed: {value}")
        return value if self.rank == 0 else None

    def all_ok(self, work: Callable[[], T]) -> T | None:
        """Run ``work`` on every rank; if any rank failed, every rank raises (naming the ranks that failed)."""
        result: T | None = None
        error = ""
        try:
            result = work()
        except OMLError as exc:
            error = str(exc)
        if self.world > 1:
            import torch.distributed as dist

            errors: list[Any] = [None] * self.world
            dist.all_gather_object(errors, error)
            failed = [f"rank {r}: {e}" for r, e in enumerate(errors) if e]
            if failed:
                raise OMLError("; ".join(failed))
        elif error:
            raise OMLError(error)
        return result

    def close(self) -> None:
        if self.started_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def index_distributed(args: argparse.Namespace, host: Host, items: Sequence[Item], model: LoadedModel, ranks: Ranks) -> int:
    """One rank's part of a distributed ``oml index`` (see the module's docstring)."""
    from oml_core.builtin.stores import _open, index_into, record_model
    from oml_core.protocols import StoreWithShards
    from oml_core.stores import existing_ids

    def create_and_record() -> bool:
        with _open(host, args, dim=model.dim or None, metric=args.metric) as store:
            record_model(store, model, args, args.store)
            return isinstance(store, StoreWithShards)

    sharded = ranks.on_main(create_and_record)
    sharded = bool(_broadcast(ranks, sharded))

    def my_share() -> tuple[list[Item], str, str | None]:
        with _open(host, args, create=False) as store:
            checked = record_model(store, model, args, args.store)  # reads only: the store recorded this model already
            present = existing_ids(store, [item.id for item in items])
            shard = store.shard_url(ranks.rank) if isinstance(store, StoreWithShards) else None
            metric = checked.fingerprint.distance or store.metric
        todo = [item for item, done in zip(items, present.tolist()) if not done]
        return todo[ranks.rank :: ranks.world], metric, shard

    share = ranks.all_ok(my_share)
    assert share is not None
    mine, metric, shard = share
    ranks.barrier()  # every rank has read the store before any writes to it

    def write() -> int:
        if shard is None:
            with _open(host, args, create=False) as store:
                return index_into(store, args, mine, model, store_name=args.store, record=False, announce=False)
        from oml_core.stores import open_store

        with open_store(host, shard, dim=model.dim, metric=metric) as shard_store:
            return index_into(shard_store, args, mine, model, store_name=shard, announce=False)

    added = ranks.all_ok(write) or 0
    print(f"oml index: rank {ranks.rank}/{ranks.world} embedded {added} of its {len(mine)} images")
    ranks.barrier()
    if sharded:
        ranks.on_main(lambda: merge_shards(host, args, model))
    total = ranks.on_main(lambda: _count(host, args))
    if ranks.rank == 0:
        print(f"oml index: {ranks.world} ranks; the store holds {total} items")
    return 0


def merge_shards(host: Host, args: argparse.Namespace, model: LoadedModel) -> int:
    """Move every shard's items into the store (those it lacks), save it, then delete the shards."""
    from oml_core.builtin.model_options import check_model
    from oml_core.builtin.stores import _open, _recorded_model, record_model
    from oml_core.protocols import StoreWithIds, StoreWithSave, StoreWithShards
    from oml_core.stores import existing_ids, open_store

    moved = 0
    with _open(host, args, create=False) as store:
        if not isinstance(store, StoreWithShards):
            return 0
        record_model(store, model, args, args.store)
        urls = store.shard_urls()
        for url in urls:
            with open_store(host, url, create=False) as shard:
                check_model(_recorded_model(shard), model, store=url, what=f"the store {args.store}")
                if not isinstance(shard, StoreWithIds):
                    raise OMLError(f"shard {url} cannot list its ids, so it cannot be merged")
                ids = shard.ids().tolist()
                for start in range(0, len(ids), _MERGE_CHUNK):
                    chunk = ids[start : start + _MERGE_CHUNK]
                    new = [i for i, there in zip(chunk, existing_ids(store, chunk).tolist()) if not there]
                    if new:
                        vectors, metadata = shard.get(new)
                        store.add(new, vectors, metadata=metadata)
                        moved += len(new)
        if isinstance(store, StoreWithSave):
            store.save()  # the merged items are on disk before any shard is deleted
        for url in urls:
            store.drop_shard(url)
    print(f"oml index: merged {len(urls)} shard(s) into {args.store}: {moved} new items")
    return moved


def _count(host: Host, args: argparse.Namespace) -> int:
    from oml_core.builtin.stores import _open

    with _open(host, args, create=False) as store:
        return store.count()


def _broadcast(ranks: Ranks, value: Any) -> Any:
    if ranks.world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
