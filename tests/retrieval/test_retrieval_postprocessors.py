"""Core postprocessors: contracts, registration by name, query expansion against a slow reference, thresholding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oml_core.retrieval import AlphaQueryExpansion, AverageQueryExpansion, DistanceThreshold, EmbeddingMetrics, RetrievalResults
from oml_core.retrieval.postprocessors import AlphaQueryExpansionConfig
from oml_core.testing import contract_cases


@pytest.mark.parametrize("case", contract_cases("oml_core.builtin.retrieval"), ids=str)
def test_contracts(case):
    case.run()


def test_postprocessors_are_selectable_by_name(oml_host):
    registry = oml_host.registries.postprocessors
    assert {"query_expansion", "alpha_query_expansion", "distance_threshold"} <= set(registry.names())
    qe = registry.create("alpha_query_expansion", {"top_n": 4, "alpha": 2.0})
    assert isinstance(qe, AlphaQueryExpansion) and (qe.top_n, qe.alpha) == (4, 2.0)
    assert isinstance(registry.create("distance_threshold", {"threshold": 0.5}), DistanceThreshold)
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        AlphaQueryExpansionConfig(top_n=0)


def _items(seed: int = 0, n: int = 45):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 9, (n,), generator=generator)
    emb = torch.randn(9, 6, generator=generator)[labels] + 0.9 * torch.randn(n, 6, generator=generator)
    return emb, labels


@pytest.mark.parametrize("alpha", [None, 0.0, 3.0])
def test_query_expansion_equals_the_reference(ref, alpha):
    emb, labels = _items()
    x = emb.numpy().astype(np.float64)
    n, top_n, k = len(x), 3, 6
    rr = RetrievalResults.from_embeddings(emb, labels=labels, n_items=k)
    items = type("Items", (), {"embeddings": emb})()
    postprocessor = AverageQueryExpansion(top_n) if alpha is None else AlphaQueryExpansion(top_n, alpha)
    got = postprocessor.process(rr, items)

    first = ref.knn(x, x, top_n, excluded=lambda i, j: i == j)
    expanded = []
    for i in range(n):
        weights = []
        for _, j in first[i]:
            cos = float(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
            weights.append(1.0 if alpha is None else max(cos, 0.0) ** alpha)
        expanded.append((x[i] + sum(w * x[j] for w, (_, j) in zip(weights, first[i]))) / (1 + sum(weights)))
    second = ref.knn(np.stack(expanded), x, k, excluded=lambda i, j: i == j)
    assert [r.tolist() for r in got.retrieved_ids] == [[j for _, j in row] for row in second]
    assert np.allclose(got.padded_distances.numpy(), [[d for d, _ in row] for row in second], atol=1e-5)
    assert torch.equal(got.n_gt, rr.n_gt)  # type: ignore[arg-type]


def test_query_expansion_needs_embeddings_and_reads_oml_datasets():
    emb, labels = _items(1)
    rr = RetrievalResults.from_embeddings(emb, labels=labels, n_items=3)
    with pytest.raises(Exception, match="needs the embeddings of the items"):
        AverageQueryExpansion(2).process(rr, object())

    class Dataset:
        extra_data = {"embeddings": emb.numpy()}

    assert torch.equal(
        AverageQueryExpansion(2).process(rr, Dataset()).padded_ids,
        AverageQueryExpansion(2).process(rr, type("I", (), {"embeddings": emb})()).padded_ids,
    )


def test_distance_threshold_drops_far_items_and_changes_metrics():
    emb, labels = _items(2)
    calculator = EmbeddingMetrics(cmc_top_k=(5,), precision_top_k=(), map_top_k=(), pcf_variance=())
    calculator.update_data(embeddings=emb, labels=labels)
    plain = float(calculator.compute_metrics()["OVERALL"]["cmc"][5])
    rr = calculator.retrieval_results
    assert rr is not None
    threshold = float(rr.padded_distances[:, 0].median())
    thresholded = DistanceThreshold(threshold).process(rr)
    assert bool((thresholded.padded_distances[thresholded.padded_ids >= 0] <= threshold).all())
    assert torch.equal(thresholded.n_retrieved, (rr.padded_distances <= threshold).sum(dim=1))
    calculator = EmbeddingMetrics(
        cmc_top_k=(5,), precision_top_k=(), map_top_k=(), pcf_variance=(), postprocessor=DistanceThreshold(threshold)
    )
    calculator.update_data(embeddings=emb, labels=labels)
    assert float(calculator.compute_metrics()["OVERALL"]["cmc"][5]) < plain
