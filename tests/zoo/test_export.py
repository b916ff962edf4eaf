"""``oml export --format onnx|torchscript|safetensors``: dynamic batch axis, outputs equal to PyTorch's (onnxruntime
for ONNX) for ViT, ResNet and ExtractorWithMLP, and a model card beside the file (threshold from calibration.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from oml_resnet import ResnetExtractor
from oml_vit import ViTExtractor

from oml_core.cli import main
from oml_core.engine.checkpoint import CHECKPOINT_FORMAT
from oml_core.export import ExportSource, card_path, export_model
from oml_core.models import ExtractorWithMLP

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements-dev.txt")
ROOT = Path(__file__).resolve().parents[2]


def _models() -> dict[str, tuple[torch.nn.Module, int]]:
    torch.manual_seed(0)
    return {
        "vit_dinov2_reg": (ViTExtractor(None, arch="vits14_reg", normalise_features=True), 56),  # interpolated positions
        "resnet_gem": (ResnetExtractor(None, arch="resnet18", gem_p=3.0), 64),
        "vit_with_mlp": (ExtractorWithMLP(ViTExtractor(None, arch="vits16"), mlp_features=[64, 32]), 48),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_onnx_and_torchscript_match_pytorch_with_any_batch_size(name: str, tmp_path: Path) -> None:
    model, size = _models()[name]
    model.eval()
    source = ExportSource(model=model, architecture={"type": name}, preprocessing={"type": "norm_resize_torch", "im_size": size},
                          image_size=size, distance="cosine")
    images = torch.rand(7, 3, size, size)
    with torch.no_grad():
        expected = model(images)
    onnx_file = export_model(source, tmp_path / f"{name}.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        got = torch.from_numpy(session.run(None, {"images": images[:batch].numpy()})[0])
        assert torch.allclose(got, expected[:batch], atol=1e-4), (name, batch, (got - expected[:batch]).abs().max())
    scripted = torch.jit.load(str(export_model(source, tmp_path / f"{name}.pt", "torchscript")))
    assert torch.allclose(scripted(images), expected, atol=1e-5)
    card = json.loads(card_path(onnx_file).read_text())
    assert card["input"]["shape"] == ["batch", 3, size, size] and card["embedding_size"] == expected.shape[1]
    assert card["distance"] == "cosine" and card["max_abs_diff_vs_pytorch"] < 1e-4 and card["threshold"] is None


def _fake_run(tmp_path: Path, threshold: float | None) -> Path:
    run = tmp_path / "runs" / "mock"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "train_mock.yaml", run / "config.yaml")
    torch.manual_seed(3)
    model = ResnetExtractor(None, arch="resnet18")
    torch.save({"format": CHECKPOINT_FORMAT, "model": model.state_dict()}, run / "checkpoints" / "best.pt")
    if threshold is not None:
        (run / "calibration.json").write_text(json.dumps({"distance": "euclidean", "threshold": threshold}))
    return run


def test_oml_export_of_a_run_writes_onnx_and_a_card_with_the_calibrated_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _fake_run(tmp_path, threshold=0.73)
    out = tmp_path / "exported" / "model.onnx"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "dynamic batch" in capsys.readouterr().out
    card = json.loads((tmp_path / "exported" / "model.card.json").read_text())
    assert card["architecture"]["type"] == "resnet" and card["architecture"]["arch"] == "resnet18"
    assert card["threshold"] == 0.73 and card["distance"] == "euclidean" and card["image_size"] == 64
    assert card["preprocessing"] == {"type": "norm_resize_torch", "im_size": 64} and card["embedding_size"] == 512
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    model = ResnetExtractor(None, arch="resnet18").eval()
    model.load_state_dict(best)
    images = torch.rand(3, 3, 64, 64)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        assert torch.allclose(got, model(images), atol=1e-4)


def test_oml_export_safetensors_of_a_run_and_format_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _fake_run(tmp_path, threshold=None)
    assert main(["export", str(run), "--out", str(tmp_path / "m.safetensors")]) == 0
    assert json.loads((tmp_path / "m.card.json").read_text())["threshold"] is None
    assert main(["export", str(run), "--out", str(tmp_path / "m.bin")]) == 2
    assert "--format" in capsys.readouterr().err
    checkpoint = run / "checkpoints" / "best.pt"
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "c.onnx")]) == 2
    assert "--extractor" in capsys.readouterr().err
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "c.pt"), "--extractor", "resnet", "--arch", "resnet18",
                 "--im-size", "32"]) == 0
    assert json.loads((tmp_path / "c.card.json").read_text())["image_size"] == 32


def test_a_weights_name_exports_with_its_entrys_preprocessing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import types

    from oml_core import Host, hookimpl
    from oml_core.export import source_from_weights
    from oml_core.models import SimpleCNNExtractor

    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    inner = SimpleCNNExtractor(channels=(4,))
    state = {"extractor." + k: v for k, v in inner.state_dict().items()}
    state |= {"projection.0.weight": torch.randn(3, 4), "projection.0.bias": torch.zeros(3)}
    served = tmp_path / "mlp.pth"
    torch.save(state, served)
    plugin = types.SimpleNamespace()

    @hookimpl
    def oml_register_weights(zoo):  # type: ignore[no-untyped-def]
        zoo.add("tiny_mlp", url=served.as_uri(), sha256=hashlib.sha256(served.read_bytes()).hexdigest(), arch="-",
                extractor="extractor_with_mlp", transforms={"type": "norm_resize_hypvit_torch", "im_size": 40, "crop_size": 32},
                init_args={"extractor": {"type": "simple_cnn", "channels": [4]}, "mlp_features": [3]})

    plugin.oml_register_weights = oml_register_weights
    source = source_from_weights("tiny_mlp", Host(plugins=[plugin], env={}))
    assert source.image_size == 32 and source.architecture["weights"] == "tiny_mlp"
    out = export_model(source, tmp_path / "tiny.onnx", "onnx")
    card = json.loads(card_path(out).read_text())
    assert card["preprocessing"]["crop_size"] == 32 and card["embedding_size"] == 3
    assert torch.equal(source.model.projection[0].weight, state["projection.0.weight"])
