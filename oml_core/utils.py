"""Small tensor helpers under the names OML's users call (``from oml.utils.misc_torch import pairwise_dist``);
they are those of ``oml_core.distances``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from oml_core.distances import elementwise_dist, normalise, pairwise_dist
from oml_core.errors import OMLError


def take_2d(x: Tensor, indices: Tensor) -> Tensor:
    """Row-wise gather: ``out[i, j] = x[i, indices[i, j]]`` (OML's ``misc_torch.take_2d``).

    Example:
        >>> take_2d(torch.tensor([[10, 11, 12], [20, 21, 22]]), torch.tensor([[2, 0], [1, 1]]))
        tensor([[12, 10],
                [21, 21]])
    """
    if x.ndim != 2 or indices.ndim != 2 or len(x) != len(indices):
        raise OMLError(f"take_2d takes (N, M) values and (N, K) indices, got {tuple(x.shape)} and {tuple(indices.shape)}")
    return x.gather(1, indices.long())


def assign_2d(x: Tensor, indices: Tensor, new_values: Tensor) -> Tensor:
    """Row-wise scatter: ``x[i, indices[i, j]] = new_values[i, j]`` in place; returns ``x`` (OML's ``assign_2d``).

    Example:
        >>> assign_2d(torch.zeros(2, 3), torch.tensor([[2], [0]]), torch.tensor([[1.0], [5.0]]))
        tensor([[0., 0., 1.],
                [5., 0., 0.]])
    """
    if indices.shape != new_values.shape or len(x) != len(indices):
        raise OMLError(
            f"assign_2d takes (N, M) values and (N, K) indices and new values, got {tuple(x.shape)}, "
            f"{tuple(indices.shape)} and {tuple(new_values.shape)}"
        )
    return x.scatter_(1, indices.long(), new_values.to(x.dtype))


def get_device(model: torch.nn.Module) -> str:
    """The device of the model's first parameter, as a string (``"cpu"`` for a model without parameters).

    Example:
        >>> get_device(torch.nn.Linear(1, 1))
        'cpu'
    """
    parameter = next(model.parameters(), None)
    return str(parameter.device) if parameter is not None else "cpu"


def is_sorted_tensor(x: Tensor) -> bool:
    """Whether the 1-D tensor ``x`` is sorted ascending.

    Example:
        >>> is_sorted_tensor(torch.tensor([1, 2, 2])), is_sorted_tensor(torch.tensor([2, 1]))
        (True, False)
    """
    return len(x) < 2 or bool((x[1:] >= x[:-1]).all())


@contextmanager
def temporary_setting_model_mode(model: torch.nn.Module, set_train: bool) -> Iterator[torch.nn.Module]:
    """Put ``model`` in train (``set_train``) or eval mode inside the ``with`` block, then back as it was.

    Example:
        >>> model = torch.nn.Dropout().train()
        >>> with temporary_setting_model_mode(model, set_train=False):
        ...     model.training
        False
        >>> model.training
        True
    """
    previous = model.training
    model.train(set_train)
    try:
        yield model
    finally:
        model.train(previous)


class PCA:
    """Principal component analysis of embeddings ``(N, D)`` with torch alone (OML's ``misc_torch.PCA``).

    ``components`` (rows: principal axes, by decreasing variance, each with its largest coordinate positive),
    ``explained_variance``, ``explained_variance_ratio``, ``singular_values``, ``mean``.

    Example:
        >>> embeddings = torch.rand(20, 4, dtype=torch.float64)
        >>> pca = PCA(embeddings)
        >>> bool(torch.allclose(pca.inverse_transform(pca.transform(embeddings)), embeddings))
        True
        >>> pca.transform(embeddings, n_components=2).shape
        torch.Size([20, 2])
    """

    def __init__(self, embeddings: Tensor) -> None:
        if embeddings.ndim != 2 or len(embeddings) < 2:
            raise OMLError(f"PCA needs at least two embeddings (N, D), got shape {tuple(embeddings.shape)}")
        self.mean = embeddings.mean(dim=0, keepdim=True)
        centred = embeddings - self.mean
        _, singular_values, components = torch.linalg.svd(centred, full_matrices=len(centred) < centred.shape[1])
        # one sign per axis, so that results do not depend on the SVD routine
        signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
        self.components = components * signs
        self.singular_values = singular_values
        self.explained_variance = singular_values**2 / (len(embeddings) - 1)
        self.explained_variance_ratio = self.explained_variance / self.explained_variance.sum()

    def _check_dimensions(self, n_components: int) -> None:
        if not 0 < n_components <= len(self.components):
            raise OMLError(f"PCA: n_components must be between 1 and {len(self.components)}, got {n_components}")

    def transform(self, embeddings: Tensor, n_components: int | None = None) -> Tensor:
        """``embeddings`` in the first ``n_components`` principal axes (all by default)."""
        n_components = n_components or embeddings.shape[1]
        self._check_dimensions(n_components)
        centred = embeddings.to(self.mean) - self.mean
        return (centred @ self.components[:n_components].T).to(embeddings)

    def inverse_transform(self, embeddings: Tensor) -> Tensor:
        """Back from the first ``embeddings.shape[1]`` principal axes to the embedding space."""
        self._check_dimensions(embeddings.shape[1])
        return embeddings @ self.components[: embeddings.shape[1]] + self.mean

    def calc_principal_axes_number(self, pcf_variance: Sequence[float]) -> Tensor:
        """For each ``r`` in ``pcf_variance``, the number of axes ``n`` such that the first ``n - 1`` explain at
        most ``r`` of the variance and the first ``n`` more than ``r`` (OML's definition behind ``pcf``)."""
        if any(not 0 <= r <= 1 for r in pcf_variance):
            raise OMLError(f"PCA: pcf_variance values must lie in [0, 1], got {tuple(pcf_variance)}")
        cumulative = torch.cumsum(self.explained_variance_ratio, dim=0)[:-1]
        return torch.tensor([1 + int((cumulative <= r).sum()) for r in pcf_variance], dtype=torch.long)


__all__ = [
    "PCA",
    "assign_2d",
    "elementwise_dist",
    "get_device",
    "is_sorted_tensor",
    "normalise",
    "pairwise_dist",
    "take_2d",
    "temporary_setting_model_mode",
]
