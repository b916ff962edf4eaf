"""Bad config files and overrides: refused by `oml config check` and `oml train` alike, naming the file and field."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Workspace, assert_refused

BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)

# raw text appended to / replacing a valid config
TEXT_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "YAML syntax error": ("epochs: [1, 2\n", ("invalid yaml", "line")),
    "tab indentation": ("data:\n\tim_size: 32\n", ("invalid yaml",)),
    "python object tag": ("seed: !!python/object/apply:os.system ['true']\n", ("tag",)),
    "python name tag": ("seed: !!python/name:os.system\n", ("tag",)),
    "alias bomb": (BILLION_LAUGHS + "\n", ("aliases", "expand")),
    "alias bomb inside a list": (BILLION_LAUGHS + "\nloggers: *a8\n", ("aliases",)),
    "duplicate key": ("seed: 1\nseed: 2\n", ("duplicate key 'seed'", "line")),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
@pytest.mark.parametrize("command", ["config check", "train"])
def test_bad_yaml_text(workspace: Workspace, oml, case: str, command: str) -> None:
    extra, culprits = TEXT_CASES[case]
    cfg = workspace.config()
    cfg.pop("seed")
    if "loggers" in extra:
        cfg.pop("loggers")
    import yaml

    path = workspace.write_config(yaml.safe_dump(cfg, sort_keys=False) + extra)
    assert_refused(oml(*command.split(), path), "train.yaml", *culprits)
    assert workspace.run_dirs() == []


# field changes: dotted with "__"
FIELD_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "unknown top-level key": ({"epochz": 3}, ("epochz", "did you mean 'epochs'")),
    "unknown nested key": ({"data__im_sise": 32}, ("im_sise", "did you mean 'im_size'")),
    "float for an int": ({"epochs": 1.5}, ("$.epochs", "integer")),
    "text for an int": ({"epochs": "three"}, ("$.epochs", "integer")),
    "text for a number": ({"optimizer__lr": "fast"}, ("$.optimizer.lr", "number")),
    "text for a bool": ({"progress_bar": "no"}, ("$.progress_bar", "true or false")),
    "NaN learning rate": ({"optimizer__lr": float("nan")}, ("$.optimizer.lr", "nan")),
    "list for a mapping": ({"data": [1, 2]}, ("$.data", "mapping")),
    "scalar for a section": ({"validation": "yes"}, ("$.validation", "mapping")),
    "scalar for a list": ({"validation__cmc_top_k": 5}, ("$.validation.cmc_top_k", "list")),
    "unknown extractor": ({"extractor": {"type": "resnet9000"}}, ("resnet9000",)),
    "unknown loss": ({"criterion": {"type": "triplet_loss_typo"}}, ("triplet_loss_typo",)),
    "unknown miner": ({"criterion__miner": {"type": "hardest"}}, ("hardest",)),
    "unknown sampler": ({"sampler": {"type": "balanced"}}, ("balanced",)),
    "unknown logger": ({"loggers": [{"type": "wandbx"}]}, ("wandbx",)),
    "component without type": ({"extractor": {"arch": "resnet18"}}, ("$.extractor", "type")),
    "unknown component option": ({"extractor": {"type": "simple_cnn", "depth": 3}}, ("depth",)),
    "missing dataframe field": ({"data": {"im_size": 32}}, ("$.data.dataframe",)),
    "pipeline unknown": ({"pipeline": "trian"}, ("trian",)),
}


@pytest.mark.parametrize("case", list(FIELD_CASES))
@pytest.mark.parametrize("command", ["config check", "train"])
def test_bad_field(workspace: Workspace, oml, case: str, command: str) -> None:
    changes, culprits = FIELD_CASES[case]
    path = workspace.write_config(workspace.config(**changes))
    assert_refused(oml(*command.split(), path), "train.yaml", *culprits)
    assert workspace.run_dirs() == []


def test_every_problem_in_one_report(workspace: Workspace, oml) -> None:
    path = workspace.write_config(workspace.config(epochs=1.5, optimizer__lr="fast", epochz=1))
    outcome = oml("config", "check", path)
    assert_refused(outcome, "3 problems", "$.epochs", "$.optimizer.lr", "epochz")


FILE_CASES: dict[str, tuple[bytes | None, tuple[str, ...]]] = {
    "not UTF-8": ("seed: 1\nname: caf\u00e9\n".encode("latin-1"), ("utf-8", "line 2")),
    "empty file": (b"", ("train.yaml",)),
    "a list, not a mapping": (b"- 1\n- 2\n", ("mapping",)),
    "a scalar": (b"just text\n", ("mapping",)),
    "binary": (bytes(range(256)), ("train.yaml",)),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_unreadable_config_file(workspace: Workspace, oml, case: str) -> None:
    content, culprits = FILE_CASES[case]
    path = workspace.root / "train.yaml"
    path.write_bytes(content or b"")
    assert_refused(oml("train", path), "train.yaml", *culprits)


def test_config_that_is_a_folder(workspace: Workspace, oml) -> None:
    assert_refused(oml("config", "check", workspace.data), str(workspace.data), "folder")


def test_missing_config(workspace: Workspace, oml) -> None:
    assert_refused(oml("train", workspace.root / "nope.yaml"), "nope.yaml", "not found")


OVERRIDES: dict[str, tuple[str, tuple[str, ...]]] = {
    "no equals sign": ("epochs", ("--set", "KEY=VALUE")),
    "unbalanced quote": ("name='abc", ("--set", "quote")),
    "unknown key": ("epochz=2", ("epochz", "did you mean 'epochs'")),
    "wrong type": ("epochs=many", ("$.epochs", "integer")),
    "into a scalar": ("epochs.value=2", ("--set", "not a mapping")),
    "flow syntax error": ("validation.cmc_top_k=[1,", ("--set",)),
}


@pytest.mark.parametrize("case", list(OVERRIDES))
def test_bad_override(workspace: Workspace, oml, case: str) -> None:
    assignment, culprits = OVERRIDES[case]
    path = workspace.write_config(workspace.config())
    assert_refused(oml("train", path, "--set", assignment), *culprits)
    assert workspace.run_dirs() == []
