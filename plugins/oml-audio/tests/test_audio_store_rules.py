"""``oml index --modality audio`` keeps the store rules of images: files outside the dataset root are refused
unless --allow-outside-root, an unreadable file stops the run naming its row unless --skip-unreadable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from oml_audio import get_mock_audios_dataset

from oml_core.cli import main

ARGS = ["--modality", "audio", "--extractor", "ecapa_tdnn", "--set", "modality.max_num_seconds=0.5", "--no-progress"]


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    get_mock_audios_dataset(root)
    df = pd.read_csv(root / "df.csv").head(6)
    df.to_csv(root / "df.csv", index=False)
    return root


def test_a_file_outside_the_root_is_refused_unless_allowed(clips: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    df = pd.read_csv(clips / "df.csv")
    shutil.copy(clips / df["path"][2], tmp_path / "outside.wav")
    df.loc[2, "path"] = "../outside.wav"
    df.to_csv(clips / "df.csv", index=False)
    store = tmp_path / "voices.db"
    assert main(["index", str(clips / "df.csv"), "--store", str(store), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "outside the dataset root" in err and "row 2 '../outside.wav'" in err and "--allow-outside-root" in err
    assert not store.exists()  # refused before the store was created
    assert main(["index", str(clips / "df.csv"), "--store", str(store), *ARGS, "--allow-outside-root"]) == 0
    assert "6 items, 0 already in" in capsys.readouterr().out


def test_an_unreadable_file_names_its_row_or_is_skipped(clips: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    df = pd.read_csv(clips / "df.csv")
    (clips / df["path"][4]).write_bytes(b"")  # a zero-length file
    store = tmp_path / "voices.db"
    assert main(["index", str(clips / "df.csv"), "--store", str(store), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "cannot read row 4" in err and "--skip-unreadable" in err and "Traceback" not in err
    assert main(["index", str(clips / "df.csv"), "--store", str(store), *ARGS, "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert "left out 1 unreadable row(s) (--skip-unreadable): 4" in captured.err
    assert "the store holds 5 items" in captured.out
