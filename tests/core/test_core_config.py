"""Typed configs: strict scalars, unknown keys, registry-aware component selection, one error for all problems."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from oml_core import ConfigError, Host, hookimpl
from oml_core.config import apply_overrides, dump_yaml, load_yaml
from oml_core.registry import MinerChoice


@attrs.frozen(kw_only=True)
class HardConfig:
    margin: float = 0.2
    n_hardest: int = 1
    use_memory: bool = False


@attrs.frozen(kw_only=True)
class LossConfig:
    margin: float | None = 0.1
    miner: MinerChoice = MinerChoice("hard")
    reduction: str = "mean"


class Plugin:
    @hookimpl
    def oml_register_miners(self, registry):
        registry.add("hard", config=HardConfig, factory=lambda **kw: ("hard", kw), summary="hardest pairs")
        registry.add("all", factory=lambda: ("all", {}), summary="all triplets")

    @hookimpl
    def oml_register_losses(self, registry):
        registry.add("triplet", config=LossConfig, factory=lambda **kw: ("triplet", kw), summary="triplet loss")


@pytest.fixture
def host() -> Host:
    return Host(entry_points=False, plugins=[Plugin()], env={})


@attrs.frozen(kw_only=True)
class Run:
    epochs: int
    lr: float
    name: str
    flag: bool = False
    miners: tuple[MinerChoice, ...] = ()
    path: Path = Path("runs")


def test_every_bad_field_is_reported_with_its_path_in_one_error(host: Host) -> None:
    data = {
        "epochs": 3.7,
        "lr": "fast",
        "flag": "false",
        "miners": [{"type": "hard", "margin": "big", "n_hardest": 2.5}, {"type": "hardd"}, {"type": "all", "extra": 1}],
        "nmae": "x",
    }
    with pytest.raises(ConfigError) as excinfo:
        host.registries.structure(data, Run, source="run.yaml")
    problems = excinfo.value.problems
    expected_starts = [
        "$.epochs: expected an integer, got 3.7",
        "$.lr: expected a number, got 'fast'",
        "$.flag: expected true or false, got 'false'",
        "$.miners[0].margin: expected a number, got 'big'",
        "$.miners[0].n_hardest: expected an integer, got 2.5",
        "$.miners[1]: unknown miners component 'hardd'; available: all, hard. Did you mean 'hard'?",
        "$.miners[2]: unknown key 'extra'",
        "$.name: required field missing",
        "$: unknown key 'nmae' (did you mean 'name'?)",
    ]
    for start in expected_starts:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected_starts)
    assert str(excinfo.value).startswith(f"run.yaml has {len(problems)} problems:")
    assert "ExceptionGroup" not in str(excinfo.value)


def test_valid_config_structures_and_round_trips(host: Host) -> None:
    data = {"epochs": 2, "lr": 1, "name": "x", "miners": ["all", {"type": "hard", "margin": 0.5}], "path": "out/runs"}
    cfg = host.registries.structure(data, Run)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.miners[0] == MinerChoice("all") and cfg.miners[1].config == HardConfig(margin=0.5)
    assert cfg.path == Path("out/runs")
    again = host.registries.structure(host.registries.converter.unstructure(cfg), Run)
    assert again == cfg


def test_nested_components_are_built_before_the_factory(host: Host) -> None:
    loss = host.registries.losses.create("triplet", {"miner": {"type": "hard", "n_hardest": 3}})
    assert loss == (
        "triplet",
        {"margin": 0.1, "miner": ("hard", {"margin": 0.2, "n_hardest": 3, "use_memory": False}), "reduction": "mean"},
    )
    default = host.registries.losses.create("triplet")
    assert default[1]["miner"] == ("hard", {"margin": 0.2, "n_hardest": 1, "use_memory": False})


def test_yaml_round_trip_and_scientific_floats(tmp_path: Path, host: Host) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 2\nlr: 1e-3\nname: demo\nminers:\n  - type: hard\n    margin: 0.3\n")
    cfg = host.registries.structure(load_yaml(path), Run)
    assert cfg.lr == pytest.approx(1e-3)
    dump_yaml(host.registries.converter.unstructure(cfg), tmp_path / "out.yaml")
    assert host.registries.structure(load_yaml(tmp_path / "out.yaml"), Run) == cfg


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 2\nlr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml has 1 problem:\n  \$: invalid YAML at line 3"):
        load_yaml(path)


def test_overrides_are_parsed_as_yaml_values() -> None:
    data = apply_overrides({"optimizer": {"lr": 0.1}, "epochs": 1}, ["optimizer.lr=1e-4", "epochs=5", "data.root=/x"])
    assert data == {"optimizer": {"lr": 1e-4}, "epochs": 5, "data": {"root": "/x"}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["epochs"])


def test_non_mapping_top_level_is_a_config_error(host: Host) -> None:
    with pytest.raises(ConfigError, match=r"\$: expected a mapping of Run fields, got \[1, 2\]"):
        host.registries.structure([1, 2], Run)


def test_every_registered_component_config_round_trips(oml_host: Host) -> None:
    """structure(unstructure(cfg)) == cfg for every component of every installed plugin (and the built-ins)."""
    converter = oml_host.registries.converter
    checked = 0
    for spec in oml_host.registries.all_specs():
        cfg = oml_host.registries.structure(dict(spec.example), spec.config)
        assert oml_host.registries.structure(converter.unstructure(cfg), spec.config) == cfg, spec.name
        checked += 1
    assert checked == len(oml_host.registries.all_specs())
