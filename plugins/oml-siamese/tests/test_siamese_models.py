"""The pairwise models: shapes, OML's head layout, symmetry, distances against a plain formula, clear errors."""

from __future__ import annotations

import pytest
import torch
from oml_siamese import ConcatSiamese, LinearSiamese, LinearTrivialDistanceSiamese, TrivialDistanceSiamese

from oml_core.errors import OMLError
from oml_core.models import SimpleCNNExtractor


def _images(n: int, seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _siamese(**kwargs) -> ConcatSiamese:
    torch.manual_seed(0)
    return ConcatSiamese(extractor=SimpleCNNExtractor(channels=(4, 8)), mlp_hidden_dims=[6, 5], **kwargs)


def test_concat_siamese_has_omls_head_layout_and_state_dict_keys():
    siamese = _siamese()
    head_keys = sorted(k for k in siamese.state_dict() if k.startswith("head."))
    # torchvision MLP(hidden=[6, 5, 1], activation Sigmoid) with the last bias and dropout removed, as OML builds it
    assert head_keys == ["head.0.bias", "head.0.weight", "head.3.bias", "head.3.weight", "head.6.weight"]
    assert [type(m).__name__ for m in siamese.head] == ["Linear", "Sigmoid", "Dropout"] * 2 + ["Linear", "Identity"]
    assert siamese.head[0].in_features == 8


def test_concat_siamese_stacks_the_images_along_the_height():
    seen = []

    class Recorder(SimpleCNNExtractor):
        def forward(self, x):
            seen.append(x)
            return super().forward(x)

    siamese = ConcatSiamese(extractor=Recorder(channels=(4,)), mlp_hidden_dims=[3])
    x1, x2 = _images(2, 1), _images(2, 2)
    out = siamese(x1=x1, x2=x2)
    assert out.shape == (2,)
    assert torch.equal(seen[0], torch.cat([x1, x2], dim=2))


def test_concat_siamese_predict_is_the_sigmoid_and_tta_averages_both_orders():
    siamese = _siamese().eval()
    x1, x2 = _images(3, 1), _images(3, 2)
    with torch.no_grad():
        forward_12, forward_21 = siamese(x1, x2), siamese(x2, x1)
        assert torch.allclose(siamese.predict(x1, x2), torch.sigmoid(forward_12))
        assert not siamese.symmetric
        siamese.use_tta = True
        assert siamese.symmetric
        expected = (torch.sigmoid(forward_12) + torch.sigmoid(forward_21)) / 2
        assert torch.allclose(siamese.predict(x1, x2), expected)
        assert torch.allclose(siamese.predict(x1, x2), siamese.predict(x2, x1))


def test_concat_siamese_freeze_stops_backbone_gradients_only():
    siamese = _siamese(dropout=0.0)
    siamese.freeze()
    siamese(_images(2, 1), _images(2, 2)).sum().backward()
    assert all(p.grad is None for p in siamese.extractor.parameters())
    assert all(p.grad is not None for p in siamese.head.parameters())
    siamese.unfreeze()
    siamese(_images(2, 1), _images(2, 2)).sum().backward()
    assert all(p.grad is not None for p in siamese.extractor.parameters())


def test_concat_siamese_loads_its_own_checkpoint(tmp_path):
    first = _siamese()
    torch.save({"state_dict": {f"model.{k}": v for k, v in first.state_dict().items()}}, tmp_path / "siamese.ckpt")
    torch.manual_seed(123)
    second = ConcatSiamese(SimpleCNNExtractor(channels=(4, 8)), [6, 5], weights=tmp_path / "siamese.ckpt")
    first.eval(), second.eval()
    x1, x2 = _images(2, 1), _images(2, 2)
    assert torch.equal(first.predict(x1, x2), second.predict(x1, x2))


def test_linear_siamese_starts_as_the_l2_distance_and_learns_a_projection():
    model = LinearSiamese(feat_dim=5, identity_init=True, output_bias=0.5)
    x1, x2 = torch.randn(4, 5), torch.randn(4, 5)
    assert torch.allclose(model.predict(x1, x2), torch.linalg.norm(x1 - x2, dim=1) + 0.5)
    assert LinearTrivialDistanceSiamese is LinearSiamese and model.input_kind == "embeddings"
    with torch.no_grad():
        model.proj.weight.mul_(2.0)
    assert torch.allclose(model.predict(x1, x2), 2 * torch.linalg.norm(x1 - x2, dim=1) + 0.5, atol=1e-5)


def test_trivial_distance_siamese_is_the_distance_of_the_embeddings():
    extractor = SimpleCNNExtractor(channels=(4, 8)).eval()
    model = TrivialDistanceSiamese(extractor).eval()
    x1, x2 = _images(3, 1), _images(3, 2)
    with torch.no_grad():
        expected = torch.stack([torch.dist(extractor(a[None])[0], extractor(b[None])[0]) for a, b in zip(x1, x2)])
        assert torch.allclose(model.predict(x1, x2), expected, atol=1e-5)
    assert model.input_kind == "images" and TrivialDistanceSiamese().input_kind == "embeddings"


@pytest.mark.parametrize(
    ("model", "x1", "x2", "message"),
    [
        (LinearSiamese(feat_dim=4), torch.zeros(2, 4), torch.zeros(3, 4), "same shape"),
        (LinearSiamese(feat_dim=4), torch.zeros(2, 5), torch.zeros(2, 5), "size 4"),
        (LinearSiamese(feat_dim=4), torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), "embeddings"),
        (ConcatSiamese(SimpleCNNExtractor(channels=(4,)), [3]), torch.zeros(2, 8), torch.zeros(2, 8), "images"),
    ],
)
def test_pairwise_models_explain_bad_inputs(model, x1, x2, message):
    with pytest.raises(OMLError, match=message):
        model(x1, x2)


def test_concat_siamese_rejects_bad_arguments():
    with pytest.raises(OMLError, match="nn.Module"):
        ConcatSiamese(extractor=lambda x: x, mlp_hidden_dims=[3])  # type: ignore[arg-type]
    with pytest.raises(OMLError, match="dropout"):
        ConcatSiamese(SimpleCNNExtractor(channels=(4,)), [3], dropout=1.0)
