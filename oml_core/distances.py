"""Distances between embeddings: the one implementation every part of OML and every plugin uses.

``normalise`` is safe on a zero vector (it stays zero, with a finite gradient; dividing by the norm gave NaN).

Example:
    >>> import torch
    >>> pairwise_dist(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    tensor([[5., 1.]])
"""

from __future__ import annotations

import torch
from torch import Tensor

from oml_core.errors import OMLError


def pairwise_dist(x1: Tensor, x2: Tensor, p: int | float = 2) -> Tensor:
    """All ``p``-norm distances between the rows of ``x1`` ``(N, D)`` and ``x2`` ``(M, D)``: ``(N, M)``
    (``torch.cdist``, as OML computes them, so mined triplets and metrics match OML's).

    This holds the whole ``N x M`` matrix; for retrieval over large galleries use ``oml_core.retrieval.knn``.

    Example:
        >>> pairwise_dist(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        tensor([[5., 1.]])
    """
    if x1.ndim != 2 or x2.ndim != 2:
        raise OMLError(
            f"pairwise_dist takes two 2-D tensors (N, D) and (M, D), got shapes {tuple(x1.shape)} and {tuple(x2.shape)}"
        )
    if x1.shape[1] != x2.shape[1]:
        raise OMLError(f"pairwise_dist: dimensions differ, {x1.shape[1]} and {x2.shape[1]}")
    return torch.cdist(x1, x2, p=p)


def elementwise_dist(x1: Tensor, x2: Tensor, p: int | float = 2) -> Tensor:
    """The ``p``-norm distance of each row of ``x1`` to the same row of ``x2``: ``(N, D), (N, D) -> (N,)``.

    ``vector_norm`` (not ``sqrt`` of a sum) keeps the gradient finite for identical rows.

    Example:
        >>> elementwise_dist(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0], [1.0, 2.0]]))
        tensor([5., 1.])
    """
    if x1.shape != x2.shape or x1.ndim != 2:
        raise OMLError(f"elementwise_dist takes two 2-D tensors of the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    return torch.linalg.vector_norm(x1 - x2, ord=p, dim=1)


def normalise(x: Tensor, p: int | float = 2, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """``x`` divided by its ``p``-norm along ``dim``. An all-zero vector stays zero, with finite (zero) gradients.

    OML divided by the norm itself, so a zero vector (a ReLU backbone can output one) became NaN and the NaN
    spread through the loss into every weight. Clamping the norm at ``eps`` keeps the result and its gradient finite.

    Example:
        >>> normalise(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]])
    """
    return x / torch.linalg.vector_norm(x, ord=p, dim=dim, keepdim=True).clamp_min(eps)


__all__ = ["elementwise_dist", "normalise", "pairwise_dist"]
