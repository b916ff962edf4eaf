"""Forward pass: shapes and feat_dim of every arch, attention against a slow loop, position-embedding
interpolation, normalisation and multi-scale."""

from __future__ import annotations

import math

import pytest
import torch
from oml_vit import ARCHS, VisionTransformer, ViTArch, ViTExtractor
from oml_vit.arch import Attention

FEAT_DIMS = {"vits16": 384, "vits8": 384, "vitb16": 768, "vitb8": 768, "vits14": 384, "vitb14": 768, "vitl14": 1024}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_maps_images_to_feat_dim(arch: str) -> None:
    with torch.device("meta"):  # shapes only: no memory, no time, even for vitl14
        extractor = ViTExtractor(None, arch=arch)
        out = extractor(torch.empty(2, 3, 70, 56))
    assert extractor.feat_dim == FEAT_DIMS[arch.removesuffix("_reg")]
    assert tuple(out.shape) == (2, extractor.feat_dim)


@pytest.mark.parametrize("arch", ["vits16", "vits8", "vits14", "vits14_reg"])
def test_small_archs_compute_finite_embeddings_on_cpu(arch: str) -> None:
    extractor = ViTExtractor(None, arch=arch).eval()
    with torch.no_grad():
        out = extractor(torch.rand(2, 3, 32, 40))
    assert out.shape == (2, 384) and torch.isfinite(out).all()


def test_attention_equals_a_slow_per_head_loop() -> None:
    torch.manual_seed(0)
    attention = Attention(dim=12, num_heads=3)
    x = torch.randn(2, 5, 12)
    qkv = attention.qkv(x)
    heads = []
    for b in range(2):
        per_head = []
        for h in range(3):
            q = qkv[b, :, 0 * 12 + h * 4 : 0 * 12 + (h + 1) * 4]
            k = qkv[b, :, 1 * 12 + h * 4 : 1 * 12 + (h + 1) * 4]
            v = qkv[b, :, 2 * 12 + h * 4 : 2 * 12 + (h + 1) * 4]
            weights = torch.softmax(q @ k.T / math.sqrt(4), dim=-1)
            per_head.append(weights @ v)
        heads.append(torch.cat(per_head, dim=-1))
    expected = attention.proj(torch.stack(heads))
    assert torch.allclose(attention(x), expected, atol=1e-6)


def _tiny(**overrides: object) -> VisionTransformer:
    options: dict[str, object] = {"family": "dinov2", "patch_size": 4, "embed_dim": 8, "depth": 1, "num_heads": 2, "img_size": 16}
    options.update(overrides)
    return VisionTransformer(ViTArch(**options))  # type: ignore[arg-type]


def test_position_embeddings_are_used_as_trained_on_the_trained_grid() -> None:
    vit = _tiny()
    assert vit.interpolate_pos_encoding(16, 16, 16) is vit.pos_embed


def test_interpolation_without_offset_is_the_identity_on_the_same_grid() -> None:
    vit = _tiny(interpolate_offset=0.0, interpolate_antialias=True)
    # 16 x 19 px is the same 4 x 4 patch grid but not square, so the interpolation path runs
    again = vit.interpolate_pos_encoding(16, 16, 19)
    assert again is not vit.pos_embed
    assert torch.allclose(again, vit.pos_embed, atol=1e-6)


@pytest.mark.parametrize("offset", [0.1, 0.0])
@pytest.mark.parametrize("size", [(8, 12), (28, 20), (4, 4), (40, 40)])
def test_interpolated_grid_matches_the_image_and_keeps_constants(offset: float, size: tuple[int, int]) -> None:
    vit = _tiny(interpolate_offset=offset)
    with torch.no_grad():
        vit.pos_embed[:, 1:] = 0.5  # a constant field stays constant under bicubic resampling
        vit.pos_embed[:, 0] = -1.0
    rows, cols = size[0] // 4, size[1] // 4
    pos = vit.interpolate_pos_encoding(rows * cols, *size)
    assert pos.shape == (1, rows * cols + 1, 8)
    assert torch.allclose(pos[:, 1:], torch.full_like(pos[:, 1:], 0.5), atol=1e-5)
    assert torch.equal(pos[:, 0], vit.pos_embed[:, 0])


def test_registers_sit_after_the_cls_token_without_position_embeddings() -> None:
    vit = _tiny(num_register_tokens=2)
    with torch.no_grad():
        vit.register_tokens.copy_(torch.arange(16.0).reshape(1, 2, 8))  # type: ignore[union-attr]
    tokens = vit.prepare_tokens(torch.rand(1, 3, 16, 16))
    assert tokens.shape == (1, 1 + 2 + 16, 8)
    assert torch.equal(tokens[0, 1:3], vit.register_tokens[0])  # type: ignore[index]


def test_images_smaller_than_a_patch_are_refused() -> None:
    from oml_core.errors import OMLError

    with pytest.raises(OMLError, match="smaller than one 4x4 patch"):
        _tiny()(torch.rand(1, 3, 3, 16))


def test_normalised_features_have_unit_norm_and_multi_scale_works() -> None:
    extractor = ViTExtractor(None, arch="vits16", normalise_features=True, use_multi_scale=True).eval()
    with torch.no_grad():
        out = extractor(torch.rand(3, 3, 64, 64))
    assert out.shape == (3, 384)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_unknown_arch_lists_the_available_ones() -> None:
    from oml_core.errors import OMLError

    with pytest.raises(OMLError, match="vits16.*vitl14_reg"):
        ViTExtractor(None, arch="vit_huge")
