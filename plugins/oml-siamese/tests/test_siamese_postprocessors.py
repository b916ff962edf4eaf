"""The re-ranking postprocessors: an oracle fixes every query it can and nothing beyond top-n; the trivial model
changes nothing; the dense (OML 2) and RetrievalResults (OML 4) calls agree; all pairs go through in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from oml_siamese import (
    ConcatSiamese,
    LinearSiamese,
    PairwiseEmbeddingsPostprocessor,
    PairwiseImagesPostprocessor,
    PairwiseReranker,
    TrivialDistanceSiamese,
)
from PIL import Image

from oml_core.data import DatasetQueryGallery
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.errors import OMLError
from oml_core.models import SimpleCNNExtractor
from oml_core.retrieval import EmbeddingMetrics, RetrievalResults

N_LABELS, N_INSTANCES, DIM = 12, 4, 6


class LabelOracle(torch.nn.Module):
    """Reads the label hidden in the last embedding column: distance 0 for the same label, 1 otherwise."""

    input_kind = "embeddings"
    symmetric = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x1))
        return (x1[:, -1].round() != x2[:, -1].round()).float()

    def predict(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.forward(x1, x2)


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy embeddings (retrieval is often wrong at rank 1) with the label in a last column scaled to ~nothing."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(N_LABELS).repeat_interleave(N_INSTANCES)
    centres = torch.randn(N_LABELS, DIM, generator=generator)
    features = centres[labels] + 1.3 * torch.randn(len(labels), DIM, generator=generator)
    return torch.cat([features, labels[:, None].float()], dim=1), labels


def _oracle_distance_scale(embeddings: torch.Tensor) -> torch.Tensor:
    # the label column must not change the retrieval: scale it away for the search, and back for the oracle
    return torch.cat([embeddings[:, :-1], embeddings[:, -1:] * 1e-6], dim=1)


def _metrics(embeddings: torch.Tensor, labels: torch.Tensor, postprocessor=None, **extra) -> tuple[dict, RetrievalResults]:
    metric = EmbeddingMetrics(
        cmc_top_k=(1, 3, 5), precision_top_k=(5,), map_top_k=(10,), pcf_variance=(), postprocessor=postprocessor
    )
    metric.setup(num_samples=len(labels))
    batch = {"embeddings": embeddings, "labels": labels, "idx": torch.arange(len(labels)), **extra}
    for start in range(0, len(labels), 7):  # in batches, as a DataLoader gives them
        metric.update_data(data_dict={k: v[start : start + 7] for k, v in batch.items()})
    return metric.compute_metrics()["OVERALL"], metric.retrieval_results


class _ScaledOracle(LabelOracle):
    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return super().forward(x1 * torch.tensor([1.0] * DIM + [1e6]), x2 * torch.tensor([1.0] * DIM + [1e6]))


@pytest.mark.parametrize("top_n", [1, 3, 5])
def test_oracle_fixes_every_query_with_a_correct_item_in_top_n_and_nothing_beyond(top_n: int):
    embeddings, labels = _data()
    searched = _oracle_distance_scale(embeddings)
    before, rr_before = _metrics(searched, labels)
    oracle = _ScaledOracle()
    after, rr_after = _metrics(searched, labels, PairwiseReranker(top_n=top_n, pairwise_model=oracle, batch_size=50))

    correct_before, correct_after = rr_before.is_correct(), rr_after.is_correct()
    fixable = correct_before[:, :top_n].any(dim=1)
    assert 0 < int(fixable.sum()) < len(labels)
    if top_n > 1:  # the data leaves the oracle something to fix
        assert float(before["cmc"][1]) < float(fixable.float().mean())
    assert bool(correct_after[fixable, 0].all()), "a query with a correct item in its top-n must have one at rank 1"
    assert not bool(correct_after[~fixable, :top_n].any()), "queries without a correct item in the top-n stay wrong"
    # CMC@1 becomes the share of queries that had a correct item in the top-n
    assert float(after["cmc"][1]) == pytest.approx(float(fixable.float().mean()))
    if top_n in (3, 5):
        assert float(after["cmc"][1]) == pytest.approx(float(before["cmc"][top_n]))
    # ranks beyond n: the same items in the same order; the top-n are a permutation of the old top-n
    assert torch.equal(rr_after.padded_ids[:, top_n:], rr_before.padded_ids[:, top_n:])
    assert torch.equal(rr_after.padded_ids[:, :top_n].sort(dim=1).values, rr_before.padded_ids[:, :top_n].sort(dim=1).values)
    # every pair went through in batches of 50, not one call per query
    n_pairs = len(labels) * top_n
    assert oracle.calls == [50] * (n_pairs // 50) + ([n_pairs % 50] if n_pairs % 50 else [])


def test_queries_with_fewer_items_than_top_n_are_reranked_and_stay_padded():
    from oml_core.retrieval import DistanceThreshold

    embeddings, labels = _data(seed=5)
    searched = _oracle_distance_scale(embeddings)
    full = RetrievalResults.from_embeddings(searched, labels=labels, n_items=6)
    ragged = DistanceThreshold(float(full.padded_distances[:, 2].median())).process(full)  # 0 to 6 items per query
    assert len(set(ragged.n_retrieved.tolist())) > 2
    oracle = _ScaledOracle()
    out = PairwiseReranker(top_n=4, pairwise_model=oracle).process(ragged, {"embeddings": searched})
    assert torch.equal(out.n_retrieved, ragged.n_retrieved)
    assert sum(oracle.calls) == int(ragged.n_retrieved.clamp(max=4).sum())  # padding is never scored
    valid = out.padded_ids >= 0
    assert torch.equal(valid, ragged.padded_ids >= 0)
    assert bool(torch.isinf(out.padded_distances[~valid]).all())
    fixable = ragged.is_correct()[:, :4].any(dim=1)
    assert bool(out.is_correct()[fixable, 0].all())


def test_reranked_results_against_a_loop_over_queries():
    embeddings, labels = _data(seed=3)
    rr = RetrievalResults.from_embeddings(embeddings, labels=labels, n_items=8)
    model = LinearSiamese(feat_dim=DIM + 1)
    with torch.no_grad():
        model.proj.weight.copy_(torch.randn(DIM + 1, DIM + 1, generator=torch.Generator().manual_seed(1)))
    out = PairwiseReranker(top_n=4, pairwise_model=model, batch_size=16).process(rr, {"embeddings": embeddings})
    for q in range(len(rr)):
        ids = rr.retrieved_ids[q].tolist()
        gallery = rr.gallery_item_ids[ids]
        with torch.no_grad():
            scores = [float(model.predict(embeddings[q][None], embeddings[g][None])) for g in gallery[:4]]
        order = sorted(range(4), key=lambda j: (scores[j], j))
        assert out.retrieved_ids[q].tolist() == [ids[j] for j in order] + ids[4:]
        assert out.distances[q][:4].tolist() == pytest.approx(sorted(scores), rel=1e-5)
    assert torch.equal(out.n_gt, rr.n_gt) and out is not rr


def test_trivial_distance_siamese_on_embeddings_leaves_metrics_unchanged():
    embeddings, labels = _data(seed=1)
    before, rr_before = _metrics(embeddings, labels)
    postprocessor = PairwiseEmbeddingsPostprocessor(top_n=5, pairwise_model=TrivialDistanceSiamese())
    after, rr_after = _metrics(embeddings, labels, postprocessor)
    assert after.keys() == before.keys()
    for name in before:
        for k in before[name]:
            assert float(after[name][k]) == pytest.approx(float(before[name][k]), abs=1e-7), (name, k)
    assert torch.equal(rr_after.padded_ids, rr_before.padded_ids)
    assert torch.allclose(rr_after.padded_distances, rr_before.padded_distances, atol=1e-5)


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetQueryGallery, list[str]]:
    root = tmp_path_factory.mktemp("siamese_images")
    generator = np.random.default_rng(0)
    rows = []
    for label in range(5):
        colour = generator.integers(0, 255, 3)
        for instance in range(3):
            pixels = np.clip(colour + generator.normal(0, 60, (20, 20, 3)), 0, 255).astype(np.uint8)
            path = f"{label}_{instance}.png"
            Image.fromarray(pixels).save(root / path)
            rows.append({"label": label, "path": path, "is_query": instance < 2, "is_gallery": instance > 0})
    import pandas as pd

    dataset = DatasetQueryGallery(pd.DataFrame(rows), dataset_root=root, transform=get_normalisation_resize_torch(16))
    return dataset, dataset.get_paths()


def _extractor() -> SimpleCNNExtractor:
    torch.manual_seed(0)
    return SimpleCNNExtractor(channels=(4, 8)).eval()


def test_trivial_distance_siamese_on_images_leaves_metrics_unchanged(image_dataset):
    dataset, paths = image_dataset
    extractor = _extractor()
    images = torch.stack([dataset[i]["input_tensors"] for i in range(len(dataset))])
    with torch.no_grad():
        embeddings = extractor(images)
    columns = {
        "labels": torch.as_tensor(dataset.get_labels()),
        "is_query": torch.tensor(dataset.df["is_query"].tolist()),
        "is_gallery": torch.tensor(dataset.df["is_gallery"].tolist()),
    }
    before, rr_before = _metrics(embeddings, **{"labels": columns.pop("labels")}, **columns)
    rr_images = PairwiseReranker(top_n=4, pairwise_model=TrivialDistanceSiamese(extractor), batch_size=5).process(
        rr_before, dataset
    )
    assert torch.equal(rr_images.padded_ids, rr_before.padded_ids)
    assert torch.allclose(rr_images.padded_distances, rr_before.padded_distances, atol=1e-4)
    # the same through EmbeddingMetrics, reading the images from the accumulated paths
    model = TrivialDistanceSiamese(extractor)
    postprocessor = PairwiseImagesPostprocessor(top_n=4, pairwise_model=model, transforms=get_normalisation_resize_torch(16))
    labels = torch.as_tensor(dataset.get_labels())
    metric = EmbeddingMetrics(
        extra_keys=("paths",), cmc_top_k=(1, 3), map_top_k=(3,), pcf_variance=(), postprocessor=postprocessor
    )
    metric.setup(num_samples=len(dataset))
    metric.update_data({"embeddings": embeddings, "labels": labels, "paths": paths, **columns})
    after = metric.compute_metrics()["OVERALL"]
    assert {k: float(v) for k, v in after["cmc"].items()} == pytest.approx({k: float(before["cmc"][k]) for k in (1, 3)})
    k = metric.retrieval_results.padded_ids.shape[1]
    assert torch.equal(metric.retrieval_results.padded_ids, rr_before.padded_ids[:, :k])


def test_dense_call_matches_the_retrieval_results_call():
    embeddings, labels = _data(seed=2)
    queries, galleries = embeddings[:20], embeddings[20:]
    model = LinearSiamese(feat_dim=DIM + 1)
    with torch.no_grad():
        model.proj.weight.copy_(torch.randn(DIM + 1, DIM + 1, generator=torch.Generator().manual_seed(4)))
    postprocessor = PairwiseEmbeddingsPostprocessor(top_n=3, pairwise_model=model, batch_size=7)
    distances = torch.cdist(queries, galleries)
    dense = postprocessor.process(distances=distances, queries=queries, galleries=galleries)
    assert dense.shape == distances.shape and not torch.equal(dense, distances)
    # positionally, as OML 2 allowed
    assert torch.equal(postprocessor.process(distances, queries, galleries), dense)

    # results searched from separate query and gallery tensors know no item positions: a dataset-like object says
    rr = RetrievalResults.from_embeddings_qg(queries, galleries, n_items=len(galleries))

    class Items:
        extra_data = {"embeddings": torch.cat([queries, galleries])}

        def get_query_ids(self):
            return torch.arange(20)

        def get_gallery_ids(self):
            return torch.arange(20, len(embeddings))

    reranked = postprocessor.process(rr, Items())
    assert torch.equal(torch.argsort(dense, dim=1, stable=True), reranked.padded_ids)


def test_images_postprocessor_on_a_dense_matrix_scores_each_top_pair(image_dataset):
    """Seed 004's second snippet: ``process(distances=..., queries=query_paths, galleries=gallery_paths)``."""
    dataset, paths = image_dataset
    transform = get_normalisation_resize_torch(16)
    torch.manual_seed(0)
    siamese = ConcatSiamese(extractor=SimpleCNNExtractor(channels=(4, 8)), mlp_hidden_dims=[10]).eval()
    query_paths, gallery_paths = np.array(paths[:6]), np.array(paths[6:])  # numpy arrays, as df[...].values gives
    distances = torch.rand(6, len(gallery_paths), generator=torch.Generator().manual_seed(0))
    postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform, batch_size=4)
    updated = postprocessor.process(distances=distances, queries=query_paths, galleries=gallery_paths)

    top = torch.topk(distances, k=3, largest=False).indices
    for q in range(6):
        for g in top[q].tolist():
            from oml_core.data import read_image

            x1, x2 = transform(read_image(query_paths[q]))[None], transform(read_image(gallery_paths[g]))[None]
            with torch.no_grad():
                assert float(updated[q, g]) == pytest.approx(float(siamese.predict(x1, x2)), abs=1e-5)
        rest = [g for g in range(len(gallery_paths)) if g not in top[q].tolist()]
        assert float(updated[q, rest].min()) > float(updated[q, top[q]].max())
    assert siamese.training is False


def test_postprocessors_explain_what_they_need(image_dataset):
    dataset, _ = image_dataset
    siamese = ConcatSiamese(extractor=SimpleCNNExtractor(channels=(4,)), mlp_hidden_dims=[3])
    with pytest.raises(OMLError, match="PairwiseEmbeddingsPostprocessor"):
        PairwiseImagesPostprocessor(top_n=2, pairwise_model=LinearSiamese(feat_dim=3), transforms=None)
    with pytest.raises(OMLError, match="PairwiseImagesPostprocessor"):
        PairwiseEmbeddingsPostprocessor(top_n=2, pairwise_model=siamese)
    with pytest.raises(OMLError, match="top_n"):
        PairwiseReranker(top_n=0, pairwise_model=siamese)
    with pytest.raises(OMLError, match="predict"):
        PairwiseReranker(top_n=2, pairwise_model=torch.nn.Linear(2, 2))
    with pytest.raises(OMLError, match="distances=..."):
        PairwiseReranker(top_n=2, pairwise_model=siamese).process(torch.zeros(2, 3), dataset)
    postprocessor = PairwiseEmbeddingsPostprocessor(top_n=2, pairwise_model=LinearSiamese(feat_dim=3))
    with pytest.raises(OMLError, match="do not match"):
        postprocessor.process(distances=torch.zeros(2, 3), queries=torch.zeros(2, 3), galleries=torch.zeros(4, 3))
    embeddings, labels = _data()
    rr = RetrievalResults.from_embeddings(embeddings, labels=labels, n_items=3)
    with pytest.raises(OMLError, match="extra_data"):
        postprocessor.process(rr, dataset)  # no embeddings in this dataset
    images = PairwiseReranker(top_n=2, pairwise_model=siamese)
    with pytest.raises(OMLError, match="paths"):
        images.process(rr, {"embeddings": embeddings})  # images model, but neither paths nor images accumulated
    assert images.needed_keys == ("input_tensors",) and postprocessor.needed_keys == ("embeddings",)
    assert PairwiseImagesPostprocessor(top_n=2, pairwise_model=siamese, transforms=None).needed_keys == ("paths",)


def test_input_paths_may_be_pathlib(image_dataset):
    _, paths = image_dataset
    model = TrivialDistanceSiamese(_extractor())
    postprocessor = PairwiseImagesPostprocessor(top_n=2, pairwise_model=model, transforms=get_normalisation_resize_torch(16))
    out = postprocessor.process(distances=torch.rand(2, 3), queries=[Path(p) for p in paths[:2]], galleries=paths[2:5])
    assert out.shape == (2, 3)
