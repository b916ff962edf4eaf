"""The backbones have exactly the parameter names and shapes of the official DINO / DINOv2 checkpoints.

The expected table is written here from the published architectures (facebookresearch/dino
``vision_transformer.py`` with ``num_classes=0``; facebookresearch/dinov2 hub backbones with ``block_chunks=0``,
``init_values=1.0``, 518 px), independently of ``oml_vit.arch``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from oml_vit import ViTExtractor, build_vit

from oml_core.weights import WeightsError

# arch: (family, patch size, embed dim, depth, image size of the position embeddings, register tokens)
PUBLISHED = {
    "vits16": ("dino", 16, 384, 12, 224, 0),
    "vits8": ("dino", 8, 384, 12, 224, 0),
    "vitb16": ("dino", 16, 768, 12, 224, 0),
    "vitb8": ("dino", 8, 768, 12, 224, 0),
    "vits14": ("dinov2", 14, 384, 12, 518, 0),
    "vitb14": ("dinov2", 14, 768, 12, 518, 0),
    "vitl14": ("dinov2", 14, 1024, 24, 518, 0),
    "vits14_reg": ("dinov2", 14, 384, 12, 518, 4),
    "vitb14_reg": ("dinov2", 14, 768, 12, 518, 4),
    "vitl14_reg": ("dinov2", 14, 1024, 24, 518, 4),
}

# Numbers recorded by people who loaded the published files: tensors in the state_dict and parameters.
PUBLISHED_TENSOR_COUNTS = {"vitb16": 150, "vits14": 175, "vitl14": 343}
PUBLISHED_PARAMETER_COUNTS = {"vitb16": 85_798_656}


def expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    family, patch, dim, depth, img_size, registers = PUBLISHED[arch]
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, (img_size // patch) ** 2 + 1, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    if family == "dinov2":
        shapes["mask_token"] = (1, dim)
    if registers:
        shapes["register_tokens"] = (1, registers, dim)
    for i in range(depth):
        block = {
            "norm1.weight": (dim,),
            "norm1.bias": (dim,),
            "attn.qkv.weight": (3 * dim, dim),
            "attn.qkv.bias": (3 * dim,),
            "attn.proj.weight": (dim, dim),
            "attn.proj.bias": (dim,),
            "norm2.weight": (dim,),
            "norm2.bias": (dim,),
            "mlp.fc1.weight": (4 * dim, dim),
            "mlp.fc1.bias": (4 * dim,),
            "mlp.fc2.weight": (dim, 4 * dim),
            "mlp.fc2.bias": (dim,),
        }
        if family == "dinov2":
            block.update({"ls1.gamma": (dim,), "ls2.gamma": (dim,)})
        shapes.update({f"blocks.{i}.{name}": shape for name, shape in block.items()})
    return shapes


def test_the_table_agrees_with_published_counts() -> None:
    assert expected_shapes("vits16")["pos_embed"] == (1, 197, 384)
    assert expected_shapes("vits8")["pos_embed"] == (1, 785, 384)
    assert expected_shapes("vitl14")["pos_embed"] == (1, 37 * 37 + 1, 1024)
    for arch, count in PUBLISHED_TENSOR_COUNTS.items():
        assert len(expected_shapes(arch)) == count, arch
    for arch, count in PUBLISHED_PARAMETER_COUNTS.items():
        assert sum(torch.Size(s).numel() for s in expected_shapes(arch).values()) == count, arch


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_state_dict_has_the_official_names_and_shapes(arch: str) -> None:
    with torch.device("meta"):
        model = build_vit(arch)
    actual = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    expected = expected_shapes(arch)
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: v for k, v in actual.items() if v != expected[k]} == {}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_an_official_layout_state_dict_loads_strictly(arch: str) -> None:
    with torch.device("meta"):
        model = build_vit(arch)
        official = {name: torch.empty(shape) for name, shape in expected_shapes(arch).items()}
    result = model.load_state_dict(official, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def _official_checkpoint(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) * 0.02 for name, shape in expected_shapes(arch).items()}


@pytest.mark.parametrize("arch", ["vits16", "vits14_reg"])
def test_vit_extractor_loads_an_official_file_and_uses_it(arch: str, tmp_path: Path) -> None:
    checkpoint = _official_checkpoint(arch)
    path = tmp_path / "official.pth"
    torch.save(checkpoint, path)
    extractor = ViTExtractor(str(path), arch=arch, normalise_features=False).eval()
    loaded = extractor.model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in checkpoint.items())
    random = ViTExtractor(None, arch=arch).eval()
    images = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        assert not torch.allclose(extractor(images), random(images))


def test_a_lightning_checkpoint_with_prefix_and_extra_keys_loads(tmp_path: Path) -> None:
    checkpoint = _official_checkpoint("vits16")
    lightning = {
        "epoch": 7,
        "global_step": 700,
        "state_dict": {**{f"model.{k}": v for k, v in checkpoint.items()}, "criterion.weight": torch.ones(3)},
        "hyper_parameters": {"lr": 0.001, "arch": "vits16"},
    }
    torch.save(lightning, tmp_path / "last.ckpt")
    extractor = ViTExtractor(tmp_path / "last.ckpt", arch="vits16")
    assert torch.equal(extractor.model.pos_embed, checkpoint["pos_embed"])


def test_a_safetensors_file_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    checkpoint = _official_checkpoint("vits16", seed=3)
    save_file(checkpoint, str(tmp_path / "vits16.safetensors"))
    extractor = ViTExtractor(str(tmp_path / "vits16.safetensors"), arch="vits16")
    assert torch.equal(extractor.model.blocks[11].mlp.fc2.weight, checkpoint["blocks.11.mlp.fc2.weight"])


def test_a_checkpoint_of_another_arch_is_refused_with_the_differences(tmp_path: Path) -> None:
    torch.save(_official_checkpoint("vits16"), tmp_path / "vits16.pth")
    with pytest.raises(WeightsError) as info:
        ViTExtractor(str(tmp_path / "vits16.pth"), arch="vits14")
    message = str(info.value)
    assert "vits16.pth" in message and "25 missing key(s), e.g. blocks.0.ls1.gamma" in message
    assert "patch_embed.proj.weight: checkpoint (384, 3, 16, 16) vs model (384, 3, 14, 14)" in message


def test_a_checkpoint_fine_tuned_at_another_resolution_keeps_its_position_grid(tmp_path: Path) -> None:
    checkpoint = _official_checkpoint("vits16")
    checkpoint["pos_embed"] = torch.randn(1, 7 * 7 + 1, 384)  # fine-tuned at 112 px
    torch.save(checkpoint, tmp_path / "small.pth")
    extractor = ViTExtractor(str(tmp_path / "small.pth"), arch="vits16").eval()
    assert extractor.model.pos_embed.shape == (1, 50, 384)
    with torch.no_grad():
        assert extractor(torch.rand(1, 3, 112, 112)).shape == (1, 384)
        assert extractor(torch.rand(1, 3, 224, 160)).shape == (1, 384)
