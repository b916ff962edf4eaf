"""Losses against hand-computed values and slow Python loops."""

from __future__ import annotations

import io
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from oml_losses import (
    ArcFaceLoss,
    ArcFaceLossWithMLP,
    ContrastiveLoss,
    LossError,
    SurrogatePrecision,
    TripletLoss,
    TripletLossPlain,
    TripletLossWithMiner,
    all_triplets_loss,
    label_smoothing,
    surrogate_precision,
)
from oml_miners import (
    AllTripletsMiner,
    HardClusterMiner,
    HardTripletsMiner,
    NHardTripletsMiner,
    PairsMiner,
    TripletMinerWithMemory,
    positive_negative_masks,
)
from torch import Tensor


def on_circle(*degrees: float) -> Tensor:
    radians = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(radians), torch.sin(radians)], dim=1)


def chord(degrees: float) -> float:
    return 2 * math.sin(math.radians(degrees) / 2)


# ---------------------------------------------------------------------------------------------- triplet
@pytest.mark.parametrize("margin", [0.5, None])
def test_triplet_loss_on_a_circle(margin: float | None) -> None:
    # anchor at 0 deg; positives at 60 / 10 deg (chords 1 and ~0.174), negatives at 90 / 120 deg (chords sqrt 2, sqrt 3)
    anchor, positive, negative = on_circle(0, 0), on_circle(60, 10), on_circle(90, 120)
    gaps = [chord(60) - chord(90), chord(10) - chord(120)]
    assert chord(60) == pytest.approx(1.0) and chord(90) == pytest.approx(math.sqrt(2))
    if margin is None:
        expected = [math.log1p(math.exp(g)) for g in gaps]
    else:
        expected = [max(0.0, margin + g) for g in gaps]
    loss = TripletLoss(margin=margin, reduction="none", need_logs=True)
    assert loss(anchor, positive, negative).tolist() == pytest.approx(expected)
    assert float(TripletLoss(margin=margin)(anchor, positive, negative)) == pytest.approx(sum(expected) / 2)
    assert float(TripletLoss(margin=margin, reduction="sum")(anchor, positive, negative)) == pytest.approx(sum(expected))
    assert loss.last_logs["pos_dist"] == pytest.approx((chord(60) + chord(10)) / 2)
    assert loss.last_logs["active_tri"] == (1.0 if margin is None else 0.5)  # 0.5 + 0.174 - 1.732 < 0
    stacked = torch.stack([anchor, positive, negative], dim=1).reshape(6, 2)
    assert float(TripletLossPlain(margin=margin)(stacked)) == pytest.approx(sum(expected) / 2)


def ref_triplet_loss(features: Tensor, labels: list[int], margin: float | None) -> tuple[Tensor, dict[str, float]]:
    values, pos, neg = [], [], []
    for a in range(len(labels)):
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a]:
                continue
            for n in range(len(labels)):
                if labels[n] == labels[a]:
                    continue
                dp = (features[a] - features[p]).norm()
                dn = (features[a] - features[n]).norm()
                values.append(torch.log1p(torch.exp(dp - dn)) if margin is None else torch.relu(margin + dp - dn))
                pos.append(float(dp.detach()))
                neg.append(float(dn.detach()))
    stacked = torch.stack(values)
    logs = {"active_tri": float((stacked > 0).double().mean()), "pos_dist": sum(pos) / len(pos), "neg_dist": sum(neg) / len(neg)}
    return stacked.mean(), logs


def random_batch(seed: int, sizes: list[int], dim: int = 5) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), i) for i, n in enumerate(sizes)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels


@pytest.mark.parametrize("margin", [0.3, 1.5, None])
@pytest.mark.parametrize(("seed", "sizes"), [(0, [3, 3, 3]), (1, [1, 4, 2, 5]), (2, [6, 1, 1])])
@pytest.mark.parametrize("block_elements", [1 << 22, 7])  # one block, and one anchor per block
def test_all_triplets_loss_equals_loop_with_gradients(
    margin: float | None, seed: int, sizes: list[int], block_elements: int
) -> None:
    features, labels = random_batch(seed, sizes)
    x_ref = features.clone().requires_grad_()
    expected, expected_logs = ref_triplet_loss(x_ref, labels.tolist(), margin)
    expected.backward()
    x = features.clone().requires_grad_()
    criterion = TripletLossWithMiner(margin=margin, miner=AllTripletsMiner(), need_logs=True, block_elements=block_elements)
    loss = criterion(x, labels)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    assert x.grad is not None and x_ref.grad is not None
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-9)
    assert criterion.last_logs == pytest.approx(expected_logs, rel=1e-9)


def test_all_triplets_sum_and_listed_triplets_agree_with_the_blocked_path() -> None:
    features, labels = random_batch(3, [4, 4, 4, 4], dim=8)
    dense = TripletLossWithMiner(margin=0.5, reduction="sum")(features, labels)
    listed = TripletLossWithMiner(margin=0.5, reduction="none")(features, labels)  # "none" lists every triplet
    assert len(listed) == 16 * 3 * 12
    assert dense.item() == pytest.approx(listed.sum().item(), rel=1e-9)
    pos, neg = positive_negative_masks(labels)
    loss, _ = all_triplets_loss(features, pos, neg, margin=0.5, reduction="mean")
    assert loss.item() == pytest.approx(float(listed.mean()), rel=1e-9)
    # a random subset of triplets goes through sample(): with max_output_triplets >= all it is the dense value
    subset = TripletLossWithMiner(margin=0.5, miner=AllTripletsMiner(max_output_triplets=100, seed=0), reduction="none")(
        features, labels
    )
    assert len(subset) == 100 and set(subset.tolist()) <= set(listed.tolist())


@pytest.mark.parametrize("miner", [HardTripletsMiner(), NHardTripletsMiner(2, 3), HardClusterMiner()], ids=repr)
def test_triplet_loss_with_a_miner_equals_the_loss_of_its_triplets(miner) -> None:  # noqa: ANN001
    features, labels = random_batch(4, [3, 4, 2, 3])
    x = features.clone().requires_grad_()
    criterion = TripletLossWithMiner(margin=0.2, miner=miner, need_logs=True)
    loss = criterion(x, labels)
    loss.backward()
    triplets = miner.sample(features, labels)
    pool = getattr(triplets, "pool_features", features)
    a, p, n = triplets
    expected = [max(0.0, 0.2 + float((pool[i] - pool[j]).norm() - (pool[i] - pool[k]).norm())) for i, j, k in zip(a, p, n)]
    assert loss.item() == pytest.approx(sum(expected) / len(expected), rel=1e-9)
    assert criterion.last_logs["active_tri"] == pytest.approx(sum(v > 0 for v in expected) / len(expected))
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("margin", [0.5, None])
def test_gathered_triplet_gradients_equal_autograd(margin: float | None) -> None:
    features, labels = random_batch(7, [3, 4, 2, 3])
    triplets = NHardTripletsMiner(2, 3).sample(features, labels)  # repeated anchors/positives: accumulation matters
    x, x_ref = features.clone().requires_grad_(), features.clone().requires_grad_()
    weights = torch.rand(len(triplets), dtype=torch.float64)
    values = TripletLossWithMiner(margin=margin, miner=NHardTripletsMiner(2, 3), reduction="none")(x, labels)
    (values * weights).sum().backward()
    a, p, n = triplets
    expected = TripletLoss(margin=margin, reduction="none")(x_ref[a], x_ref[p], x_ref[n])
    (expected * weights).sum().backward()
    assert torch.allclose(values, expected) and x.grad is not None and x_ref.grad is not None
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-12)


def test_hard_triplet_loss_by_hand() -> None:
    # 1-d: label 0 at 0, 1, 3; label 1 at 1.5, 6.
    # Hardest (positive, negative): 0 -> (3, 1.5), 1 -> (3, 1.5), 3 -> (0, 1.5), 1.5 -> (6, 1), 6 -> (1.5, 3)
    features = torch.tensor([[0.0], [1.0], [3.0], [1.5], [6.0]])
    loss = TripletLossWithMiner(margin=1.0, miner=HardTripletsMiner(), reduction="none")(features, torch.tensor([0, 0, 0, 1, 1]))
    expected = [1 + 3 - 1.5, 1 + 2 - 0.5, 1 + 3 - 1.5, 1 + 4.5 - 0.5, 1 + 4.5 - 3]
    assert loss.tolist() == pytest.approx(expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("miner", [AllTripletsMiner(), HardTripletsMiner(), TripletMinerWithMemory(2, 2)], ids=repr)
def test_batch_without_triplets_gives_a_zero_loss_with_gradients(reduction: str, miner) -> None:  # noqa: ANN001
    criterion = TripletLossWithMiner(margin=0.1, miner=miner, reduction=reduction, need_logs=True)  # type: ignore[arg-type]
    for labels in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        x = torch.randn(5, 3, requires_grad=True)
        loss = criterion(x, labels)
        assert loss.requires_grad and loss.sum().item() == 0.0 and loss.shape == ((0,) if reduction == "none" else ())
        loss.sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) == 0.0
        assert criterion.last_logs["active_tri"] == 0.0


def test_seed_000_usage_and_logs() -> None:
    criterion = TripletLossWithMiner(margin=0.1, miner=AllTripletsMiner(), need_logs=True)
    embeddings = torch.randn(4, 16, requires_grad=True)
    loss = criterion(embeddings, torch.tensor([3, 3, 8, 8]))
    loss.backward()
    logs = criterion.last_logs
    assert set(logs) == {"active_tri", "pos_dist", "neg_dist"} and all(isinstance(v, float) for v in logs.values())
    e = embeddings.detach()
    assert logs["pos_dist"] == pytest.approx(float((e[0] - e[1]).norm() + (e[2] - e[3]).norm()) / 2, rel=1e-5)
    assert TripletLossWithMiner(margin=0.1).miner.__class__ is AllTripletsMiner


def test_memory_miner_state_travels_with_the_criterion_state_dict() -> None:
    batches = [random_batch(s, [2, 2, 2, 2]) for s in range(4)]
    whole = TripletLossWithMiner(margin=0.1, miner=TripletMinerWithMemory(2, 3, seed=0), need_logs=True)
    expected = [whole(f.float(), lab).item() for f, lab in batches]
    assert {"orig_active_tri", "bank_active_tri", "pos_dist_bank"} <= set(whole.last_logs)
    first = TripletLossWithMiner(margin=0.1, miner=TripletMinerWithMemory(2, 3, seed=0))
    for f, lab in batches[:2]:
        first(f.float(), lab)
    resumed = TripletLossWithMiner(margin=0.1, miner=TripletMinerWithMemory(2, 3, seed=5))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as the engine checkpoints it
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert [resumed(f.float(), lab).item() for f, lab in batches[2:]] == pytest.approx(expected[2:])


def test_all_triplets_at_batch_1024_stays_small() -> None:
    """The seeds' default (all triplets) at batch 1024 = 64 labels x 16 instances: 15.6M triplets, whose gathered
    features alone would take 3 x 15.6M x 384 x 4 bytes = 72 GB. Peak memory growth must stay far below 2 GB."""
    code = textwrap.dedent(
        """
        import torch
        from oml_losses import TripletLossWithMiner

        def status_mb(field):
            # VmHWM/VmRSS belong to this address space (ru_maxrss would include the forking pytest worker's peak)
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

        from oml_miners import count_all_triplets
        labels = torch.arange(64).repeat_interleave(16)
        x = torch.randn(1024, 384, requires_grad=True)
        assert count_all_triplets(labels) == 1024 * 15 * 1008
        before = status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
            f.write("5")
        loss = TripletLossWithMiner(margin=0.1, need_logs=True)(x, labels)
        loss.backward()
        after = status_mb("VmHWM")
        assert torch.isfinite(x.grad).all()
        print(after - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert float(out.stdout.strip()) < 500, f"peak memory grew by {out.stdout.strip()} MB"


# ---------------------------------------------------------------------------------------------- arcface
def arcface_by_hand(cosines: list[float], label: int, m: float, s: float) -> float:
    logits = []
    for c, cos in enumerate(cosines):
        if c == label:
            theta = math.acos(cos)
            cos = math.cos(theta + m) if theta < math.pi - m else cos - math.sin(m) * m
        logits.append(s * cos)
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_arcface_on_a_circle() -> None:
    criterion = ArcFaceLoss(in_features=2, num_classes=3, m=0.5, s=10.0).double()
    with torch.no_grad():
        criterion.weight.copy_(
            on_circle(0, 90, 200) * torch.tensor([[2.0], [0.5], [1.0]], dtype=torch.float64)
        )  # norms do not matter
    x = on_circle(30, 170) * 3
    loss = criterion(x, torch.tensor([0, 0]))
    cos_first = [math.cos(math.radians(a)) for a in (30, 60, 170)]
    cos_second = [math.cos(math.radians(a)) for a in (170, 80, 30)]  # 170 > 180 - 28.6: the linear fallback
    expected = (arcface_by_hand(cos_first, 0, 0.5, 10) + arcface_by_hand(cos_second, 0, 0.5, 10)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert criterion.last_logs["accuracy"] == 0.5
    loss.backward()
    assert criterion.weight.grad is not None and bool(torch.isfinite(criterion.weight.grad).all())
    assert set(criterion.state_dict()) == {"weight"}


def test_arcface_label_smoothing_matches_soft_cross_entropy() -> None:
    torch.manual_seed(0)
    criterion = ArcFaceLoss(
        in_features=4, num_classes=4, m=0.3, s=16.0, smoothing_epsilon=0.2, label2category={0: "a", 1: "a", 2: "b", 3: "b"}
    )
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 2])
    loss = criterion(x, y)
    plain = ArcFaceLoss(in_features=4, num_classes=4, m=0.3, s=16.0, reduction="none")
    plain.load_state_dict(criterion.state_dict())
    cos = plain.fc(x)
    theta = torch.acos(cos.clamp(-1, 1))
    logits = 16.0 * torch.where(torch.nn.functional.one_hot(y, 4).bool(), torch.cos(theta + 0.3), cos)
    targets = torch.tensor(
        [[0.9, 0.1, 0, 0], [0.1, 0.9, 0, 0], [0, 0, 0.9, 0.1], [0, 0, 0.1, 0.9], [0.9, 0.1, 0, 0], [0, 0, 0.9, 0.1]]
    )
    expected = -(targets * torch.log_softmax(logits, 1)).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert label_smoothing(torch.tensor([1]), 4, 0.4)[0].tolist() == pytest.approx([0.1, 0.7, 0.1, 0.1])


def test_arcface_with_mlp_is_arcface_on_the_projection() -> None:
    torch.manual_seed(0)
    criterion = ArcFaceLossWithMLP(in_features=8, num_classes=3, mlp_features=[16, 4], m=0.2, s=8.0)
    layers = [type(m).__name__ for m in criterion.mlp]
    assert layers == ["Linear", "ReLU", "Linear"]
    x, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 1, 0])
    assert criterion(x, y).item() == pytest.approx(criterion.arcface(criterion.mlp(x), y).item())
    assert {"mlp.0.weight", "mlp.2.bias", "arcface.weight"} <= set(criterion.state_dict())


def test_arcface_errors_name_the_problem() -> None:
    criterion = ArcFaceLoss(in_features=4, num_classes=3)
    with pytest.raises(LossError, match=r"got label 3; labels must be 0 \.\. 2"):
        criterion(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(LossError, match="in_features=4"):
        criterion(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(LossError, match="label2category"):
        ArcFaceLoss(in_features=4, num_classes=3, label2category={0: "a"})


# ---------------------------------------------------------------------------------------------- contrastive
def test_contrastive_by_hand_and_against_a_loop() -> None:
    features = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    criterion = ContrastiveLoss(pos_margin=0.5, neg_margin=2.0, need_logs=True)
    # positive pairs (0,1): d=1 -> 0.5; (2,3): d=2.5 -> 2.
    # negative pairs (0,2) 1.5 -> 0.5, (0,3) 4 -> 0, (1,2) .5 -> 1.5, (1,3) 3 -> 0
    assert float(criterion(features, labels)) == pytest.approx((0.5 + 2.0) / 2 + (0.5 + 0 + 1.5 + 0) / 4)
    assert criterion.last_logs["active_neg"] == 0.5
    features, labels = random_batch(5, [3, 1, 4])
    values = ContrastiveLoss(0.2, 1.1, reduction="none")(features, labels)
    expected = []
    for negative in (False, True):
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                if (labels[i] != labels[j]) != negative:
                    continue
                if negative and (labels == labels[i]).sum() < 2 and (labels == labels[j]).sum() < 2:
                    continue  # no triplet holds this pair
                d = float((features[i] - features[j]).norm())
                expected.append(max(0.0, 1.1 - d) if negative else max(0.0, d - 0.2))
    assert values.tolist() == pytest.approx(expected)
    hard = ContrastiveLoss(miner=PairsMiner(hard_mining=True), reduction="none")(features, labels)
    assert len(hard) == len(PairsMiner(hard_mining=True).sample(features, labels))


# ---------------------------------------------------------------------------------------------- surrogate precision
def ref_surrogate(features: Tensor, labels: list[int], k: int, t1: float, t2: float) -> Tensor:
    n = len(labels)
    d = [[(features[i] - features[j]).norm() for j in range(n)] for i in range(n)]
    out = []
    for i in range(n):
        hits = torch.zeros((), dtype=features.dtype)
        relevant = sum(labels[j] == labels[i] for j in range(n))
        for j in range(n):
            rank = sum(torch.sigmoid((d[i][j] - d[i][m]) / t2) for m in range(n))
            if labels[j] == labels[i]:
                hits = hits + torch.sigmoid((k + 1 - rank) / t1)
        out.append(1 - hits / min(relevant, k + 1))
    return torch.stack(out)


@pytest.mark.parametrize("block_elements", [1 << 22, 20])
def test_surrogate_precision_equals_loop_with_gradients(block_elements: int) -> None:
    features, labels = random_batch(6, [3, 2, 4], dim=3)
    x_ref = features.clone().requires_grad_()
    expected = ref_surrogate(x_ref, labels.tolist(), k=2, t1=0.5, t2=0.1).mean()
    expected.backward()
    x = features.clone().requires_grad_()
    distances = torch.cdist(x, x)
    mask = labels[:, None] == labels[None, :]
    loss = 1 - surrogate_precision(distances, mask, k=3, t1=0.5, t2=0.1, block_elements=block_elements)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    assert x.grad is not None and x_ref.grad is not None and torch.allclose(x.grad, x_ref.grad, atol=1e-8)
    assert float(SurrogatePrecision(k=2, temperature1=0.5, temperature2=0.1)(features, labels)) == pytest.approx(
        expected.item(), rel=1e-9
    )


def test_surrogate_precision_is_near_exact_precision_at_low_temperature() -> None:
    # two tight, far-apart clusters of 3: every query's 2 nearest others share its label -> precision@2 = 1
    features = torch.tensor([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert float(SurrogatePrecision(k=2, temperature1=0.01, temperature2=0.001)(features, labels)) == pytest.approx(0.0, abs=1e-3)
    mixed = torch.tensor([0, 1, 0, 1, 0, 1])  # neighbours alternate labels
    assert float(SurrogatePrecision(k=2, temperature1=0.01, temperature2=0.001)(features, mixed)) > 0.3


# ---------------------------------------------------------------------------------------------- arguments
def test_bad_arguments_are_reported() -> None:
    with pytest.raises(LossError, match="margin"):
        TripletLossWithMiner(margin=0.0)
    with pytest.raises(LossError, match="reduction"):
        TripletLoss(margin=0.1, reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(LossError, match="3 embeddings but 2 labels"):
        TripletLossWithMiner(margin=0.1)(torch.randn(3, 2), torch.tensor([0, 1]))
    with pytest.raises(LossError, match="sample"):
        TripletLossWithMiner(margin=0.1, miner=object())  # type: ignore[arg-type]
    with pytest.raises(LossError, match="pos_margin"):
        ContrastiveLoss(pos_margin=1.0, neg_margin=0.5)
    with pytest.raises(LossError, match="k must be"):
        SurrogatePrecision(k=0)
