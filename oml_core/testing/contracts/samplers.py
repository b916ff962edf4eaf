"""Checks for every registered batch-sampler factory (``protocols.BatchSamplerFactory``), built from its example.

The factory is called with the example's config fields and ``labels`` = 12 labels with 2 to 5 items each; it also
gets ``label2category`` (3 categories of 4 labels), ``seed``, ``rank`` and ``world_size`` when its signature
accepts them. The sampler must satisfy ``protocols.BatchSampler``; every batch must hold valid dataset indices,
``batch_size`` of them when the sampler has that attribute, in groups of ``n_instances`` consecutive items of one
label when it has ``n_instances``; ``len()`` must be exact; the same seed and epoch must give the same batches
(also when resuming with ``set_epoch(epoch, start_batch=n)``, if supported); ranks must get different batches and
the same number of them.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import torch

from oml_core.host import Host
from oml_core.protocols import BatchSampler
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import register_contract

N_LABELS = 12
LABELS: list[int] = [label for label in range(N_LABELS) for _ in range(2 + label % 4)]
LABEL2CATEGORY: dict[int, str] = {label: "abc"[label % 3] for label in range(N_LABELS)}


def _build(host: Host, spec: ComponentSpec, **runtime: Any) -> Any:
    parameters = inspect.signature(spec.factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    offered = {"label2category": LABEL2CATEGORY, "seed": 0, **runtime}
    accepted = {k: v for k, v in offered.items() if takes_all or k in parameters}
    return host.registries.samplers.create(spec.name, dict(spec.example), labels=list(LABELS), **accepted)


def _accepts(spec: ComponentSpec, *names: str) -> bool:
    parameters = inspect.signature(spec.factory).parameters
    return all(n in parameters for n in names) or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _epoch(sampler: Any, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return [list(batch) for batch in sampler]


def _check_batch(name: str, sampler: Any, batch: list[int]) -> None:
    assert all(isinstance(i, int) and 0 <= i < len(LABELS) for i in batch), f"{name}: a batch holds an invalid index: {batch}"
    size = getattr(sampler, "batch_size", None)
    if size is not None:
        assert len(batch) == size, f"{name}: a batch has {len(batch)} items, batch_size is {size}"
    k = getattr(sampler, "n_instances", None)
    if k is None:
        return
    assert len(batch) % k == 0, f"{name}: a batch of {len(batch)} items is not made of groups of n_instances={k}"
    counts = Counter(LABELS)
    for start in range(0, len(batch), k):
        group = batch[start : start + k]
        labels = {LABELS[i] for i in group}
        assert len(labels) == 1, f"{name}: items {group} should be {k} instances of one label, got labels {sorted(labels)}"
        label = labels.pop()
        assert len(set(group)) == min(k, counts[label]), (
            f"{name}: label {label} has {counts[label]} items but its group {group} repeats some needlessly"
        )


@register_contract("samplers")
def sampler_yields_exact_batches(host: Host, spec: ComponentSpec) -> None:
    """A BatchSampler whose ``len()`` is the number of batches of every epoch, each batch well formed."""
    sampler = _build(host, spec)
    assert isinstance(sampler, BatchSampler), f"{spec.name}: the factory's result lacks __iter__, __len__ or set_epoch"
    for epoch in range(4):
        batches = _epoch(sampler, epoch)
        assert len(batches) == len(sampler) > 0, (
            f"{spec.name}: epoch {epoch} has {len(batches)} batches, len() says {len(sampler)}"
        )
        for batch in batches:
            _check_batch(spec.name, sampler, batch)


@register_contract("samplers")
def sampler_is_deterministic_per_epoch(host: Host, spec: ComponentSpec) -> None:
    """The same seed gives the same batches for the same epoch, whatever happened before; epochs differ; a resumed
    epoch (``set_epoch(epoch, start_batch=n)``) continues exactly where an uninterrupted one was."""
    torch.manual_seed(0)
    first = _build(host, spec, seed=3)
    _epoch(first, 0)
    expected = _epoch(first, 2)
    torch.manual_seed(1)  # a sampler with a seed must not depend on torch's global RNG
    second = _build(host, spec, seed=3)
    assert _epoch(second, 2) == expected, f"{spec.name}: two samplers with seed=3 differ in epoch 2"
    assert _epoch(second, 2) == expected, f"{spec.name}: replaying epoch 2 gives other batches"
    assert any(_epoch(second, e) != expected for e in (3, 4, 5)), f"{spec.name}: epochs 2 to 5 are all the same"
    if "start_batch" in inspect.signature(second.set_epoch).parameters and len(expected) > 1:
        second.set_epoch(2, start_batch=1)
        assert [list(b) for b in second] == expected[1:], f"{spec.name}: set_epoch(2, start_batch=1) does not resume epoch 2"


@register_contract("samplers")
def sampler_splits_across_ranks(host: Host, spec: ComponentSpec) -> None:
    """With ``world_size=2`` both ranks get the same number of batches, different ones, together covering an epoch."""
    if not _accepts(spec, "rank", "world_size"):
        return
    single = _build(host, spec, seed=5)
    ranks = [_build(host, spec, seed=5, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]), f"{spec.name}: ranks get {len(ranks[0])} and {len(ranks[1])} batches"
    assert 2 * len(ranks[0]) >= len(single), f"{spec.name}: two ranks together have fewer batches than one epoch"
    per_rank = [_epoch(r, 1) for r in ranks]
    assert per_rank[0] != per_rank[1], f"{spec.name}: both ranks get the same batches"
    for batches in per_rank:
        assert len(batches) == len(ranks[0])
        for batch in batches:
            _check_batch(spec.name, ranks[0], batch)
