"""Faults around a run: a full disk while training keeps every file already written whole, with a clear error."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .conftest import Workspace, assert_refused


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs (the tests run as root, in CI too), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], check=True, timeout=60)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=60)


def _fill(disk: Path) -> None:
    descriptor = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for block in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(descriptor, bytes(block))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(descriptor)


def _parses(path: Path) -> bool:
    import json

    import yaml

    text = path.read_text()
    (json.loads if path.suffix == ".json" else yaml.safe_load)(text)
    return bool(text.strip())


def test_full_disk_while_training_keeps_the_checkpoints(workspace: Workspace, oml, small_disk: Path) -> None:
    workspace.runs = small_disk / "runs"
    config = workspace.write_config(workspace.config(run_dir=str(workspace.runs), epochs=1))
    assert oml("train", config).status == 0
    (run,) = workspace.run_dirs()
    written = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.suffix in (".pt", ".json", ".yaml")}
    assert any(p.name == "last.pt" for p in written)

    _fill(small_disk)
    resumed = oml("train", workspace.write_config(workspace.config(run_dir=str(workspace.runs), epochs=3)), "--resume", run)
    assert_refused(resumed, "no space left")
    for path, content in written.items():
        if path.suffix == ".pt":
            assert path.read_bytes() == content, f"{path} was changed by a failed write"
            torch.load(path, weights_only=False)  # whole, not torn
        else:  # may have been rewritten, atomically: the old or the new text, never a torn one
            assert path.read_bytes() == content or _parses(path), f"{path} is torn"
    assert not [p for p in run.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".partial")], "temporary files left"
