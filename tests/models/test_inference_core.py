"""Inference helpers: order, modes, errors, torch.distributed, caching, dataframes and ``oml embed``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

import oml_core.inference as inference_module
from oml_core.cli import main
from oml_core.data import download_mock_dataset, read_image
from oml_core.data.transforms import get_normalisation_resize_torch
from oml_core.errors import OMLError
from oml_core.inference import fingerprint_model, inference, inference_cached, inference_on_dataframe
from oml_core.models import SimpleCNNExtractor


class _Items(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, size: int = 6, seed: int = 0) -> None:
        self.images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_tensors": self.images[i], "idx": i}


class _Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 6 * 6, 4)
        self._calls = 0  # private: not part of the model's fingerprint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._calls += 1
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 32])
def test_inference_equals_a_per_item_loop_in_dataset_order(batch_size: int) -> None:
    torch.manual_seed(0)
    model = _Counting().train()
    dataset = _Items(10)
    out = inference(model, dataset, batch_size, 0, progress=False)
    expected = torch.stack([model.linear(dataset[i]["input_tensors"].flatten()) for i in range(10)]).detach()
    assert out.shape == (10, 4) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.allclose(out, expected, atol=1e-6)
    assert model.training and model._calls == -(-10 // batch_size)


def test_inference_runs_in_eval_mode_without_gradients() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(108, 8), nn.BatchNorm1d(8)).train()
    before = model[2].running_mean.clone()
    out = inference(model, _Items(5), batch_size=2, progress=False)
    assert not out.requires_grad and torch.equal(model[2].running_mean, before) and model.training


def test_inference_reports_bad_inputs() -> None:
    model = nn.Flatten()
    with pytest.raises(OMLError, match="empty"):
        inference(model, _Items(0), progress=False)
    with pytest.raises(OMLError, match="no 'input_tensors' key .*images"):
        inference(model, [{"images": torch.zeros(3)}], progress=False)
    with pytest.raises(OMLError, match=r"returned shape \(1, 3, 6, 6\)"):
        inference(nn.Identity(), _Items(1), progress=False)


_DDP_WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from oml_core.inference import inference
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    data = [{"input_tensors": torch.arange(12.0).reshape(3, 2, 2) * (i + 1) / 50} for i in range(int(sys.argv[1]))]
    out = inference(model, data, batch_size=2, progress=False)
    expected = model(torch.stack([d["input_tensors"] for d in data])).detach()
    torch.save({"out": out, "expected": expected}, sys.argv[2] + f".{dist.get_rank()}")
    dist.destroy_process_group()
    """
)


@pytest.mark.slow  # two processes start torch: 4-9 s on 2 cores
def test_inference_under_torch_distributed_gathers_in_dataset_order(tmp_path: Path) -> None:
    n_items = 5  # not a multiple of the world size: the last rank pads with a repeat that is dropped
    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    processes = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        env["OMP_NUM_THREADS"] = "1"
        processes.append(subprocess.Popen([sys.executable, str(script), str(n_items), str(tmp_path / "out")], env=env))
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    for rank in range(2):
        result = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert result["out"].shape == (n_items, 3)
        assert torch.allclose(result["out"], result["expected"], atol=1e-6)


def test_inference_cached_skips_the_model_until_it_changes(tmp_path: Path) -> None:
    model, dataset = _Counting(), _Items(4)
    first = inference_cached(model, dataset, 2, key_parts=("data-v1",), cache_dir=tmp_path, progress=False)
    calls = model._calls
    again = inference_cached(model, dataset, 2, key_parts=("data-v1",), cache_dir=tmp_path, progress=False)
    assert torch.equal(first, again) and model._calls == calls
    inference_cached(model, dataset, 2, key_parts=("data-v2",), cache_dir=tmp_path, progress=False)
    assert model._calls == calls + 2
    with torch.no_grad():
        model.linear.bias.add_(1.0)
    changed = inference_cached(model, dataset, 2, key_parts=("data-v1",), cache_dir=tmp_path, progress=False)
    assert torch.allclose(changed, first + 1.0, atol=1e-6)
    for cached in tmp_path.glob("*.pt"):
        cached.write_bytes(b"not a tensor")
    recomputed = inference_cached(model, dataset, 2, key_parts=("data-v1",), cache_dir=tmp_path, progress=False)
    assert torch.allclose(recomputed, changed)


def test_model_fingerprint_sees_weights_and_settings() -> None:
    a = SimpleCNNExtractor(channels=(4,))
    b = SimpleCNNExtractor(channels=(4,))
    b.load_state_dict(a.state_dict())
    assert fingerprint_model(a) == fingerprint_model(b)
    b.normalise_features = True
    assert fingerprint_model(a) != fingerprint_model(b)


@pytest.fixture(scope="module")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mock")
    download_mock_dataset(root, n_labels=6, n_instances=2, im_size=16)
    return root


def test_inference_on_dataframe_splits_like_oml(mock_root: Path) -> None:
    torch.manual_seed(0)
    extractor = SimpleCNNExtractor(channels=(4, 8)).eval()
    transforms = get_normalisation_resize_torch(im_size=16)
    emb_train, emb_val, df_train, df_val = inference_on_dataframe(
        mock_root, mock_root / "df.csv", extractor, transforms, batch_size=5
    )
    df = pd.read_csv(mock_root / "df.csv")
    # paths come back joined with dataset_root, as in OML, so the frames work without a root
    assert list(df_train["path"]) == [str(mock_root / p) for p in df[df["split"] == "train"]["path"]]
    assert list(df_val["path"]) == [str(mock_root / p) for p in df[df["split"] == "validation"]["path"]]
    assert list(df_val.index) == list(range(len(df_val))) and df_val["is_query"].dtype == bool
    assert emb_train.shape == (len(df_train), 8) and emb_val.shape == (len(df_val), 8)
    with torch.no_grad():
        for embeddings, frame in ((emb_train, df_train), (emb_val, df_val)):
            for row, path in enumerate(frame["path"]):
                expected = extractor(transforms(read_image(path)).unsqueeze(0))[0]
                assert torch.allclose(embeddings[row], expected, atol=1e-5)
    # the CSV name alone is looked up under dataset_root, as OML's dataframe_name was
    again = inference_on_dataframe(mock_root, "df.csv", extractor, transforms=transforms, progress=False)
    assert torch.allclose(again[1], emb_val, atol=1e-6)


def test_inference_on_dataframe_cache_and_errors(mock_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extractor = SimpleCNNExtractor(channels=(4,))
    transforms = get_normalisation_resize_torch(im_size=16)
    first = inference_on_dataframe(mock_root, "df.csv", extractor, transforms, cache_dir=tmp_path, progress=False)

    def no_inference(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("the cached embeddings should have been used")

    monkeypatch.setattr(inference_module, "inference", no_inference)
    cached = inference_on_dataframe(mock_root, "df.csv", extractor, transforms, cache_dir=tmp_path, progress=False)
    assert torch.equal(first[0], cached[0]) and torch.equal(first[1], cached[1])
    df = pd.read_csv(mock_root / "df.csv").drop(columns=["split"])
    with pytest.raises(OMLError, match="no 'split' column"):
        inference_on_dataframe(mock_root, df, extractor, transforms)


def test_oml_embed_from_a_csv_and_from_a_config(mock_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "emb.safetensors"
    args = ["embed", str(mock_root / "df.csv"), "--dataset-root", str(mock_root), "--extractor", "simple_cnn"]
    assert main([*args, "--set", "extractor.channels=[4, 6]", "--set", "im_size=16", "--out", str(out), "--no-progress"]) == 0
    assert "wrote (12, 6) embeddings" in capsys.readouterr().out
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        assert f.get_tensor("embeddings").shape == (12, 6)
        assert len(__import__("json").loads(f.metadata()["paths"])) == 12
    config = tmp_path / "embed.yaml"
    config.write_text(
        f"dataframe: {mock_root / 'df.csv'}\ndataset_root: {mock_root}\nextractor: {{type: simple_cnn, channels: [4]}}\n"
        f"transforms: [{{type: norm_resize_torch, im_size: 16}}]\nout: {tmp_path / 'emb.npy'}\nbatch_size: 4\n"
    )
    assert main(["embed", str(config), "--no-progress"]) == 0
    import numpy as np

    assert np.load(tmp_path / "emb.npy").shape == (12, 4)
    assert main(["embed", str(mock_root / "df.csv")]) == 2
    err = capsys.readouterr().err
    assert "--run RUN_DIR" in err and "--extractor <extractor or weights name>" in err
    config.write_text(f"dataframe: {mock_root / 'df.csv'}\nextractor: {{type: simple_cnn}}\nbatch_size: 2.5\n")
    assert main(["embed", str(config)]) == 2
    assert "$.batch_size: expected an integer" in capsys.readouterr().err
