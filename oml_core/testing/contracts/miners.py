"""Checks for every registered miner (``protocols.TripletMiner`` / ``PairMiner``), built from its example config.

A miner's ``sample(features, labels)`` must return ``Triplets`` or ``Pairs`` of valid indices: positives share the
anchor's label and are not the anchor, negatives have another label, ``is_negative`` tells the truth. A miner that
mines from a pool larger than the batch (a memory bank, label centres) returns a ``Triplets`` subclass with
``pool_features`` and ``pool_labels`` whose first ``B`` rows are the batch; its indices point into that pool.
Mining must be reproducible under ``torch.manual_seed``, and a batch that cannot form a triplet (a single label)
must raise an ``OMLError`` that says so, not an IndexError.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from oml_core.errors import OMLError
from oml_core.host import Host
from oml_core.protocols import Pairs, Triplets
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import build_example, register_contract
from oml_core.testing.data import tiny_embeddings, tiny_labels


def _batch(seed: int = 0) -> tuple[Tensor, Tensor]:
    labels = tiny_labels(4, 3)
    return tiny_embeddings(labels, seed=seed), labels


def _check_result(name: str, result: Any, features: Tensor, labels: Tensor) -> None:
    assert isinstance(result, (Triplets, Pairs)), f"{name}.sample returned {type(result).__name__}, not Triplets or Pairs"
    pool_labels = getattr(result, "pool_labels", labels)
    pool_features = getattr(result, "pool_features", features)
    assert len(pool_labels) == len(pool_features) >= len(labels), f"{name}: pool_features and pool_labels differ in length"
    assert torch.equal(torch.as_tensor(pool_labels[: len(labels)]).cpu(), labels.cpu()), (
        f"{name}: the pool must start with the batch"
    )
    assert len(result) > 0, f"{name} mined nothing from a batch of 4 labels x 3 instances"
    for column in tuple(result)[:2] if isinstance(result, Pairs) else tuple(result):
        assert column.dtype == torch.long, f"{name}: indices must be int64, got {column.dtype}"
        assert int(column.min()) >= 0 and int(column.max()) < len(pool_labels), f"{name}: an index is outside the batch/pool"
    pool_labels = torch.as_tensor(pool_labels).cpu()
    if isinstance(result, Triplets):
        a, p, n = (c.cpu() for c in result)
        assert bool((pool_labels[a] == pool_labels[p]).all()), f"{name}: a positive has another label than its anchor"
        assert bool((a != p).all()), f"{name}: a positive is its own anchor"
        assert bool((pool_labels[a] != pool_labels[n]).all()), f"{name}: a negative has its anchor's label"
    else:
        i, j, is_negative = (c.cpu() for c in result)
        assert is_negative.dtype == torch.bool, f"{name}: is_negative must be bool"
        assert bool((i != j).all()), f"{name}: a pair of an item with itself"
        assert torch.equal(is_negative, pool_labels[i] != pool_labels[j]), f"{name}: is_negative does not match the labels"


def _same(r1: Any, r2: Any) -> bool:
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(tuple(r1), tuple(r2)))


@register_contract("miners")
def miner_returns_valid_indices(host: Host, spec: ComponentSpec) -> None:
    """Two consecutive batches (a stateful miner sees its memory the second time) give valid Triplets/Pairs."""
    miner = build_example(host, spec)
    assert callable(getattr(miner, "sample", None)), f"{spec.name} has no sample(features, labels)"
    for seed in (0, 1):
        features, labels = _batch(seed)
        _check_result(spec.name, miner.sample(features, labels), features, labels)
    # labels as a list and features that need gradients are accepted too
    features, labels = _batch(2)
    _check_result(spec.name, miner.sample(features.requires_grad_(), labels.tolist()), features, labels)


@register_contract("miners")
def miner_is_reproducible(host: Host, spec: ComponentSpec) -> None:
    """Under the same torch seed, fresh miners give the same indices on the same batches."""
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        miner = build_example(host, spec)
        results.append([miner.sample(*_batch(seed)) for seed in (0, 1)])
    for first, second in zip(*results):
        assert _same(first, second), f"{spec.name}: mining differs between two runs with the same seed"


@register_contract("miners")
def miner_explains_a_batch_without_triplets(host: Host, spec: ComponentSpec) -> None:
    """A batch with a single label raises an OMLError that mentions the label, instead of crashing or mining junk."""
    miner = build_example(host, spec)
    features = tiny_embeddings(torch.zeros(5, dtype=torch.long))
    try:
        miner.sample(features, torch.zeros(5, dtype=torch.long))
    except OMLError as exc:
        assert "label" in str(exc), f"{spec.name}: the error should say what is wrong with the labels: {exc}"
    else:
        raise AssertionError(f"{spec.name}: a batch of a single label must raise an OMLError")


@register_contract("miners")
def miner_state_round_trips(host: Host, spec: ComponentSpec) -> None:
    """A miner with ``state_dict`` resumes exactly: a copy loaded with its state mines the same next batch."""
    miner = build_example(host, spec)
    if not callable(getattr(miner, "state_dict", None)):
        return
    torch.manual_seed(5)
    miner.sample(*_batch(0))
    state = miner.state_dict()
    other = build_example(host, spec)
    other.load_state_dict(state)
    torch.manual_seed(7)
    expected = miner.sample(*_batch(1))
    torch.manual_seed(7)
    got = other.sample(*_batch(1))
    assert _same(expected, got), f"{spec.name}: a miner restored from state_dict() mines differently"
