"""The robustness corpus: bad inputs given to the ``oml`` command as a user would, each answered by one paragraph.

Every case runs the CLI in-process and asserts its exit status, that the message names the culprit (file, row,
field, plugin or store), that no traceback is printed, and, where data was already written, that it is intact.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pandas as pd
import pytest
import yaml

from oml_core.cli import main
from oml_core.data.mock import generate_mock_dataset

N_LABELS, N_INSTANCES, IM_SIZE = 8, 4, 32


@attrs.frozen
class Outcome:
    status: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_oml(argv: Sequence[str]) -> Outcome:
    """``oml ARGV`` in this process; a traceback anywhere in its output fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            status = exc.code if isinstance(exc.code, int) else 2
    outcome = Outcome(int(status), out.getvalue(), err.getvalue())
    assert "Traceback" not in outcome.text, outcome.text
    return outcome


def assert_refused(outcome: Outcome, *culprits: str, status: int = 2) -> None:
    """Exit ``status`` and a message that names every culprit (case-insensitive), in one paragraph-style report."""
    assert outcome.status == status, f"exit {outcome.status}, expected {status}:\n{outcome.text}"
    lowered = outcome.err.lower()
    for culprit in culprits:
        assert culprit.lower() in lowered, f"{culprit!r} is not named in:\n{outcome.err}"
    assert "internal error" not in lowered, outcome.err


@pytest.fixture(scope="session")
def mock_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("robustness-mock")
    return generate_mock_dataset(root / "mock", n_labels=N_LABELS, n_instances=N_INSTANCES, im_size=IM_SIZE)


@attrs.define
class Workspace:
    """A private copy of the mock dataset and a train config that uses it (paths absolute)."""

    root: Path
    data: Path
    runs: Path

    @property
    def df_path(self) -> Path:
        return self.data / "df.csv"

    def df(self) -> pd.DataFrame:
        return pd.read_csv(self.df_path, dtype={"path": str})

    def write_df(self, df: pd.DataFrame, name: str = "df.csv") -> Path:
        df.to_csv(self.data / name, index=False)
        return self.data / name

    def config(self, **changes: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "pipeline": "train",
            "name": "robust",
            "seed": 0,
            "epochs": 1,
            "device": "cpu",
            "run_dir": str(self.runs),
            "data": {"dataframe": str(self.df_path), "dataset_root": str(self.data), "im_size": IM_SIZE, "num_workers": 0},
            "extractor": {"type": "simple_cnn"},
            "criterion": {"type": "triplet_with_miner", "margin": 0.2, "miner": {"type": "hard_triplets"}},
            "sampler": {"type": "balance", "n_labels": 2, "n_instances": 2},
            "optimizer": {"type": "adam", "lr": 1e-3},
            "validation": {"before_training": False, "every_n_epochs": 1, "cmc_top_k": [1]},
            "loggers": [{"type": "csv"}],
            "progress_bar": False,
        }
        for dotted, value in changes.items():
            node = cfg
            keys = dotted.split("__")
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
        return cfg

    def write_config(self, cfg: dict[str, Any] | str, name: str = "train.yaml") -> Path:
        path = self.root / name
        path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
        return path

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs.glob("*") if p.is_dir()) if self.runs.exists() else []


@pytest.fixture
def workspace(mock_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    data = tmp_path / "data"
    shutil.copytree(mock_root, data)
    monkeypatch.chdir(tmp_path)
    return Workspace(root=tmp_path, data=data, runs=tmp_path / "runs")


@pytest.fixture
def oml() -> Callable[..., Outcome]:
    return lambda *argv: run_oml(argv)
