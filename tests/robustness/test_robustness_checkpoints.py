"""Bad checkpoint and weights files given to ``oml validate --checkpoint``: refused safely, naming the file."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from .conftest import Workspace, assert_refused


class Payload:
    """Unpickling this would call print: a checkpoint must never run code."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return print, ("code ran",)


def _model_state(ws: Workspace) -> dict[str, torch.Tensor]:
    from oml_core import Host

    host = Host(strict=False)
    return host.registries["extractors"].create("simple_cnn").state_dict()  # type: ignore[no-any-return]


def _safetensors(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _write(name: str, make: Callable[[Workspace], bytes]) -> Callable[[Workspace], Path]:
    def build(ws: Workspace) -> Path:
        path = ws.root / name
        path.write_bytes(make(ws))
        return path

    return build


PAST_THE_END = json.dumps({"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _wrong_shape(ws: Workspace) -> bytes:
    state = _model_state(ws)
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(3, 3)
    return _torch_bytes(state)


def _missing_key(ws: Workspace) -> bytes:
    state = _model_state(ws)
    state.pop(next(iter(state)))
    return _torch_bytes(state)


def _unexpected_key(ws: Workspace) -> bytes:
    state = _model_state(ws)
    state["head.extra.weight"] = torch.zeros(2)
    return _torch_bytes(state)


def _truncated(ws: Workspace) -> bytes:
    full = _torch_bytes(_model_state(ws))
    return full[: len(full) // 2]


def _corrupt_zip(ws: Workspace) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", b"not a pickle at all")
    return buffer.getvalue()


CASES: dict[str, tuple[Callable[[Workspace], Path], tuple[str, ...]]] = {
    "missing file": (lambda ws: ws.root / "nope.pth", ("nope.pth",)),
    "a folder": (lambda ws: ws.data, ("data",)),
    "empty file": (_write("empty.pth", lambda ws: b""), ("empty.pth",)),
    "text file": (_write("notes.pth", lambda ws: b"these are not weights\n"), ("notes.pth",)),
    "YAML file": (_write("train.pth", lambda ws: b"epochs: 3\nlr: 0.1\n"), ("train.pth", "not a checkpoint")),
    "code in a pickle": (_write("evil.pth", lambda ws: pickle.dumps(Payload())), ("evil.pth",)),
    "code in a torch file": (_write("evil2.pth", lambda ws: _torch_bytes({"x": Payload()})), ("evil2.pth", "arbitrary code")),
    "truncated torch file": (_write("half.pth", _truncated), ("half.pth",)),
    "corrupt zip": (_write("zip.pth", _corrupt_zip), ("zip.pth",)),
    "safetensors, header not JSON": (_write("a.safetensors", lambda ws: _safetensors(b"{not json")), ("a.safetensors",)),
    "safetensors, header length 2^40": (
        _write("b.safetensors", lambda ws: struct.pack("<Q", 1 << 40) + b"{}"),
        ("b.safetensors", "header"),
    ),
    "safetensors, offsets past the end": (
        _write(
            "c.safetensors",
            lambda ws: _safetensors(PAST_THE_END, bytes(8)),
        ),
        ("c.safetensors",),
    ),
    "safetensors, empty": (_write("d.safetensors", lambda ws: b""), ("d.safetensors",)),
    "state dict with a wrong shape": (_write("shape.pth", _wrong_shape), ("shape.pth", "shape")),
    "state dict missing a key": (_write("missing.pth", _missing_key), ("missing.pth", "missing")),
    "state dict with an extra key": (_write("extra.pth", _unexpected_key), ("extra.pth", "head.extra.weight")),
    "not a state dict": (_write("list.pth", lambda ws: _torch_bytes([1, 2, 3])), ("list.pth",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_is_refused(workspace: Workspace, oml, case: str, capfd: pytest.CaptureFixture[str]) -> None:
    build, culprits = CASES[case]
    checkpoint = build(workspace)
    before = checkpoint.read_bytes() if checkpoint.is_file() else None
    outcome = oml("validate", workspace.write_config(workspace.config()), "--checkpoint", checkpoint)
    assert_refused(outcome, *culprits)
    assert "code ran" not in outcome.text + capfd.readouterr().out
    if before is not None:
        assert checkpoint.read_bytes() == before
