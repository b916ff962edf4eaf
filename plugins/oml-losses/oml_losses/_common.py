"""Helpers shared by the losses: argument checks with clear errors, reductions, a zero loss that keeps gradients."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from oml_core.errors import OMLError

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")


class LossError(OMLError, ValueError):
    """A loss was given arguments or inputs it cannot work with."""


def check_reduction(reduction: str, who: str) -> None:
    if reduction not in REDUCTIONS:
        raise LossError(f"{who}(reduction={reduction!r}): expected one of {', '.join(REDUCTIONS)}")


def check_margin(margin: float | None, who: str) -> None:
    if margin is not None and not margin > 0:
        raise LossError(f"{who}(margin={margin!r}): the margin must be positive, or None for the soft-margin loss")


def get_reduced(values: Tensor, reduction: str) -> Tensor:
    """``values.mean()``, ``values.sum()`` or ``values`` itself.

    Example:
        >>> get_reduced(torch.tensor([1.0, 3.0]), "mean")
        tensor(2.)
    """
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise LossError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


def zero_loss(features: Tensor, reduction: str) -> Tensor:
    """A zero loss connected to ``features`` (so ``backward()`` works and gives zero gradients): what a loss
    returns for a batch that has nothing to learn from, e.g. no valid triplet."""
    anchor = features.sum() * 0.0
    if reduction == "none":
        return anchor.reshape(1)[:0]
    return anchor


def triplet_values(positive_dist: Tensor, negative_dist: Tensor, margin: float | None) -> Tensor:
    """Per-triplet loss: ``relu(margin + d(a, p) - d(a, n))``, or ``softplus(d(a, p) - d(a, n))`` (OML's
    ``log1p(exp(.))``, computed without overflow) for the soft-margin version (``margin=None``)."""
    if margin is None:
        return torch.nn.functional.softplus(positive_dist - negative_dist)
    return torch.relu(margin + positive_dist - negative_dist)
