"""Bad command lines and environment settings: usage errors name the argument; --debug shows what is hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from oml_core.cli import main

from .conftest import Workspace, assert_refused


def _argv(ws: Workspace, *args: str) -> list[str]:
    return [a.replace("{cfg}", str(ws.root / "train.yaml")).replace("{root}", str(ws.root)) for a in args]


CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "unknown command": (("trian",), ("invalid choice", "trian")),
    "train without a config": (("train",), ("config",)),
    "unknown option": (("train", "{cfg}", "--epochs", "3"), ("unrecognized arguments", "--epochs")),
    "config without a subcommand": (("config",), ("subcommand",)),
    "unknown config subcommand": (("config", "chek", "{cfg}"), ("chek",)),
    "resume from a missing run": (("train", "{cfg}", "--resume", "{root}/runs/nope"), ("nope",)),
    "resume from a text file": (("train", "{cfg}", "--resume", "{root}/train.yaml"), ("train.yaml",)),
    "validate with a missing checkpoint": (("validate", "{cfg}", "--checkpoint", "{root}/nope.pt"), ("nope.pt",)),
    "predict into an unknown split": (("predict", "{cfg}", "--out", "{root}/e.pt", "--split", "test"), ("invalid choice",)),
    "predict without --out": (("predict", "{cfg}"), ("--out",)),
    "mock dataset with a negative count": (("mock-dataset", "{root}/m", "--labels", "-3"), ("labels",)),
    "mock dataset with a text count": (("mock-dataset", "{root}/m", "--instances", "many"), ("--instances", "many")),
    "mock dataset onto a file": (("mock-dataset", "{root}/train.yaml"), ("train.yaml",)),
    "plugins with an unknown option": (("plugins", "--jsn"), ("--jsn",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_command_line(workspace: Workspace, oml, case: str) -> None:
    argv, culprits = CASES[case]
    workspace.write_config(workspace.config())
    before = (workspace.root / "train.yaml").read_bytes()
    assert_refused(oml(*_argv(workspace, *argv)), *culprits)
    assert (workspace.root / "train.yaml").read_bytes() == before
    assert workspace.run_dirs() == []


def test_bad_pixel_limit_setting(workspace: Workspace, oml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OML_MAX_IMAGE_PIXELS", "lots")
    df = workspace.df()
    outcome = oml("train", "--check-images", workspace.write_config(workspace.config()))
    assert_refused(outcome, "OML_MAX_IMAGE_PIXELS", "'lots'")
    assert len(df) == len(workspace.df())


def test_pixel_limit_is_a_setting(workspace: Workspace, oml, monkeypatch: pytest.MonkeyPatch) -> None:
    from oml_core.data.images import ImageReadError, read_image

    image = next((workspace.data / "images").rglob("*.png"))
    read_image(image)  # 32 x 32 is fine by default
    monkeypatch.setenv("OML_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(ImageReadError, match="OML_MAX_IMAGE_PIXELS"):
        read_image(image)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys, how: str) -> None:
    argv = ["config", "check", str(workspace.root / "missing.yaml")]
    if how == "flag":
        argv.append("--debug")
    else:
        monkeypatch.setenv("OML_DEBUG", "1")
    assert main(argv) == 2  # the same status, with the traceback before the message
    err = capsys.readouterr().err
    assert "Traceback" in err and "ConfigError" in err and "missing.yaml" in err.split("Traceback", 1)[1]


def test_unexpected_errors_are_one_paragraph(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import oml_core.pipelines

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(oml_core.pipelines, "load_pipeline_config", broken)
    status = main(["config", "check", str(workspace.write_config(workspace.config()))])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "internal error in 'config check'" in err and "ZeroDivisionError: a bug" in err and "--debug" in err


def test_the_console_script_has_no_traceback(workspace: Workspace, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "oml_core.cli", "config", "check", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "nope.yaml" in done.stderr and "Traceback" not in done.stderr
