"""PairwiseModule trains a re-ranker on pairs mined from precomputed embeddings; MetricValCallback with
EmbeddingMetrics(postprocessor=PairwiseReranker(...)) reports the metrics after re-ranking."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from oml_lightning import MetricValCallback, PairwiseModule
from oml_miners import PairsMiner
from oml_siamese import LinearSiamese, PairwiseReranker
from torch.utils.data import DataLoader, Dataset

from oml_core.engine import flatten_metrics
from oml_core.retrieval import EmbeddingMetrics

TOP_N = 5
METRIC_ARGS = {"cmc_top_k": (1,), "precision_top_k": (), "map_top_k": (TOP_N,), "pcf_variance": ()}
TRAINER_ARGS = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}


class PrecomputedEmbeddings(Dataset):
    """Embeddings whose first 2 dims tell the label apart and whose last 2 are loud noise: a learnt linear map on
    top of them can do much better than their plain distances."""

    def __init__(self, n_labels: int, n_instances: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n_labels).repeat_interleave(n_instances)
        centres = 3 * torch.randn(n_labels, 2, generator=generator)
        signal = centres[self.labels] + 0.2 * torch.randn(len(self.labels), 2, generator=generator)
        noise = 2.0 * torch.randn(len(self.labels), 2, generator=generator)
        self.embeddings = torch.cat([signal, noise], dim=1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"embeddings": self.embeddings[i], "labels": int(self.labels[i]), "idx": i, "is_query": True, "is_gallery": True}


def _direct_metrics(dataset: PrecomputedEmbeddings, postprocessor=None) -> dict[str, float]:
    metric = EmbeddingMetrics(postprocessor=postprocessor, **METRIC_ARGS)
    metric.setup(num_samples=len(dataset))
    metric.update_data(
        {"embeddings": dataset.embeddings, "labels": dataset.labels, "idx": torch.arange(len(dataset)),
         "is_query": torch.ones(len(dataset), dtype=torch.bool), "is_gallery": torch.ones(len(dataset), dtype=torch.bool)}
    )  # fmt: skip
    return flatten_metrics(metric.compute_metrics())


def test_pairwise_module_improves_retrieval_by_reranking_and_the_callback_reports_it():
    torch.manual_seed(0)
    train, val = PrecomputedEmbeddings(12, 4, seed=1), PrecomputedEmbeddings(8, 4, seed=2)
    siamese = LinearSiamese(feat_dim=4, identity_init=True, output_bias=-2.0)
    reranker = PairwiseReranker(top_n=TOP_N, pairwise_model=siamese)
    callback = MetricValCallback(metric=EmbeddingMetrics(postprocessor=reranker, **METRIC_ARGS))
    # the siamese compares embeddings, so its inputs are the batch's embeddings too
    module = PairwiseModule(
        siamese, PairsMiner(hard_mining=False), optimizer=torch.optim.Adam(siamese.parameters(), lr=0.05),
        input_tensors_key="embeddings",
    )  # fmt: skip
    val_loader = DataLoader(val, batch_size=8)
    trainer = pl.Trainer(max_epochs=15, callbacks=[callback], num_sanity_val_steps=0, check_val_every_n_epoch=15, **TRAINER_ARGS)

    # before training the siamese is the identity map: re-ranking changes nothing
    trainer.validate(module, dataloaders=val_loader, verbose=False)
    plain = _direct_metrics(val)
    assert callback.metric_result == pytest.approx(plain, abs=1e-5)

    trainer.fit(module, train_dataloaders=DataLoader(train, batch_size=16), val_dataloaders=val_loader)
    reranked = callback.metric_result
    assert reranked == pytest.approx(_direct_metrics(val, PairwiseReranker(top_n=TOP_N, pairwise_model=siamese.eval())), abs=1e-6)
    assert reranked["OVERALL/cmc/1"] > plain["OVERALL/cmc/1"] + 0.2, (plain, reranked)
    # the map learnt to ignore the noise dims
    weight = siamese.proj.weight.detach().abs()
    assert weight[:, 2:].sum() < weight[:, :2].sum() / 2
