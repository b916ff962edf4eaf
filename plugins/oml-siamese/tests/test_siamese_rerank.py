"""The vectorised re-ranking arithmetic against an obviously-correct loop over queries."""

from __future__ import annotations

import math

import pytest
import torch
from oml_siamese.rerank import rerank_distance_matrix, rerank_top_n

from oml_core.errors import OMLError


def _slow_rerank_row(distances: list[float], ids: list[int], scores: list[float]) -> tuple[list[int], list[float]]:
    """The top-n sorted by score (ties: old order), then the rest in the old order."""
    n = len(scores)
    order = sorted(range(n), key=lambda j: (scores[j], j))
    return [ids[j] for j in order] + ids[n:], [scores[j] for j in order]


def _random_results(n_queries: int, k: int, seed: int, pad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    distances = torch.rand(n_queries, k, generator=generator).mul(3).round(decimals=1).sort(dim=1).values  # ties
    ids = torch.stack([torch.randperm(50, generator=generator)[:k] for _ in range(n_queries)])
    if pad:  # some queries retrieved fewer items: -1 / +inf at the end
        lengths = torch.randint(1, k + 1, (n_queries,), generator=generator)
        padding = torch.arange(k)[None, :] >= lengths[:, None]
        ids = ids.masked_fill(padding, -1)
        distances = distances.masked_fill(padding, math.inf)
    return distances, ids


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("top_n", [1, 3, 7])
def test_rerank_top_n_matches_a_loop_over_queries(seed: int, top_n: int):
    distances, ids = _random_results(20, 7, seed, pad=seed % 2 == 1)
    generator = torch.Generator().manual_seed(100 + seed)
    scores = torch.rand(20, top_n, generator=generator).mul(4).round(decimals=1)  # ties, and above the old distances
    scores = scores.masked_fill(ids[:, :top_n] < 0, math.inf)  # padding is never scored
    new_distances, new_ids = rerank_top_n(distances, ids, scores)

    for q in range(20):
        expected_ids, expected_top = _slow_rerank_row(distances[q].tolist(), ids[q].tolist(), scores[q].tolist())
        assert new_ids[q].tolist() == expected_ids
        assert new_distances[q, :top_n].tolist() == expected_top
        rest, old_rest = new_distances[q, top_n:], distances[q, top_n:]
        finite = torch.isfinite(old_rest)
        assert torch.equal(torch.isfinite(rest), finite)
        if finite.any():
            shift = (rest[finite] - old_rest[finite]).tolist()
            assert max(shift) - min(shift) < 1e-5 and min(shift) >= 0  # one constant per query, never forward
            top_finite = [s for s in expected_top if math.isfinite(s)]
            if top_finite:
                assert float(rest[0]) > max(top_finite)  # the rest stays strictly behind the re-scored items
                if max(top_finite) < float(old_rest[0]) - 1e-4:
                    assert shift[0] == 0  # and is left alone when it already is
        valid = new_ids[q] >= 0
        assert bool((new_distances[q][valid][1:] >= new_distances[q][valid][:-1]).all())


def test_rerank_top_n_example_from_omls_documentation():
    distances = torch.tensor([[0.1, 0.2, 0.5, 0.6, 0.7]])
    ids = torch.tensor([[3, 2, 1, 0, 4]])
    new_distances, new_ids = rerank_top_n(distances, ids, torch.tensor([[0.4, 0.2, 0.3]]))
    assert new_ids.tolist() == [[2, 1, 3, 0, 4]]
    assert torch.allclose(new_distances, torch.tensor([[0.2, 0.3, 0.4, 0.6, 0.7]]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("top_n", [1, 4, 9])
def test_rerank_distance_matrix_matches_a_loop_over_queries(seed: int, top_n: int):
    generator = torch.Generator().manual_seed(seed)
    distances = torch.rand(15, 9, generator=generator) * 2
    top_ids = torch.topk(distances, k=top_n, largest=False).indices
    scores = torch.rand(15, top_n, generator=generator) * 4
    out = rerank_distance_matrix(distances, top_ids, scores)

    for q in range(15):
        row, top = distances[q].tolist(), top_ids[q].tolist()
        rest = sorted((c for c in range(9) if c not in top), key=lambda c: row[c])
        by_score = [top[j] for j in sorted(range(top_n), key=lambda j: (scores[q, j].item(), j))]
        assert torch.argsort(out[q], stable=True).tolist() == by_score + rest
        assert out[q, top].tolist() == scores[q].tolist()
        if rest:
            shift = [out[q, c].item() - row[c] for c in rest]
            assert max(shift) - min(shift) < 1e-5 and min(shift) >= 0


def test_rerank_distance_matrix_keeps_its_input():
    distances = torch.tensor([[0.3, 0.1, 0.2]])
    copy = distances.clone()
    rerank_distance_matrix(distances, torch.tensor([[1]]), torch.tensor([[5.0]]))
    assert torch.equal(distances, copy)


def test_rerank_explains_mismatched_shapes():
    with pytest.raises(OMLError, match="n <= K"):
        rerank_top_n(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4))
    with pytest.raises(OMLError, match="distances"):
        rerank_top_n(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 1))
    with pytest.raises(OMLError, match="top_ids"):
        rerank_distance_matrix(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 1))
