from __future__ import annotations

import json

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def served_run(tmp_path_factory) -> dict:
    """A tiny trained and calibrated run, and the rows of its mock validation split."""
    from oml_core.builtin.calibrate import calibrate_run
    from oml_core.testing.runs import make_tiny_run

    run_dir, mock_root = make_tiny_run(tmp_path_factory.mktemp("serve"))
    calibrate_run(run_dir)
    df = pd.read_csv(mock_root / "df.csv")
    val = df[df["split"] == "validation"].reset_index(drop=True)
    return {
        "run_dir": run_dir,
        "root": mock_root,
        "val": val,
        "calibration": json.loads((run_dir / "calibration.json").read_text()),
    }
