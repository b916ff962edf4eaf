"""Zero-safe normalisation, GeM pooling, the MLP head layout and ExtractorWithMLP."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from oml_core import Host
from oml_core.errors import OMLError
from oml_core.models import ExtractorWithMLP, GeM, SimpleCNNExtractor, mlp, normalise
from oml_core.testing import contract_cases


def test_normalise_equals_a_slow_loop() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 7)
    out = normalise(x)
    for i in range(5):
        norm = math.sqrt(sum(float(v) ** 2 for v in x[i]))
        for j in range(7):
            assert out[i, j].item() == pytest.approx(float(x[i, j]) / norm, rel=1e-5)


def test_an_all_zero_vector_stays_zero_with_finite_gradients() -> None:
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], requires_grad=True)
    out = normalise(x)
    assert torch.equal(out[0], torch.zeros(3))
    assert torch.allclose(out[1], torch.tensor([1 / 3, 2 / 3, 2 / 3]))
    (out * torch.arange(6.0).reshape(2, 3)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # what OML's normalisation did: dividing by the norm turns the zero row (and its gradient) into NaN
    naive = x.detach() / x.detach().norm(dim=1, keepdim=True)
    assert torch.isnan(naive[0]).all()


def test_normalise_other_dims() -> None:
    x = torch.randn(2, 3, 4)
    assert torch.allclose(normalise(x, dim=1).norm(dim=1), torch.ones(2, 4), atol=1e-6)


def test_gem_is_average_pooling_at_p1_and_tends_to_max() -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 3, 5, 5)
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3), keepdim=True), atol=1e-6)
    assert torch.allclose(GeM(p=200.0)(x), x.amax(dim=(2, 3), keepdim=True), rtol=0.05)
    assert GeM(p=3.0).state_dict() == {}
    with pytest.raises(OMLError, match="p > 0"):
        GeM(p=0.0)


def test_mlp_has_torchvision_ops_mlp_layout() -> None:
    head = mlp(16, [32, 8])
    assert [(k, tuple(v.shape)) for k, v in head.state_dict().items()] == [
        ("0.weight", (32, 16)),
        ("0.bias", (32,)),
        ("3.weight", (8, 32)),
        ("3.bias", (8,)),
    ]
    with pytest.raises(OMLError, match="at least one layer"):
        mlp(16, [])


def test_extractor_with_mlp_trains_only_the_head_unless_unfrozen() -> None:
    model = ExtractorWithMLP(SimpleCNNExtractor(channels=(4, 8)), mlp_features=[16, 6])
    assert model.feat_dim == 6
    images = torch.rand(3, 3, 16, 16)
    model(images).sum().backward()
    assert all(p.grad is None for p in model.extractor.parameters())
    assert all(p.grad is not None for p in model.projection.parameters())
    model.zero_grad(set_to_none=True)
    model.unfreeze()
    model(images).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.extractor.parameters())
    model.freeze()
    assert model.train_backbone is False


def test_extractor_with_mlp_loads_an_oml_style_lightning_checkpoint(tmp_path: Path) -> None:
    source = ExtractorWithMLP(SimpleCNNExtractor(channels=(4,)), mlp_features=[5])
    lightning = {"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}, "epoch": 2}
    torch.save(lightning, tmp_path / "head.ckpt")
    loaded = ExtractorWithMLP(SimpleCNNExtractor(channels=(4,)), mlp_features=[5], weights=tmp_path / "head.ckpt")
    assert list(dict(loaded.state_dict())) == list(source.state_dict())
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


def test_extractor_with_mlp_needs_a_module() -> None:
    with pytest.raises(OMLError, match="nn.Module"):
        ExtractorWithMLP(object(), mlp_features=[4])  # type: ignore[arg-type]


def test_built_in_extractors_build_from_configs() -> None:
    host = Host(entry_points=False, env={})
    model = host.registries.extractors.create(
        "extractor_with_mlp", {"extractor": {"type": "simple_cnn", "channels": [4, 8]}, "mlp_features": [12, 3]}
    )
    assert isinstance(model, ExtractorWithMLP) and isinstance(model.extractor, SimpleCNNExtractor)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3)
    assert isinstance(model.extractor, nn.Module) and model.extractor.feat_dim == 8


@pytest.mark.parametrize("case", contract_cases("oml_core.builtin.models"), ids=str)
def test_builtin_model_contracts(case) -> None:  # type: ignore[no-untyped-def]
    case.run()
