"""OML 4.0's public image API here: names, call shapes and what they compute, checked against slow recomputations
written from OML 4's definitions (the peers' own run is in bench/oml4_parity.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from oml_core.data import (
    DatasetQueryGallery,
    ImageBaseDataset,
    ImageLabeledDataset,
    ImageQueryGalleryDataset,
    ImageQueryGalleryLabeledDataset,
    PairDataset,
    check_retrieval_dataframe_format,
    get_mock_images_dataset,
)
from oml_core.data.dataframe import DataFrameError
from oml_core.retrieval import (
    AdaptiveThresholding,
    ConstantThresholding,
    EmbeddingMetrics,
    RetrievalResults,
    calc_fnmr_at_fmr_rr,
    calc_retrieval_metrics_rr,
)


# ================================================================================================ fixtures
@pytest.fixture(scope="module")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oml_core.data import download_mock_dataset

    root = tmp_path_factory.mktemp("oml4") / "mock"
    download_mock_dataset(root, n_labels=12, n_instances=4, im_size=16)
    return root


def _tiny_images(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"{i}.png"
        Image.new("RGB", (6, 4), (i * 20 % 255, 0, 0)).save(root / name)
        names.append(name)
    return names


def _qg_frame(
    root: Path, labels: list[int], sequences: list[str] | None = None, categories: list[str] | None = None
) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "label": labels,
            "path": [str(root / p) for p in _tiny_images(root, len(labels))],
            "split": "validation",
            "is_query": True,
            "is_gallery": True,
        }
    )
    if sequences is not None:
        df["sequence"] = sequences
    if categories is not None:
        df["category"] = categories
    return df


# ================================================================================================ slow references
def _slow_search(emb: np.ndarray, queries: list[int], gallery: list[int], sequences: list[str] | None, k: int) -> list[list[int]]:
    """OML 4: a query never retrieves itself nor an item of its own sequence; nearest first, ties by gallery order."""
    out = []
    for q in queries:
        candidates = []
        for position, g in enumerate(gallery):
            if g == q or (sequences is not None and sequences[g] == sequences[q]):
                continue
            candidates.append((math.dist(emb[q].tolist(), emb[g].tolist()), position))
        out.append([position for _, position in sorted(candidates)[:k]])
    return out


def _slow_metrics(retrieved: list[list[int]], relevant: list[set[int]], k: int) -> dict[str, float]:
    """OML's CMC@k, precision@k (over min(k, n_gt)) and mAP@k (over the relevant items found in the top k)."""
    cmc, precision, average_precision = [], [], []
    for ids, gt in zip(retrieved, relevant):
        hits = [int(i in gt) for i in ids[:k]]
        cmc.append(float(any(hits)))
        precision.append(sum(hits) / min(k, len(gt)))
        total, found = 0.0, 0
        for rank, hit in enumerate(hits, start=1):
            if hit:
                found += 1
                total += found / rank
        average_precision.append(total / found if found else 0.0)
    return {"cmc": float(np.mean(cmc)), "precision": float(np.mean(precision)), "map": float(np.mean(average_precision))}


# ================================================================================================ datasets
def test_image_datasets_take_oml4_positional_arguments_and_keep_category_and_sequence_in_extra_data(mock_root: Path) -> None:
    df_train, df_val = get_mock_images_dataset(mock_root, "df_with_category.csv", True, True)
    train = ImageLabeledDataset(df_train, {"weights": np.arange(len(df_train))}, None, None, None, 2)
    assert train.extra_data["category"].tolist() == df_train["category"].tolist()
    item = train[3]
    assert (
        item["labels"] == df_train["label"].iloc[3] and item["weights"] == 3 and item["category"] == df_train["category"].iloc[3]
    )
    assert train.get_label2category() == dict(zip(df_train["label"], df_train["category"]))

    _, df_seq = get_mock_images_dataset(mock_root, df_name="df_with_sequence.csv", global_paths=True)
    val = ImageQueryGalleryLabeledDataset(df_seq)
    assert list(val.extra_data["sequence"]) == df_seq["sequence"].astype(str).tolist()
    assert val.get_query_ids().tolist() == list(range(len(df_seq)))

    unlabeled = ImageQueryGalleryDataset(df_seq)  # OML 4: no ground truth, even if the frame has labels
    assert "labels" not in unlabeled[0] and RetrievalResults.from_embeddings(torch.rand(len(df_seq), 3), unlabeled).gt_ids is None
    with pytest.raises(Exception, match="f_imread"):
        ImageLabeledDataset(df_train, f_imread=lambda b: b)


def test_image_base_and_pair_datasets(tmp_path: Path) -> None:
    names = _tiny_images(tmp_path, 3)
    base = ImageBaseDataset(
        pd.Series(names), dataset_root=tmp_path, bboxes=[None, (0, 0, 2, 2), None], extra_data={"k": [5, 6, 7]}
    )
    assert len(base) == 3 and base[1]["input_tensors"].shape == (3, 2, 2) and base[2]["k"] == 7 and base[0]["idx"] == 0
    assert base.visualize(1, (0, 255, 0)).shape == (4, 6, 3)
    pairs = PairDataset(base, [(0, 1), (2, 2)])
    assert len(pairs) == 2 and torch.equal(pairs[1]["input_tensors_1"], pairs[1]["input_tensors_2"])


def test_interfaces_hold_for_this_projects_datasets(mock_root: Path) -> None:
    from oml_core.interfaces import IBaseDataset, ILabeledDataset, IQueryGalleryDataset, IQueryGalleryLabeledDataset

    df_train, df_val = get_mock_images_dataset(mock_root, global_paths=True)
    assert isinstance(ImageLabeledDataset(df_train), ILabeledDataset)
    assert isinstance(ImageQueryGalleryLabeledDataset(df_val), IQueryGalleryLabeledDataset)
    assert isinstance(ImageQueryGalleryDataset(df_val), IQueryGalleryDataset)
    assert not isinstance(ImageQueryGalleryDataset(df_val), ILabeledDataset)
    assert isinstance(ImageBaseDataset(df_val["path"]), IBaseDataset)


def test_mock_categories_have_two_labels_each_so_oml4s_category_samplers_run(mock_root: Path) -> None:
    from oml_samplers import DistinctCategoryBalanceSampler

    for df in get_mock_images_dataset(mock_root, df_name="df_with_category.csv"):
        per_category = df.groupby("category")["label"].nunique()
        assert (per_category >= 2).all(), per_category.to_dict()
    default_root = mock_root.parent / "default"  # the default size, as OML 4's examples get it
    df_train, _ = get_mock_images_dataset(default_root, df_name="df_with_category.csv")
    assert (df_train.groupby("category")["label"].nunique() >= 2).all()
    train = ImageLabeledDataset(df_train, dataset_root=default_root)
    args = {
        "n_categories": 2,
        "n_labels": 2,
        "n_instances": 2,
        "label2category": train.get_label2category(),
        "labels": train.get_labels(),
    }
    batches = list(DistinctCategoryBalanceSampler(epoch_size=5, **args))
    assert len(batches) == 5 and all(len(b) == 8 for b in batches)


def test_check_retrieval_dataframe_format(mock_root: Path, tmp_path: Path) -> None:
    df_train, df_val = get_mock_images_dataset(mock_root, global_paths=True)
    check_retrieval_dataframe_format(df=df_train)
    check_retrieval_dataframe_format(df=df_val)
    bad = pd.concat([df_train, df_val]).drop(columns="split")
    bad.to_csv(tmp_path / "bad.csv", sep=";", index=False)
    with pytest.raises(DataFrameError, match="split"):
        check_retrieval_dataframe_format(tmp_path / "bad.csv", sep=";")


# ================================================================================================ sequences & categories
@pytest.mark.parametrize("make", [DatasetQueryGallery, ImageQueryGalleryLabeledDataset], ids=["2.x", "4.x"])
def test_from_embeddings_leaves_out_the_querys_own_sequence(tmp_path: Path, make) -> None:
    labels = [0, 0, 0, 1, 1, 1, 2, 2]
    sequences = ["a", "a", "b", "c", "c", "d", "e", "f"]
    dataset = make(_qg_frame(tmp_path, labels, sequences))
    emb = torch.tensor([[0.0], [0.01], [0.5], [3.0], [3.02], [3.6], [7.0], [7.3]])
    rr = RetrievalResults.from_embeddings(emb, dataset, n_items=3)
    expected = _slow_search(emb.numpy(), list(range(8)), list(range(8)), sequences, 3)
    assert [r.tolist() for r in rr.retrieved_ids] == expected
    assert 1 not in rr.retrieved_ids[0].tolist() and 0 not in rr.retrieved_ids[1].tolist()  # same sequence "a"
    relevant = [{g for g in range(8) if labels[g] == labels[q] and sequences[g] != sequences[q]} for q in range(8)]
    assert [set(g.tolist()) for g in rr.gt_ids] == relevant


def test_embedding_metrics_with_a_dataset_honours_sequence_and_category_like_oml4(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [i // 4 for i in range(16)]
    sequences = [f"s{i // 2}" for i in range(16)]  # pairs of neighbouring frames
    categories = ["x" if label < 2 else "y" for label in labels]
    df = _qg_frame(tmp_path, labels, sequences, categories)
    df["is_gallery"] = [i != 5 for i in range(16)]  # one item is a query only
    dataset = ImageQueryGalleryLabeledDataset(df)
    emb = torch.from_numpy(rng.normal(size=(16, 4)).astype(np.float32)) + torch.tensor(labels)[:, None] * 0.8

    calc = EmbeddingMetrics(dataset=dataset, cmc_top_k=(1, 3), precision_top_k=(3,), map_top_k=(3,), pcf_variance=())
    calc.setup()
    for start in (0, 7):  # OML 4's update(embeddings, indices)
        stop = 16 if start else 7
        calc.update(emb[start:stop], torch.arange(start, stop))
    metrics = calc.compute_metrics()

    queries = list(range(16))
    gallery = [i for i in range(16) if i != 5]
    retrieved = _slow_search(emb.numpy(), queries, gallery, sequences, 3)
    relevant = [
        {p for p, g in enumerate(gallery) if labels[g] == labels[q] and sequences[g] != sequences[q] and g != q} for q in queries
    ]
    for category, members in (
        ("OVERALL", range(len(queries))),
        ("x", [i for i, q in enumerate(queries) if categories[q] == "x"]),
    ):
        expected = _slow_metrics([retrieved[i] for i in members], [relevant[i] for i in members], 3)
        assert float(metrics[category]["cmc"][3]) == pytest.approx(expected["cmc"])
        assert float(metrics[category]["precision"][3]) == pytest.approx(expected["precision"])
        assert float(metrics[category]["map"][3]) == pytest.approx(expected["map"])
    assert set(metrics) == {"OVERALL", "x", "y"}

    # the same numbers from batches carrying "idx" (Lightning's MetricValCallback passes whole batches)
    again = EmbeddingMetrics(dataset, cmc_top_k=(1, 3), precision_top_k=(3,), map_top_k=(3,), pcf_variance=())
    again.setup()
    again.update_data({"embeddings": emb, "idx": torch.arange(16), "labels": torch.zeros(16)})
    assert again.compute_metrics() == metrics
    with pytest.raises(Exception, match="every item"):
        partial = EmbeddingMetrics(dataset=dataset)
        partial.setup(num_samples=5)
        partial.update(emb[:5], torch.arange(5))
        partial.compute_metrics()


def test_from_embeddings_qg_takes_labels_and_sequences_from_the_two_datasets(tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    (tmp_path / "g").mkdir()
    queries = ImageQueryGalleryLabeledDataset(_qg_frame(tmp_path / "q", [0, 1], ["a", "b"]))
    gallery = ImageQueryGalleryLabeledDataset(_qg_frame(tmp_path / "g", [0, 0, 1], ["a", "z", "b"]))
    rr = RetrievalResults.from_embeddings_qg(
        embeddings_query=torch.tensor([[0.0], [5.0]]),
        embeddings_gallery=torch.tensor([[0.0], [1.0], [5.0]]),
        dataset_query=queries,
        dataset_gallery=gallery,
    )
    assert [r.tolist() for r in rr.retrieved_ids] == [[1, 2], [1, 0]]  # gallery 0 / 2 share the queries' sequences
    assert [g.tolist() for g in rr.gt_ids] == [[1], []]

    bases = ImageBaseDataset(queries.get_paths()), ImageBaseDataset(gallery.get_paths())
    rr = RetrievalResults.from_embeddings_qg(torch.tensor([[0.0], [5.0]]), torch.tensor([[0.0], [1.0], [5.0]]), *bases)
    assert rr.gt_ids is None and [r.tolist() for r in rr.retrieved_ids] == [[0, 1, 2], [2, 1, 0]]
    figure = rr.visualize_qg([0, 1], dataset_query=bases[0], dataset_gallery=bases[1], n_galleries_to_show=2)
    assert len(figure.axes) == 6 and figure.axes[1].get_title().startswith("Gallery #0")
    page = rr.visualize_as_html([1], bases[0], dataset_gallery=bases[1], n_galleries_to_show=2, path=tmp_path / "rr.html")
    assert (tmp_path / "rr.html").read_text() == page and page.count("data:image/png;base64,") == 3 and "http" not in page


# ================================================================================================ postprocessors & metrics
def _rr() -> RetrievalResults:
    distances = torch.tensor([[0.1, 0.2, 3.0, 3.1], [1.0, 1.1, 1.2, 1.3], [0.5, 4.0, 4.1, 9.0]])
    ids = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]])
    return RetrievalResults(distances, ids, [torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([1, 2])])


def test_constant_and_adaptive_thresholding_follow_oml4() -> None:
    assert [r.tolist() for r in ConstantThresholding(th=1.1).process(_rr()).retrieved_ids] == [[0, 1], [3], [1]]
    # the mean gap over all queries: (0.1 + 2.8 + 0.1 + 0.1 + 0.1 + 0.1 + 3.5 + 0.1 + 4.9) / 9 = 11.8 / 9
    mean_gap = 11.8 / 9
    expected = []
    for row in _rr().distances:
        gaps = (row[1:] - row[:-1]).tolist()
        cut = next((i for i, gap in enumerate(gaps) if gap > 1.5 * mean_gap), None)
        expected.append(len(row) if cut is None else cut + 1)
    kept = AdaptiveThresholding(n_std=1.5).process(_rr())
    assert [len(r) for r in kept.retrieved_ids] == expected == [2, 4, 1]
    assert [g.tolist() for g in kept.gt_ids] == [[0, 1], [0], [1, 2]]


def test_calc_fnmr_at_fmr_rr_uses_the_retrieved_distances() -> None:
    rr = _rr()
    pos = [0.1, 0.2, 1.3, 0.5, 9.0]  # relevant retrieved items
    neg = [3.0, 3.1, 1.0, 1.1, 1.2, 4.0, 4.1]
    for fmr in (0.1, 0.5):
        threshold = np.quantile(neg, fmr)
        value = calc_fnmr_at_fmr_rr(rr, fmr_vals=(fmr,))["fnmr@fmr"][fmr]
        assert float(value) == pytest.approx(np.mean([p >= threshold for p in pos]))
    assert calc_fnmr_at_fmr_rr(rr, fmr_vals=()) == {}
    metrics = calc_retrieval_metrics_rr(rr, map_top_k=(3,), cmc_top_k=(1,), precision_top_k=())
    assert float(metrics["cmc"][1]) == pytest.approx(2 / 3)


# ================================================================================================ misc
def test_miner_with_bank_mines_the_batch_against_the_bank() -> None:
    from oml_losses import TripletLossWithMiner
    from oml_miners import MinerWithBank, NHardTripletsMiner

    torch.manual_seed(0)
    miner = MinerWithBank(bank_size_in_batches=2, miner=NHardTripletsMiner(n_positive=1, n_negative=1))
    criterion = TripletLossWithMiner(0.1, miner, need_logs=True)
    labels = torch.tensor([0, 0, 1, 1])
    for _ in range(3):
        features = torch.randn(4, 3, requires_grad=True)
        criterion(features, labels).backward()
        triplets = miner.sample(features.detach(), labels)
        assert set(triplets.anchors.tolist()) == {0, 1, 2, 3}  # anchors only from the batch
        pool_labels = triplets.pool_labels
        assert bool((pool_labels[triplets.anchors] == pool_labels[triplets.positives]).all())
        assert bool((pool_labels[triplets.anchors] != pool_labels[triplets.negatives]).all())
    assert len(triplets.pool_features) == 12 and criterion.last_logs["active_tri"] >= 0
    assert set(miner.last_logs) == {"positives_from_bank", "positives_from_batch", "negatives_from_bank", "negatives_from_batch"}


def test_pca_matches_numpy_and_misc_torch_helpers() -> None:
    from oml_core.utils import PCA, assign_2d, take_2d

    x = torch.from_numpy(np.random.default_rng(1).normal(size=(30, 5)))
    pca = PCA(x)
    centred = (x - x.mean(0)).numpy()
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(centred.T)))[::-1]
    assert np.allclose(pca.explained_variance.numpy(), eigenvalues)
    ratio = np.cumsum(eigenvalues / eigenvalues.sum())
    assert pca.calc_principal_axes_number((0.5,)).tolist() == [1 + int((ratio[:-1] <= 0.5).sum())]
    assert torch.allclose(pca.inverse_transform(pca.transform(x)), x)
    values = torch.arange(6).reshape(2, 3)
    assert take_2d(values, torch.tensor([[2], [0]])).tolist() == [[2], [3]]
    assert assign_2d(values.clone(), torch.tensor([[0], [1]]), torch.tensor([[9], [9]])).tolist() == [[9, 1, 2], [3, 9, 5]]


def test_a_users_extractor_and_dataset_written_against_oml4s_interfaces_work_here() -> None:
    from oml_core.inference import inference
    from oml_core.interfaces import IExtractor, IQueryGalleryLabeledDataset

    class MeanColour(IExtractor):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def extract(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3)) * self.scale

        @property
        def feat_dim(self) -> int:
            return 3

    class Frames(IQueryGalleryLabeledDataset):
        def __init__(self) -> None:
            self.extra_data = {"sequence": ["a", "a", "b", "c"]}
            self.x = torch.tensor([0.0, 0.1, 0.2, 5.0])

        def __getitem__(self, item: int) -> dict:
            return {"input_tensors": torch.full((3, 2, 2), float(self.x[item])), "idx": item}

        def __len__(self) -> int:
            return 4

        def get_labels(self) -> np.ndarray:
            return np.array([0, 0, 0, 1])

        def get_query_ids(self) -> torch.LongTensor:
            return torch.arange(4)  # type: ignore[return-value]

        def get_gallery_ids(self) -> torch.LongTensor:
            return torch.arange(4)  # type: ignore[return-value]

    dataset = Frames()
    embeddings = inference(MeanColour(), dataset, batch_size=2, progress=False)
    rr = RetrievalResults.from_embeddings(embeddings, dataset, n_items=1)
    assert [r.tolist() for r in rr.retrieved_ids] == [[2], [2], [1], [2]]  # never the own sequence
    calc = EmbeddingMetrics(dataset=dataset, cmc_top_k=(1,), precision_top_k=(), map_top_k=(), pcf_variance=())
    calc.setup()
    calc.update(embeddings, torch.arange(4))
    # the 4th query (label 1) has no relevant gallery item: it is left out of the average (OML 4.0 counted it as a
    # miss, 3 / 4), with a warning and its count; the three others retrieve their own label first
    with pytest.warns(UserWarning, match="1 of 4 queries have no relevant gallery item"):
        overall = calc.compute_metrics()["OVERALL"]
    assert float(overall["cmc"][1]) == pytest.approx(3 / 3) and int(overall["queries_without_gt"]) == 1

    # the engine's validation reads the same columns from the interface (the dataset has no dataframe)
    from oml_core.engine.validation import validation_columns

    columns = validation_columns(dataset)
    assert columns["sequence"] == ["a", "a", "b", "c"] and columns["is_query"].all() and "paths" not in columns
    engine_style = EmbeddingMetrics(cmc_top_k=(1,), precision_top_k=(), map_top_k=(), pcf_variance=(), sequence_key="sequence")
    engine_style.setup(num_samples=4)
    engine_style.update_data({"embeddings": embeddings, **columns})
    with pytest.warns(UserWarning, match="no relevant gallery item"):
        assert engine_style.compute_metrics() == calc.metrics


def test_oml_train_validation_keeps_rows_without_a_sequence_apart(tmp_path: Path) -> None:
    """Rows with an empty ``sequence`` are each their own sequence in ``oml train``'s validation too (they were all
    put into one sequence "nan", so they never retrieved each other)."""
    from oml_core.engine.validation import validation_columns

    df = _qg_frame(tmp_path, [0, 0, 1, 1], ["a", None, None, "a"])  # type: ignore[list-item]
    columns = validation_columns(DatasetQueryGallery(df))
    assert columns["sequence"] == ["a", "row1", "row2", "a"]
    rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [0.1], [0.2], [0.3]]), sequences=columns["sequence"], n_items=3)
    assert 2 in rr.retrieved_ids[1].tolist() and 3 not in rr.retrieved_ids[0].tolist()
