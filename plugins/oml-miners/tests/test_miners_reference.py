"""Every miner against an obviously-correct Python loop, on random batches (balanced, unbalanced, with singletons)."""

from __future__ import annotations

import itertools

import pytest
import torch
from oml_miners import (
    AllTripletsMiner,
    HardClusterMiner,
    HardTripletsMiner,
    MiningError,
    NHardTripletsMiner,
    PairsMiner,
    PooledTriplets,
    TripletMinerWithMemory,
    count_all_triplets,
    pairwise_dist,
)
from torch import Tensor

from oml_core import OMLError


def random_batch(seed: int, kind: str) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    if kind == "balanced":
        labels = torch.arange(5).repeat_interleave(4)
    elif kind == "unbalanced":  # sizes 1..6, one singleton label
        labels = torch.cat([torch.full((n,), i) for i, n in enumerate([1, 6, 2, 3, 5])])
    else:  # random labels, shuffled
        labels = torch.randint(0, 4, (17,), generator=g)
    labels = labels[torch.randperm(len(labels), generator=g)]
    return torch.randn(len(labels), 6, generator=g), labels


BATCHES = [(seed, kind) for seed in range(3) for kind in ("balanced", "unbalanced", "random")]


def ref_all_triplets(labels: list[int]) -> list[tuple[int, int, int]]:
    out = []
    for a, la in enumerate(labels):
        for p, lp in enumerate(labels):
            if p == a or lp != la:
                continue
            for n, ln in enumerate(labels):
                if ln != la:
                    out.append((a, p, n))
    return out


def as_list(triplets) -> list[tuple[int, ...]]:  # noqa: ANN001
    return list(zip(*(c.tolist() for c in tuple(triplets)[:3])))


@pytest.mark.parametrize(("seed", "kind"), BATCHES)
def test_all_triplets_equals_loop(seed: int, kind: str) -> None:
    features, labels = random_batch(seed, kind)
    expected = ref_all_triplets(labels.tolist())
    assert as_list(AllTripletsMiner().sample(features, labels)) == expected
    assert count_all_triplets(labels) == len(expected)


def test_all_triplets_subset_is_uniform_and_seeded() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2])
    features = torch.randn(5, 2)
    universe = set(ref_all_triplets(labels.tolist()))  # 12 triplets
    for k in (2, 4):  # a sparse draw (k << total) and a permutation
        miner = AllTripletsMiner(max_output_triplets=k, seed=3)
        counts: dict[tuple[int, ...], int] = dict.fromkeys(universe, 0)
        draws = 1000
        for _ in range(draws):
            chosen = as_list(miner.sample(features, labels))
            assert len(chosen) == k == len(set(chosen)) and set(chosen) <= universe and chosen == sorted(chosen)
            for t in chosen:
                counts[t] += 1
        expected = draws * k / len(universe)
        assert all(abs(c - expected) < 0.3 * expected for c in counts.values()), (k, counts)
    first = AllTripletsMiner(max_output_triplets=5, seed=3).sample(features, labels)
    assert as_list(first) == as_list(AllTripletsMiner(max_output_triplets=5, seed=3).sample(features, labels))
    torch.manual_seed(1)
    global_rng = as_list(AllTripletsMiner(max_output_triplets=5).sample(features, labels))
    torch.manual_seed(1)
    assert as_list(AllTripletsMiner(max_output_triplets=5).sample(features, labels)) == global_rng
    # the sparse path for a small subset of a large set (no randperm of every triplet)
    big = torch.arange(40).repeat_interleave(8)
    tri = AllTripletsMiner(max_output_triplets=100, seed=0).sample(torch.zeros(len(big), 2), big)
    assert len(set(as_list(tri))) == 100
    a, p, n = tri
    assert bool((big[a] == big[p]).all() and (a != p).all() and (big[a] != big[n]).all())


def ref_hard(d: list[list[float]], labels: list[int]) -> list[tuple[int, int, int]]:
    out = []
    for a, la in enumerate(labels):
        positives = [p for p in range(len(labels)) if p != a and labels[p] == la]
        negatives = [n for n in range(len(labels)) if labels[n] != la]
        if not positives or not negatives:
            continue
        p = max(positives, key=lambda i: (d[a][i], -i))  # farthest, lowest index on ties
        n = min(negatives, key=lambda i: (d[a][i], i))  # closest, lowest index on ties
        out.append((a, p, n))
    return out


@pytest.mark.parametrize(("seed", "kind"), BATCHES)
def test_hard_triplets_equals_loop_and_picks_the_hardest(seed: int, kind: str) -> None:
    features, labels = random_batch(seed, kind)
    d = pairwise_dist(features, features)
    got = as_list(HardTripletsMiner().sample(features, labels))
    assert got == ref_hard(d.tolist(), labels.tolist())
    for a, p, n in got:
        same = (labels == labels[a]) & (torch.arange(len(labels)) != a)
        assert d[a, p] == d[a][same].max() and d[a, n] == d[a][labels != labels[a]].min()


def test_hard_triplets_ties_go_to_the_lowest_index() -> None:
    features = torch.tensor([[0.0], [1.0], [-1.0], [2.0], [-2.0]])
    tri = HardTripletsMiner().sample(features, torch.tensor([0, 0, 0, 1, 1]))
    assert as_list(tri)[0] == (0, 1, 3)


def ref_nhard(d: list[list[float]], labels: list[int], ps: slice, ns: slice) -> list[tuple[int, int, int]]:
    out = []
    for a, la in enumerate(labels):
        positives = sorted((p for p in range(len(labels)) if p != a and labels[p] == la), key=lambda i: (-d[a][i], i))
        negatives = sorted((n for n in range(len(labels)) if labels[n] != la), key=lambda i: (d[a][i], i))
        for p, n in itertools.product(positives[ps], negatives[ns]):
            out.append((a, p, n))
    return out


@pytest.mark.parametrize(("seed", "kind"), BATCHES)
@pytest.mark.parametrize(("n_pos", "n_neg"), [(1, 1), (2, 3), ((2, 3), (1, 4)), (10, 100)])
def test_n_hard_triplets_equals_loop(seed: int, kind: str, n_pos, n_neg) -> None:  # noqa: ANN001
    features, labels = random_batch(seed, kind)
    miner = NHardTripletsMiner(n_positive=n_pos, n_negative=n_neg)
    d = pairwise_dist(features, features).tolist()
    assert as_list(miner.sample(features, labels)) == ref_nhard(d, labels.tolist(), miner.positive_slice, miner.negative_slice)


def test_n_hard_with_one_each_is_hard_and_with_everything_is_all() -> None:
    features, labels = random_batch(1, "balanced")
    assert as_list(NHardTripletsMiner(1, 1).sample(features, labels)) == as_list(HardTripletsMiner().sample(features, labels))
    everything = set(as_list(NHardTripletsMiner(100, 100).sample(features, labels)))
    assert everything == set(ref_all_triplets(labels.tolist()))


@pytest.mark.parametrize(("seed", "kind"), BATCHES)
def test_hard_cluster_equals_loop(seed: int, kind: str) -> None:
    features, labels = random_batch(seed, kind)
    tri = HardClusterMiner().sample(features, labels)
    assert isinstance(tri, PooledTriplets)
    uniq = sorted(set(labels.tolist()))
    means = {}
    for lab in uniq:
        rows = [features[i] for i in range(len(labels)) if labels[i] == lab]
        means[lab] = sum(rows) / len(rows)
    expected = []
    for li, lab in enumerate(uniq):
        members = [i for i in range(len(labels)) if labels[i] == lab]
        if len(members) < 2:
            continue
        far = max(members, key=lambda i: (float((features[i] - means[lab]).pow(2).sum()), -i))
        neg = min((m for m in range(len(uniq)) if m != li), key=lambda m: float((means[uniq[m]] - means[lab]).norm()))
        expected.append((len(labels) + li, far, len(labels) + neg))
    assert as_list(tri) == expected
    assert torch.allclose(tri.pool_features[len(labels) :], torch.stack([means[lab] for lab in uniq]), atol=1e-6)
    assert tri.pool_labels.tolist() == labels.tolist() + uniq


def test_hard_cluster_means_carry_gradients() -> None:
    features, labels = random_batch(0, "balanced")
    features.requires_grad_()
    tri = HardClusterMiner().sample(features, labels)
    tri.pool_features[tri.anchors].sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


@pytest.mark.parametrize("hard", [True, False])
@pytest.mark.parametrize(("seed", "kind"), BATCHES)
def test_pairs_equal_the_pairs_of_reference_triplets(hard: bool, seed: int, kind: str) -> None:
    features, labels = random_batch(seed, kind)
    d = pairwise_dist(features, features).tolist()
    triplets = ref_hard(d, labels.tolist()) if hard else ref_all_triplets(labels.tolist())
    pos = sorted({tuple(sorted((a, p))) for a, p, _ in triplets})
    neg = sorted({tuple(sorted((a, n))) for a, _, n in triplets})
    ids1, ids2, is_negative = PairsMiner(hard_mining=hard).sample(features=features, labels=labels)
    assert list(zip(ids1.tolist(), ids2.tolist())) == pos + neg
    assert is_negative.tolist() == [False] * len(pos) + [True] * len(neg)


def test_memory_miner_bank_and_triplets() -> None:
    torch.manual_seed(0)
    miner = TripletMinerWithMemory(bank_size_in_batches=2, tri_expand_k=3, seed=0)
    batches = [random_batch(s, "balanced") for s in range(4)]
    for step, (features, labels) in enumerate(batches):
        tri = miner.sample(features, labels)
        own = ref_all_triplets(labels.tolist())
        got = as_list(tri)
        assert got[: len(own)] == own  # the batch's own triplets first
        pool_labels = tri.pool_labels
        a, p, n = tri
        assert bool((pool_labels[a] == pool_labels[p]).all() and (a != p).all() and (pool_labels[a] != pool_labels[n]).all())
        extra = got[len(own) :]
        if step == 0:
            assert extra == [] and len(pool_labels) == len(labels)
        else:
            b = len(labels)
            assert 0 < len(extra) <= 2 * int(len(own) * 2 / 2)
            # every extra triplet reaches into the bank, which holds the previous batches (FIFO, at most 2)
            assert all((x >= b) + (y >= b) + (z >= b) > 0 for x, y, z in extra)
            held = [f for f, _ in batches[max(0, step - 2) : step]]
            assert torch.equal(torch.sort(tri.pool_features[b:], dim=0).values, torch.sort(torch.cat(held), dim=0).values)


def test_memory_miner_state_dict_resumes_exactly() -> None:
    batches = [random_batch(s, "random") for s in range(5)]
    whole = TripletMinerWithMemory(bank_size_in_batches=2, tri_expand_k=2, seed=1)
    expected = [as_list(whole.sample(*b)) for b in batches]
    first = TripletMinerWithMemory(bank_size_in_batches=2, tri_expand_k=2, seed=1)
    for b in batches[:3]:
        first.sample(*b)
    resumed = TripletMinerWithMemory(bank_size_in_batches=2, tri_expand_k=2, seed=999)
    resumed.load_state_dict(first.state_dict())
    assert [as_list(resumed.sample(*b)) for b in batches[3:]] == expected[3:]
    with pytest.raises(MiningError, match="lacks"):
        resumed.load_state_dict({"ptr": 0})


@pytest.mark.parametrize(
    "miner",
    [
        AllTripletsMiner(),
        HardTripletsMiner(),
        NHardTripletsMiner(2, 2),
        HardClusterMiner(),
        PairsMiner(),
        TripletMinerWithMemory(2, 2),
    ],
    ids=repr,
)
def test_batches_without_triplets_raise_clear_errors(miner) -> None:  # noqa: ANN001
    features = torch.randn(4, 3)
    with pytest.raises(MiningError, match="same label"):
        miner.sample(features, torch.tensor([7, 7, 7, 7]))
    with pytest.raises(MiningError, match="single instance"):
        miner.sample(features, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(OMLError, match="3 labels"):
        miner.sample(features, torch.tensor([0, 0, 1]))
    with pytest.raises(OMLError, match="integers"):
        miner.sample(features, torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_bad_arguments_are_reported() -> None:
    with pytest.raises(MiningError, match="n_positive"):
        NHardTripletsMiner(n_positive=(3, 2))
    with pytest.raises(MiningError, match="max_output_triplets"):
        AllTripletsMiner(max_output_triplets=0)
    with pytest.raises(MiningError, match="tri_expand_k"):
        TripletMinerWithMemory(2, 0)
