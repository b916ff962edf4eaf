"""Tiny deterministic data for tests: a few labels, a few instances each, embeddings that cluster by label."""

from __future__ import annotations

import torch
from torch import Tensor


def tiny_labels(n_labels: int = 4, n_instances: int = 3) -> Tensor:
    """Labels ``[0, 0, 0, 1, 1, 1, ...]`` (``n_labels * n_instances`` items).

    Example:
        >>> tiny_labels(2, 2).tolist()
        [0, 0, 1, 1]
    """
    return torch.arange(n_labels).repeat_interleave(n_instances)


def tiny_embeddings(labels: Tensor, dim: int = 8, *, noise: float = 0.3, seed: int = 0) -> Tensor:
    """Embeddings near one random centre per label, so that retrieval on them is easy but not trivial.

    Example:
        >>> tiny_embeddings(tiny_labels(2, 2), dim=4).shape
        torch.Size([4, 4])
    """
    generator = torch.Generator().manual_seed(seed)
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    centres = torch.randn(n_labels, dim, generator=generator)
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=generator)
