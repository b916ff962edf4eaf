"""The vectorised loss against an obviously-correct loop over labels and label pairs."""

import itertools

import pytest
import torch

from oml_plugin_template import CentroidLoss


def slow_centroid_loss(embeddings, labels, margin, push_weight):
    labels = labels.tolist()
    unique = sorted(set(labels))
    centroids = {y: torch.stack([e for e, lab in zip(embeddings, labels, strict=True) if lab == y]).mean(0) for y in unique}
    pull = sum(float(((e - centroids[lab]) ** 2).sum()) for e, lab in zip(embeddings, labels, strict=True)) / len(labels)
    pairs = [(a, b) for a, b in itertools.product(unique, unique) if a != b]
    push = 0.0
    for a, b in pairs:
        distance = float(((centroids[a] - centroids[b]) ** 2).sum()) ** 0.5
        push += max(margin - distance, 0.0) ** 2
    push = push / len(pairs) if pairs else 0.0
    return pull + push_weight * push


@pytest.mark.parametrize("seed", range(5))
def test_centroid_loss_equals_the_loop(seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (13,), generator=generator)
    embeddings = torch.randn(13, 5, generator=generator) * 0.4
    margin, push_weight = 0.5 + seed * 0.3, 0.5 + seed
    got = CentroidLoss(margin=margin, push_weight=push_weight)(embeddings, labels)
    assert float(got) == pytest.approx(slow_centroid_loss(embeddings, labels, margin, push_weight), rel=1e-5, abs=1e-6)


def test_centroid_loss_logs_its_parts():
    loss = CentroidLoss(margin=10.0)
    value = loss(torch.tensor([[0.0, 0.0], [2.0, 0.0], [5.0, 0.0]]), torch.tensor([7, 7, 3]))
    # centroids (1, 0) and (5, 0): pull = (1 + 1 + 0) / 3, push = (10 - 4)^2 for both ordered pairs
    assert loss.last_logs == pytest.approx({"pull": 2 / 3, "push": 36.0, "n_labels": 2.0})
    assert float(value) == pytest.approx(2 / 3 + 36.0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="margin"):
        CentroidLoss(margin=-1.0)
