"""RetrievalResults: constructors against a slow reference, validation, ground truth forms, visualisation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from oml_core.errors import OMLError
from oml_core.retrieval import RetrievalError, RetrievalResults, calc_retrieval_metrics, calc_retrieval_metrics_rr


def _data(seed: int = 0, n: int = 40):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 6, (n,), generator=generator)
    emb = torch.randn(6, 5, generator=generator)[labels] + 0.8 * torch.randn(n, 5, generator=generator)
    is_query = torch.rand(n, generator=generator) < 0.6
    is_gallery = ~is_query | (torch.rand(n, generator=generator) < 0.5)
    sequences = [f"s{i // 2}" for i in range(n)]
    return emb, labels, is_query, is_gallery, sequences


def test_from_embeddings_equals_the_reference(ref):
    emb, labels, is_query, is_gallery, sequences = _data()
    rr = RetrievalResults.from_embeddings(
        emb, labels=labels, is_query=is_query, is_gallery=is_gallery, sequences=sequences, n_items=7
    )
    queries = is_query.nonzero().squeeze(1).tolist()
    gallery = is_gallery.nonzero().squeeze(1).tolist()

    def excluded(qi: int, gj: int) -> bool:
        i, j = queries[qi], gallery[gj]
        return i == j or sequences[i] == sequences[j]

    expected = ref.knn(emb[queries].numpy(), emb[gallery].numpy(), 7, excluded=excluded)
    assert [r.tolist() for r in rr.retrieved_ids] == [[j for _, j in row] for row in expected]
    assert all(np.allclose(d.numpy(), [x for x, _ in row], atol=1e-5) for d, row in zip(rr.distances, expected))
    expected_gt = [
        [gj for gj, j in enumerate(gallery) if labels[j] == labels[i] and not excluded(qi, gj)] for qi, i in enumerate(queries)
    ]
    assert rr.gt_ids is not None and [g.tolist() for g in rr.gt_ids] == expected_gt
    assert rr.n_gt is not None and rr.n_gt.tolist() == [len(g) for g in expected_gt]
    assert rr.query_item_ids is not None and rr.query_item_ids.tolist() == queries
    assert rr.gallery_item_ids is not None and rr.gallery_item_ids.tolist() == gallery
    # the label-based ground truth and the explicit one give the same relevance and metrics
    explicit = RetrievalResults(rr.distances, rr.retrieved_ids, rr.gt_ids)
    assert torch.equal(explicit.is_correct(), rr.is_correct())
    assert str(calc_retrieval_metrics_rr(explicit)) == str(calc_retrieval_metrics_rr(rr))


def test_from_embeddings_reads_an_oml_style_dataset():
    emb, labels, is_query, is_gallery, sequences = _data(1)

    class Dataset:  # what DatasetQueryGallery offers
        extra_data = {"sequence": sequences}

        def __len__(self) -> int:
            return len(labels)

        def get_query_ids(self) -> torch.Tensor:
            return is_query.nonzero().squeeze(1)

        def get_gallery_ids(self) -> torch.Tensor:
            return is_gallery.nonzero().squeeze(1)

        def get_labels(self) -> np.ndarray:
            return labels.numpy()

    from_dataset = RetrievalResults.from_embeddings(emb, Dataset(), n_items=5)
    from_masks = RetrievalResults.from_embeddings(
        emb, labels=labels, is_query=is_query, is_gallery=is_gallery, sequences=sequences, n_items=5
    )
    assert torch.equal(from_dataset.padded_ids, from_masks.padded_ids)
    assert torch.equal(from_dataset.is_correct(), from_masks.is_correct())


def test_from_embeddings_qg_and_from_store():
    generator = torch.Generator().manual_seed(2)
    queries, gallery = torch.randn(5, 3, generator=generator), torch.randn(9, 3, generator=generator)
    rr = RetrievalResults.from_embeddings_qg(
        queries, gallery, query_labels=[0, 1, 2, 0, 1], gallery_labels=[0, 1, 2] * 3, n_items=4
    )
    assert rr.n_gt is not None and rr.n_gt.tolist() == [3] * 5
    expected_ids = torch.cdist(queries, gallery).argsort(dim=1)[:, :4]
    assert torch.equal(rr.padded_ids, expected_ids)

    class Store:
        def search(self, q: torch.Tensor, k: int, filter: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            d = torch.cdist(q, gallery)
            dist, ids = d.topk(k, largest=False)
            return ids + 100, dist  # store ids are not positions

    with pytest.warns(UserWarning, match="don't have available gts"):
        stored = RetrievalResults.from_store(
            Store(), queries, k=3, query_ids=[100, 200, 200, 200, 200], gt_ids=[[101], [], [], [], []]
        )
    assert stored.padded_ids.shape == (5, 3)
    assert not bool((stored.padded_ids[0] == 100).any())  # query 0 is stored as id 100: never retrieves itself
    assert torch.equal(stored.padded_ids[1:], expected_ids[1:, :3] + 100)


def test_ragged_oml_constructor_and_validation():
    rr = RetrievalResults(
        [torch.tensor([0.1, 0.5]), torch.tensor([])],
        [torch.tensor([3, 1]), torch.tensor([], dtype=torch.long)],
        [torch.tensor([1]), torch.tensor([2])],
    )
    assert rr.n_retrieved.tolist() == [2, 0] and rr.n_retrieved_items == 2
    assert rr.is_correct().tolist() == [[False, True], [False, False]]
    assert [r.tolist() for r in rr.retrieved_ids] == [[3, 1], []]
    assert "Ground truth gallery ids" in str(rr) and not rr.is_empty()
    with pytest.raises(RetrievalError, match="not sorted ascending"):
        RetrievalResults([torch.tensor([0.5, 0.1])], [torch.tensor([0, 1])])
    with pytest.raises(RetrievalError, match="has 2 distances but 1 retrieved ids"):
        RetrievalResults([torch.tensor([0.1, 0.5])], [torch.tensor([0])])
    with pytest.raises(RetrievalError, match="padding"):
        RetrievalResults(torch.tensor([[0.1, 0.2]]), torch.tensor([[-1, 3]]))
    with pytest.raises(RetrievalError, match="gt_ids has 2 entries"):
        RetrievalResults([torch.tensor([0.1])], [torch.tensor([0])], [torch.tensor([0]), torch.tensor([1])])
    with pytest.raises(RetrievalError, match="no ground truth"):
        calc_retrieval_metrics_rr(RetrievalResults([torch.tensor([0.1])], [torch.tensor([0])]))


def test_calc_retrieval_metrics_accepts_oml_call_shape():
    metrics = calc_retrieval_metrics(
        [torch.tensor([2, 0, 1])], [torch.tensor([1])], cmc_top_k=(1, 3), precision_top_k=(3,), map_top_k=(3,)
    )
    assert {k: {kk: round(float(v), 4) for kk, v in d.items()} for k, d in metrics.items()} == {
        "cmc": {1: 0.0, 3: 1.0},
        "precision": {3: 1.0},
        "map": {3: round(1 / 3, 4)},
    }


def test_with_retrieved_sorts_and_keeps_the_ground_truth():
    emb, labels, *_ = _data(3)
    rr = RetrievalResults.from_embeddings(emb, labels=labels, n_items=4)
    reranked = rr.with_retrieved(rr.padded_ids.flip(1), rr.padded_distances.flip(1))
    assert torch.equal(reranked.padded_ids, rr.padded_ids)
    assert reranked.n_gt is rr.n_gt and reranked.query_item_ids is rr.query_item_ids
    with pytest.raises(RetrievalError, match="shape"):
        rr.with_retrieved(rr.padded_ids[:, :2], rr.padded_distances)


def test_visualize_draws_green_and_red_frames_to_png(tmp_path):
    from PIL import Image

    emb = torch.tensor([[0.0], [0.1], [0.2], [5.0]])
    rr = RetrievalResults.from_embeddings(emb, labels=[0, 0, 1, 1], n_items=2)
    paths = []
    for i in range(4):
        Image.new("RGB", (6, 6), (60 * i, 0, 0)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    out = tmp_path / "rr.png"
    fig = rr.visualize([0, 2], images=paths, path=str(out), n_gt_to_show=1)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    colours = [tuple(round(c, 2) for c in ax.spines["top"].get_edgecolor()[:3]) for ax in fig.axes]
    # row of query 0: query (blue), 0.1 (same label: green), 0.2 (other label: red), then its relevant item (gray)
    # row of query 2: query, 0.1 (red), 0.0 (red), relevant item
    assert colours == [
        (0, 0, 1),
        (0, 0.78, 0),
        (1, 0, 0),
        (0.47, 0.47, 0.47),
        (0, 0, 1),
        (1, 0, 0),
        (1, 0, 0),
        (0.47, 0.47, 0.47),
    ]
    worst = rr.visualize_worst("cmc", k=1, n_queries=1, images=lambda item: np.zeros((4, 4, 3)))
    assert len(worst.axes) == 3


def test_visualize_without_matplotlib_or_images_says_what_to_do(monkeypatch):
    rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [1.0]]), labels=[0, 0])
    with pytest.raises(OMLError, match="needs images"):
        rr.visualize([0])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(OMLError, match="pip install matplotlib"):
        rr.visualize([0], images=[np.zeros((2, 2))] * 2)


def test_worst_queries_by_each_metric():
    emb = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1]])
    rr = RetrievalResults.from_embeddings(emb, labels=[0, 0, 1, 1, 1], n_items=4)
    assert rr.worst_queries("cmc", k=1, n_queries=1).tolist() == [2]
    assert rr.worst_queries("map_at_r", n_queries=1).tolist() == [2]
    with pytest.raises(RetrievalError, match="unknown metric"):
        rr.worst_queries("ndcg")
