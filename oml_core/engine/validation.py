"""Validation of an engine's model: embed the validation set, then compute retrieval metrics on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from oml_core.data.const import (
    CATEGORIES_COLUMN,
    IS_GALLERY_COLUMN,
    IS_QUERY_COLUMN,
    LABELS_COLUMN,
    PATHS_COLUMN,
    SEQUENCE_COLUMN,
)

if TYPE_CHECKING:
    from oml_core.engine.core import Engine


def embed_dataset(engine: Engine) -> torch.Tensor:
    """Embeddings of ``engine.val_dataset`` in dataset order (gathered from every rank under torch.distributed)."""
    from oml_core.inference import inference

    assert engine.val_dataset is not None
    return inference(
        engine.model,
        engine.val_dataset,
        batch_size=engine.options.validation_batch_size,
        num_workers=engine.options.num_workers,
        device=engine.device,
        progress=engine.options.progress_bar and engine.state.is_main_process,
    )


def validation_columns(dataset: Any) -> dict[str, Any]:
    """Labels, query/gallery flags and (when present) categories, sequences and paths of a query-gallery dataset:
    from its dataframe, or, for a dataset without one (a class written against OML 4's interfaces), from
    ``get_labels()``, ``get_query_ids()``, ``get_gallery_ids()`` and ``extra_data``."""
    if not isinstance(getattr(dataset, "df", None), pd.DataFrame):
        return _interface_columns(dataset)
    df = dataset.df
    columns: dict[str, Any] = {
        "labels": torch.tensor(df[LABELS_COLUMN].to_numpy(), dtype=torch.long),
        "is_query": torch.tensor(df[IS_QUERY_COLUMN].astype(bool).to_numpy()),
        "is_gallery": torch.tensor(df[IS_GALLERY_COLUMN].astype(bool).to_numpy()),
        "idx": torch.arange(len(df)),
    }
    if PATHS_COLUMN in df.columns:  # datasets of texts have none
        columns["paths"] = [str(p) for p in df[PATHS_COLUMN]]
    if CATEGORIES_COLUMN in df.columns:
        columns["categories"] = [str(c) for c in df[CATEGORIES_COLUMN]]
    if SEQUENCE_COLUMN in df.columns:
        # a row without a sequence is alone in its own (as in the datasets), not in one sequence called "nan"
        get_sequences = getattr(dataset, "get_sequences", None)
        sequences = get_sequences() if callable(get_sequences) else None
        columns["sequence"] = sequences or [f"row{i}" if pd.isna(s) else str(s) for i, s in enumerate(df[SEQUENCE_COLUMN])]
    return columns


def _interface_columns(dataset: Any) -> dict[str, Any]:
    from oml_core.retrieval.results import dataset_categories, dataset_labels, dataset_sequences

    n = len(dataset)
    columns: dict[str, Any] = {"labels": torch.as_tensor(dataset_labels(dataset)).long(), "idx": torch.arange(n)}
    for key, method in (("is_query", "get_query_ids"), ("is_gallery", "get_gallery_ids")):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.as_tensor(getattr(dataset, method)(), dtype=torch.long).reshape(-1)] = True
        columns[key] = mask
    for key, values in (("categories", dataset_categories(dataset)), ("sequence", dataset_sequences(dataset))):
        if values is not None:
            columns[key] = [str(v) for v in values]
    if callable(getattr(dataset, "get_paths", None)):
        columns["paths"] = [str(p) for p in dataset.get_paths()]
    return columns


def compute_dataset_metrics(engine: Engine, embeddings: torch.Tensor) -> dict[str, Any]:
    """EmbeddingMetrics over the whole validation set at once (the embeddings are already gathered)."""
    from oml_core.retrieval import EmbeddingMetrics

    columns = validation_columns(engine.val_dataset)
    args = dict(engine.options.metric_args)
    args.setdefault("categories_key", "categories" if "categories" in columns else None)
    args.setdefault("sequence_key", "sequence" if "sequence" in columns else None)
    args.setdefault("extra_keys", ("paths",) if "paths" in columns else ())
    # the embeddings were gathered by inference and only rank 0 computes: a torchmetrics sync would wait forever
    metric = EmbeddingMetrics(**args, sync_on_compute=False)
    metric.setup(num_samples=len(embeddings))
    metric.update_data({"embeddings": embeddings.float().cpu(), **columns})
    metrics = metric.compute_metrics()
    engine.last_retrieval_results = getattr(metric, "retrieval_results", None)
    return metrics
