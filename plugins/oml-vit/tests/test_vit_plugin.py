"""The plugin installs, registers through its entry point, passes the contracts, and its weights are usable."""

from __future__ import annotations

import hashlib
import importlib.metadata
import types
from pathlib import Path

import pytest
import torch
from oml_vit import ARCHS, ViTExtractor, build_vit, get_transforms_for_pretrained
from oml_vit.plugin import WEIGHTS

from oml_core import Host, hookimpl
from oml_core.testing import contract_cases
from oml_core.weights import PLACEHOLDER_SHA256, WeightsError, is_sha256


@pytest.mark.parametrize("case", contract_cases("oml_vit"), ids=str)
def test_contracts(case) -> None:  # type: ignore[no-untyped-def]
    case.run()


def test_registered_through_the_entry_point() -> None:
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="oml")}
    assert points.get("oml_vit") == "oml_vit.plugin"
    host = Host(env={})
    info = next(p for p in host.plugins if p.name == "oml_vit")
    assert (info.source, info.status, info.distribution) == ("entrypoint", "loaded", "oml-vit")
    assert info.components["extractors"] == ["vit"]
    assert sorted(info.components["weights"]) == sorted(WEIGHTS)


def test_weights_entries_are_consistent() -> None:
    host = Host(env={})
    for name in WEIGHTS:
        entry = host.weights.get(name)
        assert entry.arch in ARCHS and entry.extractor == "vit"
        assert entry.url.startswith("https://dl.fbaipublicfiles.com/")
        assert is_sha256(entry.sha256) or not entry.verified
    assert host.weights.get("vits14_dinov2").verified


def _plugin_with_weights(**entry: object) -> object:
    plugin = types.SimpleNamespace()

    @hookimpl
    def oml_register_weights(zoo):  # type: ignore[no-untyped-def]
        zoo.add(**entry)

    plugin.oml_register_weights = oml_register_weights
    return plugin


def test_an_entry_without_a_verified_sha256_refuses_to_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path))
    source = tmp_path / "served.pth"
    torch.save(build_vit("vits16").state_dict(), source)
    plugin = _plugin_with_weights(
        name="unsure_dino", url=source.as_uri(), sha256=PLACEHOLDER_SHA256, arch="vits16", extractor="vit"
    )
    host = Host(plugins=[plugin], env={})
    with pytest.raises(WeightsError) as info:
        host.registries.extractors.create("vit", {"arch": "vits16", "weights": "unsure_dino"})
    assert "no verified sha256" in str(info.value) and "local path" in str(info.value)
    assert not (tmp_path / "weights").exists()  # nothing was downloaded
    unverified = [name for name, (_, _, sha, _) in WEIGHTS.items() if not is_sha256(sha)]
    assert all(sha == PLACEHOLDER_SHA256 for _, _, sha, _ in WEIGHTS.values() if not is_sha256(sha)), unverified


def test_weights_registered_by_a_local_plugin_download_from_a_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    generator = torch.Generator().manual_seed(5)
    checkpoint = {k: torch.randn(v.shape, generator=generator) for k, v in build_vit("vits16").state_dict().items()}
    source = tmp_path / "served" / "my_dino.pth"
    source.parent.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in checkpoint.items()}}, source)
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    plugin = _plugin_with_weights(name="my_dino", url=source.as_uri(), sha256=sha256, arch="vits16", extractor="vit")
    host = Host(plugins=[plugin], env={})
    extractor = host.registries.extractors.create("vit", {"arch": "vits16", "weights": "my_dino"})
    assert torch.equal(extractor.model.cls_token, checkpoint["cls_token"])
    cached = list((tmp_path / "cache" / "weights").rglob("my_dino.pth"))
    assert len(cached) == 1 and cached[0].read_bytes() == source.read_bytes()


def test_from_pretrained_and_transforms_for_pretrained_use_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    transforms, reader = get_transforms_for_pretrained("vits16_dino")
    assert transforms(Image.new("RGB", (50, 40))).shape == (3, 224, 224)
    assert callable(reader)
    seen = {}

    def fake_init(self, weights, arch, normalise_features=False, use_multi_scale=False):  # type: ignore[no-untyped-def]
        seen.update(weights=weights, arch=arch, normalise_features=normalise_features)

    monkeypatch.setattr(ViTExtractor, "__init__", fake_init)
    ViTExtractor.from_pretrained("vitl14_reg_dinov2")
    assert seen == {"weights": "vitl14_reg_dinov2", "arch": "vitl14_reg", "normalise_features": False}
