"""Checks for every registered retrieval postprocessor (``protocols.Postprocessor``), built from its example config.

The data: 4 labels x 3 items, every item both query and gallery (1-vs-rest), accumulated by ``EmbeddingMetrics``
with ``embeddings`` ``(12, 8)``, ``input_tensors`` ``(12, 3, 32, 32)`` and ``paths`` of real 32 x 32 PNG files, so
the postprocessor receives ``process(results, items)`` exactly as in validation (``items`` is an
``AccumulatedItems``; see ``oml_core.retrieval.embedding_metrics``). A postprocessor whose example needs sizes (a
pairwise model on embeddings) must register an example that accepts 8-dimensional embeddings or 32 x 32 images.

It must return new ``RetrievalResults`` for the same queries with the same ground truth: rows sorted by distance,
no gallery id twice in a row, padding (``-1``) only at the end, its input left unchanged, the same output twice.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from oml_core.host import Host
from oml_core.protocols import Postprocessor
from oml_core.registry import ComponentSpec
from oml_core.testing.contracts import build_example, register_contract
from oml_core.testing.data import tiny_embeddings, tiny_labels

EMBEDDING_DIM = 8


def _batch(root: Path) -> dict[str, Any]:
    labels = tiny_labels(4, 3)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(len(labels), 3, 32, 32, generator=generator)
    paths = []
    for i, image in enumerate(images):
        path = root / f"{i}.png"
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(path)
        paths.append(str(path))
    return {
        "embeddings": tiny_embeddings(labels, dim=EMBEDDING_DIM, noise=0.8),
        "labels": labels,
        "is_query": torch.ones(len(labels), dtype=torch.bool),
        "is_gallery": torch.ones(len(labels), dtype=torch.bool),
        "input_tensors": images,
        "paths": paths,
        "idx": torch.arange(len(labels)),
    }


def _metric(postprocessor: Any = None, top_n: int = 5) -> Any:
    from oml_core.retrieval import EmbeddingMetrics

    k = max(5, top_n)
    return EmbeddingMetrics(
        extra_keys=("input_tensors", "paths"),
        cmc_top_k=(1, k),
        precision_top_k=(k,),
        map_top_k=(k,),
        pcf_variance=(),
        postprocessor=postprocessor,
    )


def _check_results(name: str, before: Any, after: Any) -> None:
    from oml_core.retrieval import RetrievalResults

    assert isinstance(after, RetrievalResults), f"{name}.process returned {type(after).__name__}, not RetrievalResults"
    assert after is not before, f"{name}.process must return new results, not modify and return its input"
    assert len(after) == len(before), f"{name}.process returned {len(after)} queries for {len(before)}"
    ids, dist = after.padded_ids.cpu(), after.padded_distances.cpu()
    n_gallery = len(before.gallery_item_ids) if before.gallery_item_ids is not None else int(before.padded_ids.max()) + 1
    assert bool(((ids >= -1) & (ids < n_gallery)).all()), f"{name}: retrieved ids outside [-1, {n_gallery})"
    valid = ids >= 0
    if ids.shape[1] > 1:
        assert not bool((valid[:, 1:] & ~valid[:, :-1]).any()), f"{name}: padding (-1) before real ids in a row"
        assert not bool(((dist[:, 1:] < dist[:, :-1]) & valid[:, 1:]).any()), f"{name}: distances of a row are not ascending"
        sorted_ids = torch.sort(torch.where(valid, ids, -torch.arange(1, ids.shape[1] + 1).expand_as(ids)), dim=1).values
        assert not bool((sorted_ids[:, 1:] == sorted_ids[:, :-1]).any()), f"{name}: a gallery id appears twice in a row"
    assert before.n_gt is not None and after.n_gt is not None, f"{name}: the ground truth was lost"
    assert torch.equal(after.n_gt, before.n_gt), f"{name}: the ground truth changed"


@register_contract("postprocessors")
def postprocessor_returns_consistent_results(host: Host, spec: ComponentSpec) -> None:
    """``process(results, items)`` returns new, well-formed results, leaves its input alone and is deterministic."""
    postprocessor = build_example(host, spec)
    assert isinstance(postprocessor, Postprocessor), f"{spec.name} has no process(results, dataset) method"
    with tempfile.TemporaryDirectory() as tmp:
        metric = _metric(top_n=int(getattr(postprocessor, "top_n", 0) or 0))
        metric.update_data(_batch(Path(tmp)))
        metric.compute_metrics()
        results, items = metric.retrieval_results, metric.items
        ids, dist = results.padded_ids.clone(), results.padded_distances.clone()
        with torch.no_grad():
            first = postprocessor.process(results, items)
            second = postprocessor.process(results, items)
        _check_results(spec.name, results, first)
        assert torch.equal(results.padded_ids, ids) and torch.equal(results.padded_distances, dist), (
            f"{spec.name}.process modified the results it was given"
        )
        assert torch.equal(first.padded_ids, second.padded_ids), f"{spec.name}: two calls on the same input differ"
        assert torch.allclose(first.padded_distances, second.padded_distances, equal_nan=True), (
            f"{spec.name}: distances differ between calls"
        )


@register_contract("postprocessors")
def postprocessor_works_inside_embedding_metrics(host: Host, spec: ComponentSpec) -> None:
    """``EmbeddingMetrics(postprocessor=...)`` computes metrics in [0, 1] with it (as in seed 004's validation)."""
    postprocessor = build_example(host, spec)
    with tempfile.TemporaryDirectory() as tmp:
        metric = _metric(postprocessor, top_n=int(getattr(postprocessor, "top_n", 0) or 0))
        metric.setup(num_samples=12)
        batch = _batch(Path(tmp))
        for start in range(0, 12, 4):  # as a DataLoader would, in batches
            metric.update_data(data_dict={k: v[start : start + 4] for k, v in batch.items()})
        with torch.no_grad():
            values = metric.compute_metrics()["OVERALL"]
    for name in ("cmc", "precision", "map"):
        for k, value in values[name].items():
            assert 0.0 <= float(value) <= 1.0, f"{spec.name}: {name}@{k} = {float(value)} is outside [0, 1]"
