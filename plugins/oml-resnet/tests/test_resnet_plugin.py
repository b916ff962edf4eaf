"""The plugin installs, registers through its entry point and passes the contracts; its zoo is consistent."""

from __future__ import annotations

import importlib.metadata
import re

import pytest
from oml_resnet import ARCHS, ResnetExtractor
from oml_resnet.pretrained import WEIGHTS

from oml_core import Host
from oml_core.testing import contract_cases
from oml_core.zoo import is_sha256


@pytest.mark.parametrize("case", contract_cases("oml_resnet"), ids=str)
def test_contracts(case) -> None:  # type: ignore[no-untyped-def]
    case.run()


def test_registered_through_the_entry_point() -> None:
    points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="oml")}
    assert points.get("oml_resnet") == "oml_resnet.plugin"
    host = Host(env={})
    info = next(p for p in host.plugins if p.name == "oml_resnet")
    assert (info.source, info.status, info.distribution) == ("entrypoint", "loaded", "oml-resnet")
    assert info.components["extractors"] == ["resnet"]
    assert sorted(info.components["weights"]) == sorted(e.name for e in WEIGHTS)


def test_torchvision_entries_carry_the_hash_that_names_their_file() -> None:
    # torchvision names each file <arch>-<first 8 hex digits of its sha256>.pth
    checked = 0
    for entry in WEIGHTS:
        assert entry.arch in ARCHS and entry.verified
        match = re.search(r"/(resnet\d+)-([0-9a-f]{8})\.pth$", entry.url)
        if match:
            assert is_sha256(entry.sha256) and entry.sha256 is not None
            assert match.group(1) == entry.arch and entry.sha256.startswith(match.group(2)), entry.name
            checked += 1
    assert checked == 6


def test_from_pretrained_uses_the_arch_and_oml_pooling_of_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_init(self, weights, arch, gem_p=None, remove_fc=True, normalise_features=False, zoo=None):  # type: ignore[no-untyped-def]
        seen.update(weights=weights, arch=arch, gem_p=gem_p)

    monkeypatch.setattr(ResnetExtractor, "__init__", fake_init)
    ResnetExtractor.from_pretrained("resnet50_moco_v2")
    assert seen == {"weights": "resnet50_moco_v2", "arch": "resnet50", "gem_p": 5.0}
    ResnetExtractor.from_pretrained("resnet101_imagenet1k_v1")
    assert seen == {"weights": "resnet101_imagenet1k_v1", "arch": "resnet101", "gem_p": None}


def test_a_config_builds_the_extractor() -> None:
    host = Host(env={})
    extractor = host.registries.extractors.create("resnet", {"arch": "resnet34", "gem_p": 4.0, "normalise_features": True})
    assert isinstance(extractor, ResnetExtractor) and extractor.feat_dim == 512 and extractor.gem_p == 4.0


def test_width_and_stem_are_config_fields_checked_with_the_rest() -> None:
    host = Host(env={})
    extractor = host.registries.extractors.create("resnet", {"arch": "resnet18", "width": 32, "stem": "small"})
    assert isinstance(extractor, ResnetExtractor) and extractor.feat_dim == 256
    with pytest.raises(Exception, match=r"resnet.stem.*smal not in literal.*'imagenet', 'small', 'small_stride2'"):
        host.registries.extractors.create("resnet", {"arch": "resnet18", "stem": "smal"})
    with pytest.raises(Exception, match="'width' must be >= 1"):
        host.registries.extractors.create("resnet", {"arch": "resnet18", "width": 0})
