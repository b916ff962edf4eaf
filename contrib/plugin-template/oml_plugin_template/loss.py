"""The plugin's loss: pull embeddings to their label's centroid, push centroids apart (replace it with your own)."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn


@attrs.frozen(kw_only=True)
class CentroidLossConfig:
    """What a config file can set: ``criterion: {type: template_centroid, margin: 1.0}``."""

    margin: float = 1.0
    push_weight: float = 1.0


class CentroidLoss(nn.Module):
    """``mean_i ||e_i - c_{y_i}||² + push_weight * mean_{a≠b} relu(margin - ||c_a - c_b||)²`` over the labels of a
    batch, where ``c_y`` is the mean embedding of label ``y`` in the batch.

    A criterion maps ``(embeddings (B, D), labels (B,))`` to a scalar (``oml_core.protocols.Criterion``); its
    optional ``last_logs`` dict is logged by the engine after each step.

    Example:
        >>> loss = CentroidLoss(margin=1.0)
        >>> float(loss(torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0, 1])))
        0.0
    """

    def __init__(self, margin: float = 1.0, push_weight: float = 1.0) -> None:
        super().__init__()
        if margin < 0 or push_weight < 0:
            raise ValueError(f"CentroidLoss needs margin >= 0 and push_weight >= 0, got {margin} and {push_weight}")
        self.margin = margin
        self.push_weight = push_weight
        self.last_logs: dict[str, float] = {}

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        labels = torch.as_tensor(labels, device=embeddings.device)
        unique, inverse = torch.unique(labels, return_inverse=True)
        counts = torch.bincount(inverse, minlength=len(unique)).to(embeddings.dtype)
        sums = torch.zeros(len(unique), embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
        centroids = sums.index_add(0, inverse, embeddings) / counts[:, None]
        pull = (embeddings - centroids[inverse]).pow(2).sum(dim=1).mean()
        if len(unique) > 1:
            # pairwise centroid distances without the diagonal; the epsilon keeps sqrt's gradient finite at 0
            diff = centroids[:, None, :] - centroids[None, :, :]
            distances = (diff.pow(2).sum(dim=-1) + 1e-12).sqrt()
            off_diagonal = ~torch.eye(len(unique), dtype=torch.bool, device=embeddings.device)
            push = torch.relu(self.margin - distances[off_diagonal]).pow(2).mean()
        else:
            push = embeddings.sum() * 0.0  # nothing to push apart, but keep the graph
        self.last_logs = {"pull": float(pull.detach()), "push": float(push.detach()), "n_labels": float(len(unique))}
        return pull + self.push_weight * push


def create_centroid_loss(margin: float = 1.0, push_weight: float = 1.0) -> CentroidLoss:
    """The factory OML calls with the config's fields: ``registry.create("template_centroid", {"margin": 0.5})``."""
    return CentroidLoss(margin=margin, push_weight=push_weight)
