"""HFWrapper (CLS / mean pooling, normalisation), the hf_text extractor and text modality through the host,
training through the engine's step and retrieval results drawn as texts."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import matplotlib
import pytest
import torch
from oml_text import HFWrapper, TextBaseDataset, TextLabeledDataset, TextQueryGalleryLabeledDataset, get_mock_texts_dataset
from torch.utils.data import DataLoader

from oml_core import Host
from oml_core.errors import OMLError
from oml_core.inference import inference
from oml_core.retrieval import RetrievalResults

matplotlib.use("Agg")


def test_cls_pooling_is_the_first_hidden_state(bert, tokenizer) -> None:  # type: ignore[no-untyped-def]
    batch = tokenizer(["a red chair", "a blue table with legs"], padding=True, return_tensors="pt")
    extractor = HFWrapper(bert, feat_dim=32).eval()
    with torch.no_grad():
        expected = bert(batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
        assert torch.equal(extractor(batch), expected) and extractor.feat_dim == 32
        normalised = HFWrapper(bert, feat_dim=32, normalise_features=True).eval()(batch)
    assert torch.allclose(normalised.norm(dim=1), torch.ones(2))
    assert torch.allclose(normalised, expected / expected.norm(dim=1, keepdim=True))


def test_mean_pooling_ignores_padding(bert, tokenizer) -> None:  # type: ignore[no-untyped-def]
    extractor = HFWrapper(bert, feat_dim=32, pooling="mean").eval()
    short = TextBaseDataset(["a red chair"], tokenizer, max_length=8)[0]["input_tensors"]
    long = TextBaseDataset(["a red chair"], tokenizer, max_length=40)[0]["input_tensors"]
    with torch.no_grad():
        a, b = extractor(short), extractor(long)  # one item without a batch dimension works too
        hidden = bert(short["input_ids"][None], attention_mask=short["attention_mask"][None]).last_hidden_state[0]
    n = int(short["attention_mask"].sum())
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a[0], hidden[:n].mean(0), atol=1e-6)
    with pytest.raises(OMLError, match="pooling must be 'cls' or 'mean'"):
        HFWrapper(bert, feat_dim=32, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(OMLError, match="expects a dict with 'input_ids'"):
        extractor(torch.zeros(2, 8))
    with pytest.warns(UserWarning, match="feat_dim=768 but the model's hidden_size is 32"):
        HFWrapper(bert, feat_dim=768)
    assert HFWrapper(bert).feat_dim == 32  # OML 4.0's README writes HFWrapper(model_hf)


def test_plugin_registers_through_its_entry_point(tiny_model_dir: Path) -> None:
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="oml")}
    assert points.get("oml_text") == "oml_text.plugin"
    host = Host(env={})
    info = next(p for p in host.plugins if p.name == "oml_text")
    assert (info.status, info.distribution) == ("loaded", "oml-text")
    assert info.components == {"extractors": ["hf_text"], "modalities": ["text"]}
    extractor = host.registries.extractors.create("hf_text", {"model": str(tiny_model_dir), "pooling": "mean"})
    assert isinstance(extractor, HFWrapper) and extractor.feat_dim == 32 and extractor.pooling == "mean"
    random = host.registries.extractors.create("hf_text", {"model": str(tiny_model_dir), "random_init": True})
    assert not torch.equal(random.model.embeddings.word_embeddings.weight, extractor.model.embeddings.word_embeddings.weight)
    modality = host.registries.modalities.create("text", {"tokenizer": str(tiny_model_dir), "max_length": 32})
    _, df_val = get_mock_texts_dataset()
    assert isinstance(modality.query_gallery_dataset(df_val), TextQueryGalleryLabeledDataset)
    assert modality.query_dataset(["a chair"])[0]["input_tensors"]["input_ids"].shape == (32,)
    with pytest.raises(OMLError, match=r"cannot load the transformers model '/no/such/model'.*save_pretrained"):
        host.registries.extractors.create("hf_text", {"model": "/no/such/model"})
    with pytest.raises(OMLError, match=r"cannot load the tokenizer '/no/such/tokenizer'"):
        host.registries.modalities.create("text", {"tokenizer": "/no/such/tokenizer"})


def test_a_few_steps_of_training_separate_the_labels(bert, tokenizer) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    df_train, _ = get_mock_texts_dataset()
    dataset = TextLabeledDataset(df_train, tokenizer=tokenizer, max_length=48)
    model = HFWrapper(bert, feat_dim=32, pooling="mean", normalise_features=True).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def gap() -> float:
        embeddings = inference(model, dataset, batch_size=8, progress=False)
        labels = torch.as_tensor(dataset.get_labels())
        distances = torch.cdist(embeddings, embeddings)
        same = labels[:, None] == labels[None, :]
        return float(distances[~same].mean() - distances[same & ~torch.eye(len(labels), dtype=torch.bool)].mean())

    before = gap()
    for _ in range(15):
        for batch in DataLoader(dataset, batch_size=18, shuffle=True):
            embeddings = model(batch["input_tensors"])
            labels = batch["labels"]
            distances = torch.cdist(embeddings, embeddings)
            same = labels[:, None] == labels[None, :]
            loss = distances[same].mean() - distances[~same].clamp(max=1.5).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert gap() > before + 0.1


def test_retrieval_results_are_drawn_as_texts(bert, tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, df_val = get_mock_texts_dataset()
    dataset = TextQueryGalleryLabeledDataset(df_val, tokenizer=tokenizer, max_length=48)
    embeddings = inference(HFWrapper(bert, 32), dataset, batch_size=4, progress=False)
    results = RetrievalResults.from_embeddings(embeddings, dataset, n_items=3)
    figure = results.visualize(query_ids=[2, 1], dataset=dataset, path=str(tmp_path / "texts.png"))
    assert (tmp_path / "texts.png").stat().st_size > 5000
    shown = [ax.get_images()[0].get_array() for ax in figure.axes if ax.get_images()]
    assert len(shown) == 2 * 4  # each query and its 3 results
    assert any((picture[:, :, :3] == dataset.visualize(2, color=(0, 0, 255))).all() for picture in shown)
