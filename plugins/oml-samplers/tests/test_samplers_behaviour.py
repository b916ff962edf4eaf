"""Batch structure over many epochs, label coverage, determinism, resuming, rank splitting and errors."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
import torch
from oml_samplers import BalanceSampler, CategoryBalanceSampler, DistinctCategoryBalanceSampler, SamplerError
from torch.utils.data import DataLoader, Dataset

from oml_core import OMLError
from oml_core.testing import contract_cases


def make_labels(counts: list[int], seed: int = 0) -> list[int]:
    labels = [label for label, n in enumerate(counts) for _ in range(n)]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    return [labels[i] * 10 + 7 for i in order]  # shuffled, non-contiguous label values


def check_groups(batch: list[int], labels: list[int], n_instances: int) -> list[int]:
    """Returns the labels of the batch's groups after checking each group is n_instances items of one label."""
    counts = Counter(labels)
    group_labels = []
    for start in range(0, len(batch), n_instances):
        group = batch[start : start + n_instances]
        assert len(group) == n_instances and len({labels[i] for i in group}) == 1
        label = labels[group[0]]
        assert len(set(group)) == min(n_instances, counts[label])  # repeats only when the label is too small
        group_labels.append(label)
    return group_labels


@pytest.mark.parametrize(
    ("counts", "n_labels", "n_instances"), [([2, 3, 4, 5, 6, 7, 8], 3, 4), ([5] * 10, 2, 5), ([2] * 9, 4, 3)]
)
def test_balance_batches_over_many_epochs(counts: list[int], n_labels: int, n_instances: int) -> None:
    labels = make_labels(counts)
    sampler = BalanceSampler(labels, n_labels=n_labels, n_instances=n_instances, seed=0)
    assert len(sampler) == math.ceil(len(counts) / n_labels) and sampler.batch_size == n_labels * n_instances
    seen_first: Counter[tuple[int, ...]] = Counter()
    for _ in range(20):
        batches = list(sampler)  # no set_epoch: each iteration moves to the next epoch
        assert len(batches) == len(sampler)
        visited = []
        for batch in batches:
            assert len(batch) == sampler.batch_size
            group_labels = check_groups(batch, labels, n_instances)
            assert len(set(group_labels)) == n_labels  # distinct labels within a batch
            visited += group_labels
        assert set(visited) == set(labels)  # every label, every epoch
        assert len(visited) - len(set(visited)) == len(sampler) * n_labels - len(counts)  # only the fill repeats
        seen_first[tuple(batches[0])] += 1
    assert len(seen_first) > 1  # epochs differ
    assert sampler.epoch == 20


def test_seed_000_usage_and_dataloader() -> None:
    class Items(Dataset):
        def __init__(self, labels: list[int]) -> None:
            self.labels = labels

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict[str, int]:
            return {"idx": i, "labels": self.labels[i]}

        def get_labels(self) -> list[int]:
            return self.labels

    dataset = Items([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7])  # 8 x 3, as the mock dataset
    sampler = BalanceSampler(dataset.get_labels(), n_labels=2, n_instances=2)
    assert sampler.lbl2idx == {label: [3 * label, 3 * label + 1, 3 * label + 2] for label in range(8)}
    assert sampler.batch_size == 4
    batches = list(DataLoader(dataset, batch_sampler=sampler))
    assert len(batches) == 4
    assert sorted(int(label) for b in batches for label in b["labels"][::2]) == list(range(8))


def test_seeds_make_epochs_reproducible_and_resumable() -> None:
    labels = make_labels([3, 4, 5, 6, 2, 3, 4, 5, 6, 7])
    a = BalanceSampler(labels, 3, 2, seed=11)
    b = BalanceSampler(labels, 3, 2, seed=11)
    list(a)
    list(a)  # a has moved on two epochs; b has not
    b.set_epoch(2)
    assert list(a) == list(b)
    assert a.batches(5) == b.batches(5) != a.batches(6)
    full = a.batches(7)
    a.set_epoch(7, start_batch=2)
    assert list(a) == full[2:]
    assert list(a) == a.batches(8)  # after a resumed epoch, the next one follows
    torch.manual_seed(4)
    c = BalanceSampler(labels, 3, 2)
    torch.manual_seed(4)
    d = BalanceSampler(labels, 3, 2)
    assert c.seed == d.seed and list(c) == list(d)
    with pytest.raises(SamplerError, match="start_batch"):
        a.set_epoch(0, start_batch=len(a) + 1)
    with pytest.raises(SamplerError, match="epoch"):
        a.set_epoch(-1)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_get_different_batches_of_equal_number(world_size: int) -> None:
    labels = make_labels([2, 3, 4] * 4)  # 12 labels, 5 per batch -> 3 batches in all
    single = BalanceSampler(labels, 5, 2, seed=1)
    ranks = [BalanceSampler(labels, 5, 2, seed=1, rank=r, world_size=world_size) for r in range(world_size)]
    assert {len(r) for r in ranks} == {math.ceil(len(single) / world_size)}
    for epoch in range(5):
        per_rank = [r.batches(epoch) for r in ranks]
        flat = [tuple(batch) for batches in per_rank for batch in batches]
        assert len(set(flat)) == len(flat)  # no batch twice
        visited = {labels[i] for batches in per_rank for batch in batches for i in batch}
        assert visited == set(labels)  # the ranks together visit every label
        for batches in per_rank:
            for batch in batches:
                check_groups(batch, labels, 2)


def test_rank_and_world_size_come_from_torch_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    sampler = BalanceSampler(make_labels([2] * 16), 2, 2, seed=0)
    assert (sampler.rank, sampler.world_size, len(sampler)) == (1, 4, 2)
    explicit = BalanceSampler(make_labels([2] * 16), 2, 2, seed=0, rank=0, world_size=1)
    assert (explicit.rank, explicit.world_size, len(explicit)) == (0, 1, 8)


def test_category_balance_structure_and_weights() -> None:
    counts = [2, 3, 4, 5] * 4  # 16 labels
    labels = make_labels(counts)
    values = sorted(set(labels))
    label2category = {label: ("small" if i < 4 else "big") for i, label in enumerate(values)}  # 4 vs 12 labels
    sampler = CategoryBalanceSampler(labels, label2category, n_categories=1, n_labels=2, n_instances=3, seed=0)
    assert len(sampler) == 8 and sampler.batch_size == 6
    big = 0
    for _ in range(40):
        for batch in sampler:
            group_labels = check_groups(batch, labels, 3)
            categories = {label2category[label] for label in group_labels}
            assert len(categories) == 1 and len(set(group_labels)) == 2
            big += categories == {"big"}
    assert 0.68 < big / 320 < 0.82  # categories drawn in proportion to their labels (12 / 16)
    two = CategoryBalanceSampler(
        labels, label2category, n_categories=2, n_labels=2, n_instances=2, weight_categories=False, seed=0
    )
    for batch in two.batches(0):
        group_labels = check_groups(batch, labels, 2)
        assert [label2category[label] for label in group_labels].count("small") == 2
    with pytest.raises(SamplerError, match="resample_labels"):
        CategoryBalanceSampler(labels, label2category, n_categories=1, n_labels=5, n_instances=2)
    resampled = CategoryBalanceSampler(
        labels, label2category, n_categories=2, n_labels=5, n_instances=2, resample_labels=True, seed=0
    )
    assert all(len(batch) == 20 for batch in resampled)


def test_distinct_category_balance_follows_the_reference_state_machine() -> None:
    labels = make_labels([2, 3] * 8)  # 16 labels
    values = sorted(set(labels))
    label2category = {label: i % 3 for i, label in enumerate(values)}  # categories of 6, 5, 5 labels
    n_categories, n_labels = 2, 3
    sampler = DistinctCategoryBalanceSampler(labels, label2category, n_categories, n_labels, n_instances=2, epoch_size=25, seed=0)
    assert len(sampler) == 25 and sampler.batch_size == 12
    members = {c: {label for label in values if label2category[label] == c} for c in range(3)}
    available: dict[int, set[int]] = {}
    used: dict[int, set[int]] = {}
    for batch in sampler.batches(0):
        if len(available) < n_categories:
            available = {c: set(m) for c, m in members.items()}
            used = {c: set() for c in members}
        group_labels = check_groups(batch, labels, 2)
        assert len(set(group_labels)) == n_categories * n_labels
        by_category: dict[int, set[int]] = {}
        for label in group_labels:
            by_category.setdefault(label2category[label], set()).add(label)
        assert len(by_category) == n_categories and all(len(v) == n_labels for v in by_category.values())
        for c, chosen in by_category.items():
            assert c in available
            if len(available[c]) >= n_labels:
                assert chosen <= available[c]  # no label reused while the category has unused ones
            else:
                assert available[c] <= chosen and chosen - available[c] <= used[c]
            used[c] |= chosen
            available[c] -= chosen
            if not available[c]:
                del available[c]


def test_clear_errors() -> None:
    with pytest.raises(SamplerError, match=r"label\(s\) 5 have only one"):
        BalanceSampler([1, 1, 5, 2, 2], n_labels=2, n_instances=2)
    with pytest.raises(SamplerError, match="only 2 labels"):
        BalanceSampler([1, 1, 2, 2], n_labels=3, n_instances=2)
    with pytest.raises(SamplerError, match=r"n_instances=1"):
        BalanceSampler([1, 1, 2, 2], n_labels=2, n_instances=1)
    with pytest.raises(SamplerError, match="integer"):
        BalanceSampler([0.5, 0.5, 1.0, 1.0], n_labels=2, n_instances=2)
    with pytest.raises(SamplerError, match="both rank and world_size"):
        BalanceSampler([1, 1, 2, 2], 2, 2, rank=1)
    with pytest.raises(SamplerError, match="0 <= rank < world_size"):
        BalanceSampler([1, 1, 2, 2], 2, 2, rank=2, world_size=2)
    with pytest.raises(SamplerError, match="needs label2category"):
        CategoryBalanceSampler([1, 1, 2, 2], None, 1, 2, 2)  # type: ignore[arg-type]
    with pytest.raises(OMLError, match=r"no category for label\(s\) \[2\]"):
        DistinctCategoryBalanceSampler([1, 1, 2, 2], {1: "a"}, 1, 2, 2, epoch_size=3)


def test_an_epoch_of_a_large_dataset_is_quick() -> None:
    labels = torch.randint(0, 20_000, (200_000,), generator=torch.Generator().manual_seed(0))
    labels = torch.cat([labels, torch.arange(20_000), torch.arange(20_000)])  # every label has 2+ items
    sampler = BalanceSampler(labels, n_labels=64, n_instances=4, seed=0)
    start = time.perf_counter()
    batches = sampler.batches(0)
    elapsed = time.perf_counter() - start
    assert len(batches) == math.ceil(20_000 / 64) and all(len(b) == 256 for b in batches)
    assert elapsed < 2.0, f"one epoch took {elapsed:.2f} s"


@pytest.mark.parametrize("case", contract_cases("oml_samplers"), ids=str)
def test_contracts(case) -> None:  # noqa: ANN001
    case.run()


def test_factories_take_runtime_arguments(oml_host) -> None:  # noqa: ANN001
    samplers = oml_host.registries.samplers
    assert set(samplers.names()) >= {"balance", "category_balance", "distinct_category_balance"}
    labels = make_labels([2, 3, 4, 5])
    sampler = samplers.create("balance", {"n_labels": 2, "n_instances": 3}, labels=labels, seed=1, rank=1, world_size=2)
    assert isinstance(sampler, BalanceSampler) and (sampler.seed, sampler.rank, sampler.world_size) == (1, 1, 2)
    l2c = {label: (label // 10) % 2 for label in set(labels)}
    category = samplers.create(
        "category_balance", {"n_categories": 2, "n_labels": 2, "n_instances": 2}, labels=labels, label2category=l2c
    )
    assert category.batch_size == 8
    with pytest.raises(OMLError, match="n_instances"):
        samplers.create("balance", {"n_labels": 2, "n_instances": 2.5}, labels=labels)
