"""The user's seed 004 (/work/shared/seeds/004_*.txt), run as written: only the imports differ, plus what cannot work
offline or in a test's time: no pretrained ViT weights can be downloaded, so a small random CNN stands in for
``ViTExtractor("vits16_dino", ...)``, and a small generated dataset for the user's CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from oml_miners import PairsMiner
from oml_samplers import BalanceSampler
from oml_siamese import ConcatSiamese, PairwiseImagesPostprocessor
from torch.nn import BCEWithLogitsLoss
from torch.utils.data import DataLoader

from oml_core.data import DatasetQueryGallery, DatasetWithLabels, download_mock_dataset
from oml_core.data.const import PATHS_COLUMN
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.inference import inference_on_dataframe
from oml_core.models import SimpleCNNExtractor
from oml_core.retrieval import EmbeddingMetrics, pairwise_dist
from oml_core.weights import get_transforms_for_pretrained


def ViTExtractor(*args, **kwargs) -> SimpleCNNExtractor:  # noqa: N802 - stands in for the seed's class, see above
    return SimpleCNNExtractor(channels=(8, 16, 32))


@pytest.fixture
def dataset_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "mock"
    download_mock_dataset(root, n_labels=6, n_instances=3, im_size=32)  # 4 training and 2 validation identities
    df = pd.read_csv(root / "df.csv")
    validation = df["split"] == "validation"
    # the user's CSV has separate queries and gallery items: the first instance of each identity is the query
    first = ~df[validation].duplicated("label")
    df.loc[validation, "is_query"] = first
    df.loc[validation, "is_gallery"] = ~first
    df.to_csv(root / "obj123.csv", index=False)
    # inference_on_dataframe returns paths joined with dataset_root (as OML's did): the seed builds its datasets
    # from those dataframes without a root, from any working directory
    torch.manual_seed(0)
    return root


def test_seed_004_train_a_siamese_and_validate_it_with_embedding_metrics(dataset_root: Path) -> None:
    extractor = ViTExtractor("vits16_dino", arch="vits16", normalise_features=False)
    transform = get_normalisation_resize_torch(im_size=64)

    embeddings_train, embeddings_val, df_train, df_val = \
        inference_on_dataframe(dataset_root, "obj123.csv", extractor=extractor, transforms=transform)  # fmt: skip

    # We are building Siamese model on top of existing weights and train it to recognize positive/negative pairs
    siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])
    optimizer = torch.optim.SGD(siamese.parameters(), lr=1e-6)
    miner = PairsMiner(hard_mining=True)
    criterion = BCEWithLogitsLoss()

    train_dataset = DatasetWithLabels(df=df_train, transform=transform, extra_data={"embeddings": embeddings_train})
    batch_sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
    train_loader = DataLoader(train_dataset, batch_sampler=batch_sampler)

    weights_before = [p.detach().clone() for p in siamese.head.parameters()]
    losses = []
    for batch in train_loader:
        # We sample pairs on which the original model struggled most
        ids1, ids2, is_negative_pair = miner.sample(features=batch["embeddings"], labels=batch["labels"])
        probs = siamese(x1=batch["input_tensors"][ids1], x2=batch["input_tensors"][ids2])
        loss = criterion(probs, is_negative_pair.float())

        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())

    assert len(losses) == len(batch_sampler) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, siamese.head.parameters())), "SGD changed nothing"

    # Siamese re-ranks top-n retrieval outputs of the original model performing inference on pairs (query, output_i)
    val_dataset = DatasetQueryGallery(df=df_val, extra_data={"embeddings": embeddings_val}, transform=transform)
    valid_loader = DataLoader(val_dataset, batch_size=4, shuffle=False)

    postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)
    calculator = EmbeddingMetrics(postprocessor=postprocessor)
    calculator.setup(num_samples=len(val_dataset))

    for batch in valid_loader:
        calculator.update_data(data_dict=batch)

    metrics = calculator.compute_metrics()
    assert set(metrics["OVERALL"]) >= {"cmc", "precision", "map"}
    assert 0.0 <= float(metrics["OVERALL"]["cmc"][5]) <= 1.0
    # the three nearest gallery items of each query were re-ordered by the siamese' scores (probabilities)
    distances = calculator.retrieval_results.padded_distances[:, :3]
    assert bool(((distances >= 0) & (distances <= 1)).all())


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # the seed indexes with df[...].values
def test_seed_004_rerank_a_distance_matrix(dataset_root: Path) -> None:
    # 1. Let's use feature extractor to get predictions
    extractor = ViTExtractor("vits16_dino")  # the seed: ViTExtractor.from_pretrained("vits16_dino")
    transforms, _ = get_transforms_for_pretrained("vits16_dino")

    _, emb_val, _, df_val = inference_on_dataframe(dataset_root, "obj123.csv", extractor, transforms=transforms)

    is_query = df_val["is_query"].astype("bool").values
    distances = pairwise_dist(x1=emb_val[is_query], x2=emb_val[~is_query])

    print("\nOriginal predictions:\n", torch.topk(distances, dim=1, k=3, largest=False)[1])

    # 2. Let's initialise a random pairwise postprocessor to perform re-ranking
    siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])  # Note! Replace it with your trained postprocessor
    postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transforms)

    dataset = DatasetQueryGallery(df_val, extra_data={"embeddings": emb_val}, transform=transforms)
    loader = DataLoader(dataset, batch_size=4)

    query_paths = df_val[PATHS_COLUMN][is_query].values
    gallery_paths = df_val[PATHS_COLUMN][~is_query].values
    distances_upd = postprocessor.process(distances=distances, queries=query_paths, galleries=gallery_paths)

    print("\nPredictions after postprocessing:\n", torch.topk(distances_upd, dim=1, k=3, largest=False)[1])

    assert len(loader) == 2 and distances_upd.shape == distances.shape == (2, 4)
    top3_before = torch.topk(distances, dim=1, k=3, largest=False)[1]
    top3_after = torch.topk(distances_upd, dim=1, k=3, largest=False)[1]
    # the same three gallery items, re-ordered by the siamese; the other one stays behind them
    assert torch.equal(top3_after.sort(dim=1).values, top3_before.sort(dim=1).values)
    rest_before = torch.argsort(distances, dim=1)[:, 3:]
    rest_after = torch.argsort(distances_upd, dim=1)[:, 3:]
    assert torch.equal(rest_after, rest_before)


def test_seed_004_embedding_metrics_with_only_a_postprocessor(dataset_root: Path) -> None:
    # as in OML 2.x, EmbeddingMetrics accumulates the postprocessor's needed_keys (here "paths") by itself
    transform = get_normalisation_resize_torch(im_size=32)
    extractor = ViTExtractor("vits16_dino", arch="vits16", normalise_features=False)
    _, embeddings_val, _, df_val = inference_on_dataframe(dataset_root, "obj123.csv", extractor=extractor, transforms=transform)
    siamese = ConcatSiamese(extractor=extractor, mlp_hidden_dims=[100])
    val_dataset = DatasetQueryGallery(df=df_val, extra_data={"embeddings": embeddings_val}, transform=transform)
    postprocessor = PairwiseImagesPostprocessor(top_n=3, pairwise_model=siamese, transforms=transform)
    calculator = EmbeddingMetrics(postprocessor=postprocessor)
    calculator.setup(num_samples=len(val_dataset))
    for batch in DataLoader(val_dataset, batch_size=4, shuffle=False):
        calculator.update_data(data_dict=batch)
    assert 0.0 <= float(calculator.compute_metrics()["OVERALL"]["cmc"][5]) <= 1.0
