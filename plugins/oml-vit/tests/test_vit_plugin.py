"""The plugin installs, registers through its entry point, passes the contracts, and its weights are usable."""

from __future__ import annotations

import hashlib
import importlib.metadata
import types
from pathlib import Path

import pytest
import torch
from oml_vit import ARCHS, ViTExtractor, build_vit, get_transforms_for_pretrained
from oml_vit.pretrained import WEIGHTS

from oml_core import Host, hookimpl
from oml_core.testing import contract_cases
from oml_core.weights import PLACEHOLDER_SHA256, WeightsError


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
    assert sorted(info.components["weights"]) == sorted(e.name for e in WEIGHTS)


def test_weights_entries_are_consistent() -> None:
    host = Host(env={})
    for item in WEIGHTS:
        entry = host.weights.get(item.name)
        assert entry.arch in ARCHS and entry.extractor in {"vit", "extractor_with_mlp"}
        assert entry.verified and entry.md5  # every entry carries OML's md5 prefix; some a full sha256 too
        assert entry.embedding_size in {384, 768, 1024} and entry.licence and entry.source and entry.transforms


def _plugin_with_weights(**entry: object) -> object:
    plugin = types.SimpleNamespace()

    @hookimpl
    def oml_register_weights(zoo):  # type: ignore[no-untyped-def]
        zoo.add(**entry)

    plugin.oml_register_weights = oml_register_weights
    return plugin


def test_an_entry_without_a_checksum_breaks_its_plugin_not_the_host(tmp_path: Path) -> None:
    plugin = _plugin_with_weights(
        name="unsure_dino", url="https://e/x.pth", sha256=PLACEHOLDER_SHA256, arch="vits16", extractor="vit"
    )
    with pytest.warns(RuntimeWarning, match="md5="):
        host = Host(plugins=[plugin], env={}, strict=False)
    assert "unsure_dino" not in host.weights and "vits16_dino" in host.weights


def test_an_md5_entry_downloads_verifies_and_records_the_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What vits16_dino does on first use, with a served file: no entry refuses for want of a sha256."""
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "served.pth"
    torch.save(build_vit("vits16").state_dict(), source)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()[:6]  # noqa: S324
    plugin = _plugin_with_weights(name="md5_dino", url=source.as_uri(), md5=md5, arch="vits16", extractor="vit")
    host = Host(plugins=[plugin], env={})
    host.registries.extractors.create("vit", {"arch": "vits16", "weights": "md5_dino"})
    marker = tmp_path / "cache" / "weights" / "served.pth.sha256"
    assert marker.read_text().split()[0] == hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match="md5_dino"):
        ViTExtractor("md5_dino", arch="vits16")  # without the host's registry the name is unknown: no global state


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

    def fake_init(self, weights, arch, normalise_features=False, use_multi_scale=False, zoo=None):  # type: ignore[no-untyped-def]
        seen.update(weights=weights, arch=arch, normalise_features=normalise_features)

    monkeypatch.setattr(ViTExtractor, "__init__", fake_init)
    ViTExtractor.from_pretrained("vitl14_reg_dinov2")
    assert seen == {"weights": "vitl14_reg_dinov2", "arch": "vitl14_reg", "normalise_features": False}
    ViTExtractor.from_pretrained("vits16_sop")  # OML trained it with normalised features
    assert seen == {"weights": "vits16_sop", "arch": "vits16", "normalise_features": True}
