"""Checks for every registered pairwise model (``protocols.PairwiseModel``), built from its example config.

A pairwise model says what it compares with ``input_kind``: ``"images"`` (the default; checked on
``(B, 3, 32, 32)`` batches, so its example must accept 32 x 32 images) or ``"embeddings"`` (``(B, D)`` batches with
``D = model.feat_dim`` when it has one, else 8). ``symmetric = True`` promises ``predict(x1, x2) == predict(x2, x1)``.

``forward(x1, x2)`` (training) and ``predict(x1, x2)`` (inference) must give one finite float score per pair, shape
``(B,)`` (also for ``B = 1``); a pair of identical inputs must be handled (finite scores and finite gradients: a
distance through ``sqrt`` of a zero sum would give NaN gradients); in train mode the loss must bring finite,
non-zero gradients to the parameters (or, for a model without parameters, to its inputs); and a fresh instance
that loads another's state_dict (through a ``weights_only`` save/load) predicts the same.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import Tensor

from oml_core.host import Host
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import build_example, register_contract

IMAGE_SIZE = 32
EMBEDDING_DIM = 8


def _inputs(model: Any, batch: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if getattr(model, "input_kind", "images") == "embeddings":
        dim = int(getattr(model, "feat_dim", EMBEDDING_DIM))
        shape: tuple[int, ...] = (batch, dim)
    else:
        shape = (batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    return torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)


def _check_scores(name: str, method: str, scores: Any, batch: int) -> None:
    assert isinstance(scores, Tensor) and scores.dtype.is_floating_point, f"{name}.{method} returned {type(scores).__name__}"
    assert tuple(scores.shape) == (batch,), (
        f"{name}.{method} returned shape {tuple(scores.shape)} for {batch} pairs, not ({batch},)"
    )
    assert torch.isfinite(scores).all(), f"{name}.{method} returned non-finite scores"


def _eval(model: Any) -> Any:
    return model.eval() if isinstance(model, torch.nn.Module) else model


@register_contract("pairwise_models")
def pairwise_model_scores_pairs(host: Host, spec: ComponentSpec) -> None:
    """``forward`` and ``predict`` map a batch of pairs to ``(B,)`` finite float scores, for B = 3 and B = 1."""
    model = build_example(host, spec)
    assert callable(getattr(model, "predict", None)), f"{spec.name} has no predict(x1, x2)"
    assert getattr(model, "input_kind", "images") in ("images", "embeddings"), (
        f"{spec.name}: input_kind must be images/embeddings"
    )
    _eval(model)
    with torch.no_grad():
        for batch in (3, 1):
            x1, x2 = _inputs(model, batch, seed=batch)
            _check_scores(spec.name, "forward", model(x1=x1, x2=x2), batch)
            _check_scores(spec.name, "predict", model.predict(x1, x2), batch)


@register_contract("pairwise_models")
def pairwise_model_handles_identical_and_swapped_pairs(host: Host, spec: ComponentSpec) -> None:
    """Identical inputs give finite scores and finite gradients; a ``symmetric`` model scores both orders alike."""
    model = _eval(build_example(host, spec))
    x1, x2 = _inputs(model, 4, seed=5)
    with torch.no_grad():
        _check_scores(spec.name, "predict", model.predict(x1, x1.clone()), 4)
        if getattr(model, "symmetric", False):
            assert torch.allclose(model.predict(x1, x2), model.predict(x2, x1), atol=1e-5), (
                f"{spec.name} says symmetric = True, but predict(x1, x2) != predict(x2, x1)"
            )
    same = x1.clone().requires_grad_(True)
    model(x1=same, x2=same).sum().backward()
    assert same.grad is not None and torch.isfinite(same.grad).all(), (
        f"{spec.name}: a pair of identical inputs gives non-finite gradients"
    )


@register_contract("pairwise_models")
def pairwise_model_trains_with_gradients(host: Host, spec: ComponentSpec) -> None:
    """In train mode, ``BCEWithLogitsLoss(forward(x1, x2), targets)`` brings finite, non-zero gradients to the
    trainable parameters (or to the inputs, for a model without any)."""
    model = build_example(host, spec)
    if isinstance(model, torch.nn.Module):
        model.train()
    params = [p for p in model.parameters() if p.requires_grad] if isinstance(model, torch.nn.Module) else []
    x1, x2 = _inputs(model, 4, seed=7)
    x1.requires_grad_(True)
    logits = model(x1=x1, x2=x2)
    assert logits.requires_grad, f"{spec.name}: forward in train mode returns scores without gradients"
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1.0, 0.0, 1.0])).backward()
    if params:
        assert any(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params), (
            f"{spec.name}: no parameter received a finite, non-zero gradient"
        )
    else:
        assert x1.grad is not None and torch.isfinite(x1.grad).all() and x1.grad.abs().sum() > 0, (
            f"{spec.name}: a model without parameters must pass gradients to its inputs"
        )


@register_contract("pairwise_models")
def pairwise_model_state_dict_round_trips(host: Host, spec: ComponentSpec) -> None:
    """A fresh instance loads another's state_dict strictly (after a ``weights_only`` save/load) and then agrees."""
    first: Any = build_example(host, spec)
    is_module = isinstance(first, torch.nn.Module)  # kept as a flag: narrowing `first` would hide its predict()
    if not is_module:
        return
    second: Any = build_example(host, spec)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    first.eval()
    second.eval()
    x1, x2 = _inputs(first, 3, seed=11)
    with torch.no_grad():
        assert torch.allclose(first.predict(x1, x2), second.predict(x1, x2), atol=1e-5), (
            f"{spec.name} predicts differently after a state_dict round trip"
        )
