"""Robustness of the engine, plugins and the training pipeline (issue 18): every bad input or fault gets an exit
status, one paragraph naming the culprit, no traceback (unless --debug / OML_DEBUG=1), and loses nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from oml_core.config import dump_yaml
from oml_core.data import download_mock_dataset
from oml_core.engine import load_checkpoint_file

CONFIG = {
    "pipeline": "train",
    "name": "robust",
    "epochs": 2,
    "device": "cpu",
    "data": {"dataframe": "df.csv", "im_size": 32},
    "extractor": {"type": "resnet", "arch": "resnet18", "weights": None},
    "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
    "sampler": {"type": "balance", "n_labels": 3, "n_instances": 2},
    "optimizer": {"type": "adam", "lr": 1e-3},
    "validation": {"before_training": False, "every_n_epochs": 1, "batch_size": 32, "cmc_top_k": [1]},
    "checkpoint": {"every_n_epochs": 1},
    "progress_bar": False,
}


@pytest.fixture(scope="module")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mock")
    download_mock_dataset(root, n_labels=9, n_instances=4, im_size=32)
    return root


def write_config(tmp_path: Path, mock_root: Path, *, dataframe: Path | None = None, **changes) -> Path:
    config = {**CONFIG, **changes}
    data = {**CONFIG["data"], "dataframe": str(dataframe or mock_root / "df.csv"), "dataset_root": str(mock_root)}
    config["data"] = {**data, **changes.get("data", {})}
    config.setdefault("run_dir", str(tmp_path / "runs"))
    path = tmp_path / "train.yaml"
    dump_yaml(config, path)
    return path


def oml(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, pythonpath: Path | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OML_")}
    full_env.update(env or {})
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "oml_core.cli", *args], capture_output=True, text=True, env=full_env, timeout=600, cwd=cwd
    )


def assert_refused(result, *culprits: str, status: int = 2) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    assert "Traceback" not in output, output
    for culprit in culprits:
        assert culprit in output, f"{culprit!r} not in: {output}"
    return output


def no_run_directory(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


# ------------------------------------------------------------------------------------------------ plugins
RAISING_HOOK = """
from oml_core import hookimpl

@hookimpl
def oml_train_batch_end(engine):
    if engine.state.epoch == 1 and engine.state.batch_in_epoch == 2:
        raise RuntimeError("the plugin's own bug")
"""


@pytest.mark.slow
def test_a_hook_raising_at_run_time_stops_naming_plugin_and_hook_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, mock_root: Path
) -> None:
    df = pd.read_csv(mock_root / "df.csv")
    df.loc[df.index[-3:], "split"] = "test"  # also: rows of another split are counted in a warning, not dropped silently
    frame = tmp_path / "df.csv"
    df.to_csv(frame, index=False)
    (tmp_path / "raising.py").write_text(RAISING_HOOK)
    config = write_config(tmp_path, mock_root, dataframe=frame, plugins={"local": ["raising.py"]})
    result = oml("train", str(config))
    output = assert_refused(result, "plugin 'raising.py'", "oml_train_batch_end", "RuntimeError: the plugin's own bug",
                            "last good checkpoint is kept")  # fmt: skip
    assert "3 row(s) have split 'test'" in output and "oml train does not use them" in output
    run_dir = next((tmp_path / "runs").iterdir())
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.pt")
    assert checkpoint["state"]["epoch"] == 1 and str(run_dir / "checkpoints" / "last.pt") in output
    assert not list((run_dir / "checkpoints").glob("*.tmp"))

    debug = oml("train", str(config), "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "the plugin's own bug" in debug.stderr


@pytest.mark.parametrize(
    ("source", "culprits"),
    [
        ("import sys\nsys.exit(3)\n", ["local plugin 'bad.py'", "sys.exit(3)", "plugins.local"]),
        ("raise ImportError('no libfoo')\n", ["local plugin 'bad.py'", "ImportError: no libfoo"]),
        ("from oml_core import hookimpl\n@hookimpl\ndef oml_epoch_ends(engine):\n    pass\n",
         ["local plugin 'bad.py'", "'oml_epoch_ends'", "did you mean 'oml_epoch_end'", "unknown hook"]),
        ("def oml_epoch_end(state):\n    pass\n", ["local plugin 'bad.py'", "oml_epoch_end", "state"]),
    ],
    ids=["sys-exit-at-import", "raising-at-import", "misspelled-hook", "wrong-hook-argument"],
)  # fmt: skip
def test_a_broken_local_plugin_refuses_the_run_before_anything_is_written(
    tmp_path: Path, mock_root: Path, source: str, culprits: list[str]
) -> None:
    (tmp_path / "bad.py").write_text(source)
    result = oml("train", str(write_config(tmp_path, mock_root, plugins={"local": ["bad.py"]})))
    output = assert_refused(result, *culprits)
    assert "oml_local_" not in output  # never an internal, hashed module name
    assert no_run_directory(tmp_path)


def fake_site(tmp_path: Path, dist: str, module: str, source: str) -> Path:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[oml]\n{module} = {module}\n")
    return site


def test_an_installed_plugin_calling_sys_exit_at_import_is_isolated_and_named_by_its_distribution(
    tmp_path: Path, mock_root: Path
) -> None:
    site = fake_site(tmp_path, "exit-plug", "exitplug", "import sys\nsys.exit(3)\n")
    config = write_config(tmp_path, mock_root)
    result = oml("config", "check", str(config), pythonpath=site)
    output = assert_refused(result, "exit-plug 0.3", "sys.exit(3)", "OK", status=0)
    assert "OML_DISABLE_PLUGINS=exitplug" in output
    listing = oml("plugins", "--json", pythonpath=site)
    broken = next(p for p in json.loads(listing.stdout) if p["name"] == "exitplug")
    assert broken["status"] == "broken" and broken["distribution"] == "exit-plug"


def test_an_installed_plugin_with_a_wrong_hook_argument_refuses_commands_naming_its_distribution(
    tmp_path: Path, mock_root: Path
) -> None:
    site = fake_site(tmp_path, "wrong-arg-plug", "wrongargplug",
                     "from oml_core import hookimpl\n@hookimpl\ndef oml_epoch_end(state):\n    pass\n")  # fmt: skip
    result = oml("config", "check", str(write_config(tmp_path, mock_root)), pythonpath=site)
    assert_refused(result, "installed plugin wrong-arg-plug 0.3", "oml_epoch_end", "state", "OML_DISABLE_PLUGINS=wrong-arg-plug")


# ------------------------------------------------------------------------------------------------ config values
@pytest.mark.parametrize(
    ("changes", "culprits"),
    [
        ({"epochs": -1}, ["$.epochs", "epochs must be >= 1, got -1"]),
        ({"optimizer": {"type": "adam", "lr": float("nan")}}, ["$.optimizer.lr", "not a number"]),
        ({"device": "tpu9"}, ["$.device", "'tpu9'", "cuda:N"]),
        ({"name": "../.."}, ["$.name", "'../..'", "inside run_dir"]),
        ({"accumulate_grad_batches": 0}, ["$.accumulate_grad_batches", ">= 1"]),
    ],
    ids=["negative-epochs", "nan-lr", "unknown-device", "name-leaving-run-dir", "zero-accumulation"],
)
def test_bad_engine_values_are_refused_before_a_run_directory_exists(
    tmp_path: Path, mock_root: Path, changes: dict, culprits: list[str]
) -> None:
    config = write_config(tmp_path, mock_root, **changes)
    assert_refused(oml("config", "check", str(config)), *culprits)
    assert_refused(oml("train", str(config)), *culprits)
    assert no_run_directory(tmp_path)
    assert not list(tmp_path.parent.glob("*-train-*"))  # '../..' created nothing outside either


def test_a_bare_optimizer_name_is_a_valid_config(tmp_path: Path, mock_root: Path) -> None:
    """``optimizer: adam`` gave "AttributeError ... 'keys'"."""
    result = oml("config", "check", str(write_config(tmp_path, mock_root, optimizer="adam")))
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr


def test_config_check_refuses_a_dataframe_that_does_not_exist(tmp_path: Path, mock_root: Path) -> None:
    config = write_config(tmp_path, mock_root, dataframe=tmp_path / "missing.csv")
    assert_refused(oml("config", "check", str(config)), "$.data.dataframe", "missing.csv", "does not exist")
    assert_refused(oml("train", str(config)), "$.data.dataframe", "missing.csv")
    assert no_run_directory(tmp_path)


# ------------------------------------------------------------------------------------------------ images and faults
def test_check_images_reports_every_unreadable_image_at_once_before_training(tmp_path: Path, mock_root: Path) -> None:
    df = pd.read_csv(mock_root / "df.csv")
    root = tmp_path / "data"
    root.mkdir()
    broken = {0: b"not a png", 5: b"\x89PNG\r\n\x1a\n truncated"}
    for position, path in enumerate(df["path"]):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if position == 30:
            continue  # missing
        target.write_bytes(broken.get(position, (mock_root / path).read_bytes()))
    config = write_config(tmp_path, mock_root, data={"dataset_root": str(root)})
    culprits = ["3 of 36 images cannot be read", df["path"][0], df["path"][5], df["path"][30], "does not exist"]
    assert_refused(oml("config", "check", str(config), "--data"), *culprits)
    assert_refused(oml("train", str(config), "--check-images"), *culprits)
    assert no_run_directory(tmp_path)


@pytest.mark.slow
def test_a_full_disk_while_writing_a_checkpoint_stops_clearly_and_leaves_no_torn_file(tmp_path: Path, mock_root: Path) -> None:
    """RLIMIT_FSIZE stands in for a full disk (no root needed): the checkpoint (~45 MB) cannot be written."""
    config = write_config(tmp_path, mock_root, epochs=1)
    limit = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20)); "
    result = subprocess.run(
        [sys.executable, "-c", limit + "import sys; from oml_core.cli import main; sys.exit(main(sys.argv[1:]))", "train",
         str(config)],
        capture_output=True, text=True, timeout=600, env={k: v for k, v in os.environ.items() if not k.startswith("OML_")},
    )  # fmt: skip
    output = assert_refused(result, "cannot write checkpoint", "last.pt", "a full disk?", "Free disk space")
    assert "plugin" not in output  # the engine's own checkpointing is not blamed as a plugin
    run_dir = next((tmp_path / "runs").iterdir())
    assert not list((run_dir / "checkpoints").glob("*")), output  # neither a torn last.pt nor a temp file
    assert (run_dir / "config.yaml").read_text().startswith("pipeline: train")
