"""Shared by the oml-lightning tests: OML's mock dataset as seed 000 builds it, and metrics computed without
Lightning (the obviously-correct reference for what MetricValCallback reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from oml_core.data import DatasetQueryGallery, DatasetWithLabels, download_mock_dataset
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.engine import flatten_metrics
from oml_core.inference import inference
from oml_core.retrieval import EmbeddingMetrics

IM_SIZE = 32


def mock_datasets(root: Path) -> tuple[DatasetWithLabels, DatasetQueryGallery]:
    """32 training images of 8 labels and 16 validation images of 4 labels (queries and gallery)."""
    df_train, df_val = download_mock_dataset(root, n_labels=12, n_instances=4, im_size=IM_SIZE)
    transform = get_normalisation_resize_torch(im_size=IM_SIZE)
    return (
        DatasetWithLabels(df_train, dataset_root=root, transform=transform),
        DatasetQueryGallery(df_val, dataset_root=root, transform=transform),
    )


def reference_metrics(model: torch.nn.Module, dataset: Any, **metric_args: Any) -> dict[str, float]:
    """The metrics of ``model`` on ``dataset`` in one process, without Lightning."""
    embeddings = inference(model, dataset, batch_size=64, progress=False, device="cpu")
    metric = EmbeddingMetrics(**metric_args)
    metric.setup(num_samples=len(dataset))
    items = [dataset[i] for i in range(len(dataset))]
    batch = {
        "embeddings": embeddings,
        "labels": torch.tensor([item["labels"] for item in items]),
        "is_query": torch.tensor([bool(item["is_query"]) for item in items]),
        "is_gallery": torch.tensor([bool(item["is_gallery"]) for item in items]),
        "idx": torch.arange(len(items)),
    }
    if "paths" in items[0]:
        batch["paths"] = [item["paths"] for item in items]
    metric.update_data(batch)
    return flatten_metrics(metric.compute_metrics())
