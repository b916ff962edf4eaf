"""Checks for every registered loss (``protocols.Criterion``), built from its example config.

The checks call ``criterion(embeddings (B, 8), labels)`` with labels in ``0..3``, so a loss whose config needs sizes
(e.g. ArcFace's ``in_features`` / ``num_classes``) must register an example with ``in_features: 8`` and at least
4 classes. A loss must return a finite scalar that backpropagates finite gradients, also on a batch where no
triplet or positive pair exists (then typically zero), and, if it is an ``nn.Module``, survive a
``state_dict()`` / ``load_state_dict()`` round trip (the engine checkpoints learnable losses such as ArcFace).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from oml_core.host import Host
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import build_example, register_contract
from oml_core.testing.data import tiny_embeddings, tiny_labels

EMBEDDING_DIM = 8


def _call(spec: ComponentSpec, criterion: object, labels: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    # overlapping clusters: even a margin loss on the hardest triplets has something to learn
    embeddings = tiny_embeddings(labels, dim=EMBEDDING_DIM, noise=2.0, seed=seed).requires_grad_()
    assert callable(criterion), f"{spec.name} is not callable as criterion(embeddings, labels)"
    loss = criterion(embeddings, labels)
    assert isinstance(loss, Tensor), f"{spec.name} returned {type(loss).__name__}, not a Tensor"
    assert loss.ndim == 0, f"{spec.name} returned shape {tuple(loss.shape)}; a criterion returns a scalar"
    assert bool(torch.isfinite(loss)), f"{spec.name} returned a non-finite loss {loss.item()}"
    assert loss.requires_grad, f"{spec.name} returned a loss without a graph (it cannot train anything)"
    loss.backward()
    assert embeddings.grad is not None, f"{spec.name}: no gradient reaches the embeddings"
    assert bool(torch.isfinite(embeddings.grad).all()), f"{spec.name}: non-finite gradients"
    return loss, embeddings.grad


@register_contract("losses")
def loss_is_a_finite_scalar_with_gradients(host: Host, spec: ComponentSpec) -> None:
    """On 4 overlapping labels x 3 instances the loss is a finite scalar with finite gradients, not all zero."""
    criterion = build_example(host, spec)
    _, grad = _call(spec, criterion, tiny_labels(4, 3))
    assert float(grad.abs().sum()) > 0, f"{spec.name}: all gradients are zero on an ordinary batch"
    if isinstance(criterion, nn.Module):
        for name, parameter in criterion.named_parameters():
            assert parameter.grad is None or bool(torch.isfinite(parameter.grad).all()), f"{spec.name}: non-finite grad of {name}"
    logs = getattr(criterion, "last_logs", {})
    assert isinstance(logs, dict), f"{spec.name}.last_logs must be a dict, got {type(logs).__name__}"
    for key, value in logs.items():
        assert math.isfinite(float(value)), f"{spec.name}.last_logs[{key!r}] = {value!r} is not a finite number"


@register_contract("losses")
def loss_handles_a_batch_without_triplets(host: Host, spec: ComponentSpec) -> None:
    """A batch of single instances, and a batch of one label, give a finite loss that backpropagates, not a crash."""
    criterion = build_example(host, spec)
    for labels in (torch.arange(4), torch.full((4,), 2)):
        _call(spec, criterion, labels)


@register_contract("losses")
def loss_state_dict_round_trips(host: Host, spec: ComponentSpec) -> None:
    """A second instance loaded with the first one's ``state_dict`` computes the same loss."""
    first = build_example(host, spec)
    if not isinstance(first, nn.Module):
        return
    second = build_example(host, spec)
    second.load_state_dict(first.state_dict())
    labels = tiny_labels(4, 3)
    embeddings = tiny_embeddings(labels, dim=EMBEDDING_DIM, seed=3)
    torch.manual_seed(0)
    expected = first(embeddings, labels)
    torch.manual_seed(0)
    got = second(embeddings, labels)
    assert torch.allclose(expected, got), (
        f"{spec.name}: the loss differs after load_state_dict ({expected.item()} vs {got.item()})"
    )
