"""Every image checkpoint of OML 4.0's zoo is registered under its OML name, with OML's URL, checksum, constructor
arguments and preprocessing (the facts below are OML 4.0's ``pretrained_models`` and
``TRANSFORMS_FOR_PRETRAINED``), and each has a model card; ``oml zoo list|show|download`` work."""

from __future__ import annotations

import hashlib
import json
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from oml_core import Host, hookimpl
from oml_core.cli import main
from oml_core.weights import get_transforms_for_pretrained

# name: (md5 prefix published by OML 4.0 or None, extractor, arch, arguments OML passes, OML's transforms)
OML4 = {
    "vits16_dino": ("cf0f22", "vit", "vits16", {"normalise_features": False}, "norm_resize_torch"),
    "vits8_dino": ("230cd5", "vit", "vits8", {"normalise_features": False}, "norm_resize_torch"),
    "vitb16_dino": ("552daf", "vit", "vitb16", {"normalise_features": False}, "norm_resize_torch"),
    "vitb8_dino": ("556550", "vit", "vitb8", {"normalise_features": False}, "norm_resize_torch"),
    "vits14_dinov2": ("2e405c", "vit", "vits14", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vits14_reg_dinov2": ("2a50c5", "vit", "vits14_reg", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vitb14_dinov2": ("8635e7", "vit", "vitb14", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vitb14_reg_dinov2": ("13d13c", "vit", "vitb14_reg", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vitl14_dinov2": ("19a02c", "vit", "vitl14", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vitl14_reg_dinov2": ("8b6364", "vit", "vitl14_reg", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vits16_inshop": ("a76b85", "vit", "vits16", {"normalise_features": False}, "norm_resize_hypvit_torch"),
    "vits16_sop": ("21e743", "vit", "vits16", {"normalise_features": True}, "norm_resize_hypvit_torch"),
    "vits16_cub": ("e82633", "vit", "vits16", {"normalise_features": False}, "norm_resize_albu"),
    "vits16_cars": ("9f1e59", "vit", "vits16", {"normalise_features": False}, "norm_resize_albu"),
    "vits16_224_mlp_384_inshop": (
        "35244966", "extractor_with_mlp", "vits16", {"mlp_features": [384]}, "norm_resize_hypvit_torch"
    ),
    "resnet50_moco_v2": ("a04e12f8", "resnet", "resnet50", {"gem_p": 5.0, "remove_fc": True}, "norm_resize_hypvit_torch"),
    "resnet18_imagenet1k_v1": (None, "resnet", "resnet18", {"gem_p": None}, "norm_resize_hypvit_torch"),
    "resnet34_imagenet1k_v1": (None, "resnet", "resnet34", {"gem_p": None}, "norm_resize_hypvit_torch"),
    "resnet50_imagenet1k_v1": (None, "resnet", "resnet50", {"gem_p": None}, "norm_resize_hypvit_torch"),
    "resnet101_imagenet1k_v1": (None, "resnet", "resnet101", {"gem_p": None}, "norm_resize_hypvit_torch"),
    "resnet152_imagenet1k_v1": (None, "resnet", "resnet152", {"gem_p": None}, "norm_resize_hypvit_torch"),
    "openai_vitb16_224": ("44c3d804ecac03d9545ac1a3adbca3a6", "vit_clip", "vitb16_224", {}, "norm_resize_albu_clip"),
    "openai_vitb32_224": ("3ba34e387b24dfe590eeb1ae6a8a122b", "vit_clip", "vitb32_224", {}, "norm_resize_albu_clip"),
    "openai_vitl14_224": ("096db1af569b284eb76b3881534822d9", "vit_clip", "vitl14_224", {}, "norm_resize_albu_clip"),
    "sber_vitb16_224": ("7882e07674d78c674e33cb892a68bbfc", "vit_clip", "vitb16_224", {}, "norm_resize_albu_clip"),
    "sber_vitb32_224": ("e2c4dab46a3cfa608bdd762973e90d32", "vit_clip", "vitb32_224", {}, "norm_resize_albu_clip"),
    "sber_vitl14_224": ("9b4a1cd25d15bad4ffd2ba6e34b8a67c", "vit_clip", "vitl14_224", {}, "norm_resize_albu_clip"),
    "vitb32_unicom": (None, "vit_unicom", "vitb32_unicom", {"normalise_features": True}, "unicom_transforms"),
    "vitb16_unicom": (None, "vit_unicom", "vitb16_unicom", {"normalise_features": True}, "unicom_transforms"),
    "vitl14_unicom": (None, "vit_unicom", "vitl14_unicom", {"normalise_features": True}, "unicom_transforms"),
    "vitl14_336px_unicom": (None, "vit_unicom", "vitl14_336px_unicom", {"normalise_features": True}, "unicom_transforms"),
}
REPORTED_CMC1 = {"vits16_inshop": 0.921, "vits16_sop": 0.866, "vits16_cars": 0.907, "vits16_cub": 0.837}


@pytest.fixture(scope="module")
def host() -> Host:
    return Host(env={})


@pytest.mark.parametrize("name", sorted(OML4))
def test_every_oml4_entry_is_registered_as_oml_had_it(host: Host, name: str) -> None:
    md5, extractor, arch, arguments, transforms = OML4[name]
    entry = host.weights.get(name)
    assert (entry.extractor, entry.arch) == (extractor, arch)
    assert entry.verified and (entry.md5 == md5 if md5 else entry.sha256 is not None)
    for key, value in arguments.items():
        assert entry.init_args[key] == value, key
    assert entry.transforms["type"] == transforms
    card = entry.card()
    assert card["architecture"] and card["embedding_size"] and card["licence"] and card["source"] and card["preprocessing"]
    if name in REPORTED_CMC1:
        assert card["reported_metrics"]["cmc@1"] == REPORTED_CMC1[name]


def test_transforms_for_pretrained_have_oml_sizes(host: Host) -> None:
    image = Image.new("RGB", (300, 200), (10, 200, 30))
    for name, size in [("vits16_dino", 224), ("resnet50_moco_v2", 224), ("vits16_cars", 224), ("vitl14_336px_unicom", 336)]:
        transforms, reader = get_transforms_for_pretrained(name, host=host)
        assert tuple(transforms(image).shape) == (3, size, size), name
        assert callable(reader)


def test_a_factory_gets_the_hosts_registry_through_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global state: weights a local plugin registers are found by the extractors its host builds, and by no other."""
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    from oml_core.models import SimpleCNNExtractor

    inner = SimpleCNNExtractor(channels=(4,))
    model_state = {"extractor." + k: v for k, v in inner.state_dict().items()}
    model_state |= {"projection.0.weight": torch.ones(3, 4), "projection.0.bias": torch.zeros(3)}
    source = tmp_path / "mlp.pth"
    torch.save({"state_dict": {"model." + k: v for k, v in model_state.items()}}, source)

    plugin = types.SimpleNamespace()

    @hookimpl
    def oml_register_weights(zoo):  # type: ignore[no-untyped-def]
        zoo.add("my_mlp", url=source.as_uri(), md5=hashlib.md5(source.read_bytes()).hexdigest()[:8],  # noqa: S324
                arch="-", extractor="extractor_with_mlp",
                init_args={"extractor": {"type": "simple_cnn", "channels": [4]}, "mlp_features": [3]})

    plugin.oml_register_weights = oml_register_weights
    mine, other = Host(plugins=[plugin], env={}), Host(env={})
    from oml_core.models import ExtractorWithMLP

    model = ExtractorWithMLP.from_pretrained("my_mlp", host=mine)
    assert torch.equal(model.projection[0].weight, torch.ones(3, 4))
    with pytest.raises(Exception, match="my_mlp"):
        ExtractorWithMLP.from_pretrained("my_mlp", host=other)


def test_oml_zoo_list_show_and_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["zoo", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in OML4)
    assert listing.startswith(f"cache {tmp_path / 'cache' / 'weights'}, offline False, mirror -")
    assert main(["zoo", "list", "--json", "--extractor", "vit_clip"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in cards} == {n for n, v in OML4.items() if v[1] == "vit_clip"}
    assert main(["zoo", "show", "vits16_sop", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["reported_metrics"] == {"dataset": "Stanford Online Products", "cmc@1": 0.866}
    assert card["cache"]["cached"] is False and card["cache"]["path"].endswith("weights/vits16_sop.ckpt")
    assert main(["zoo", "show", "vits16_sopp"]) == 2
    assert "did you mean 'vits16_sop'" in capsys.readouterr().err.lower()
    monkeypatch.setenv("OML_OFFLINE", "1")
    assert main(["zoo", "download", "vits16_dino"]) == 2
    error = capsys.readouterr().err
    assert "OML_OFFLINE=1" in error and "vits16_dino.ckpt" in error


def test_oml_zoo_download_refuses_wrong_content_from_a_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "vits16_dino.ckpt").write_bytes(b"not the real file")
    monkeypatch.setenv("OML_WEIGHTS_BASE_URL", mirror.as_uri())
    assert main(["zoo", "download", "vits16_dino", "--no-progress"]) == 2  # wrong content: refused, deleted
    assert "md5" in capsys.readouterr().err and not (tmp_path / "cache" / "weights" / "vits16_dino.ckpt").exists()
