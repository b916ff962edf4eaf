"""Loading checkpoints safely: malicious pickles are refused, wrappers and prefixes are handled, safetensors files
load, mismatches are explained, and ``oml export`` writes safetensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from oml_core.cli import main
from oml_core.weights import (
    UnsafeCheckpointError,
    WeightsError,
    load_checkpoint,
    load_weights_into,
    save_safetensors,
    strip_prefix,
    unwrap_state_dict,
)


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    assert "evil.pth" in str(info.value) and "weights_only=True" in str(info.value)
    assert not marker.exists()
    # the payload is real: unpickling without weights_only runs it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


def test_lightning_and_plain_checkpoints_unwrap(tmp_path: Path) -> None:
    weights = {"layer.weight": torch.ones(2, 2), "layer.bias": torch.zeros(2)}
    torch.save({"epoch": 3, "state_dict": weights, "hyper_parameters": {"lr": 0.1}, "optimizer_states": []}, tmp_path / "a.ckpt")
    torch.save(weights, tmp_path / "b.pth")
    torch.save({"model": weights, "args": {"arch": "vit_small"}}, tmp_path / "c.pth")
    for name in ("a.ckpt", "b.pth", "c.pth"):
        loaded = load_checkpoint(tmp_path / name)
        assert loaded.keys() == weights.keys() and all(torch.equal(loaded[k], v) for k, v in weights.items())
    with pytest.raises(WeightsError, match="holds no state_dict"):
        unwrap_state_dict({"epoch": 3, "notes": "nothing"}, source="x.ckpt")
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth")


def test_safetensors_round_trip_and_detection_without_suffix(tmp_path: Path) -> None:
    layer = nn.Linear(3, 2)
    path = save_safetensors(layer.state_dict(), tmp_path / "layer.safetensors", {"arch": "linear"})
    loaded = load_checkpoint(path)
    assert all(torch.equal(loaded[k], v) for k, v in layer.state_dict().items())
    renamed = path.rename(tmp_path / "layer.bin")  # recognised by its header, not only its suffix
    assert load_checkpoint(renamed).keys() == layer.state_dict().keys()


MOCO_KEYS = ["module.encoder_q.w", "module.encoder_q.b", "module.encoder_k.w", "module.encoder_k.b", "module.queue"]


@pytest.mark.parametrize(
    ("keys", "prefix"),
    [
        (["w", "b"], ""),
        (["model.w", "model.b", "criterion.weight"], "model."),
        (["module.w", "module.b"], "module."),
        (MOCO_KEYS, "module.encoder_q."),
        (["model.model.w", "model.model.b"], "model.model."),
    ],
)
def test_strip_prefix_finds_the_wrapper(keys: list[str], prefix: str) -> None:
    state_dict = {k: torch.zeros(1) for k in keys}
    stripped, found = strip_prefix(state_dict, ["w", "b"])
    assert found == prefix and sorted(stripped) == ["b", "w"]


def test_strict_loading_explains_what_does_not_fit() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    state_dict = {"0.weight": torch.zeros(3, 5), "0.bias": torch.zeros(3), "2.weight": torch.zeros(2, 3)}
    state_dict["9.bias"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        load_weights_into(model, state_dict, source="bad.pth")
    message = str(info.value)
    assert message.startswith("bad.pth does not fit Sequential")
    assert "1 missing key(s), e.g. 2.bias" in message and "1 unexpected key(s), e.g. 9.bias" in message
    assert "0.weight: checkpoint (3, 5) vs model (3, 4)" in message


def test_oml_export_writes_safetensors_from_a_lightning_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = {"model.norm.weight": torch.rand(4), "model.norm.bias": torch.rand(4), "criterion.weight": torch.rand(2)}
    torch.save({"state_dict": weights, "epoch": 1}, tmp_path / "last.ckpt")
    out = tmp_path / "exported.safetensors"
    assert main(["export", str(tmp_path / "last.ckpt"), "--out", str(out), "--strip-prefix", "model."]) == 0
    assert "wrote 2 tensors" in capsys.readouterr().out
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        assert sorted(f.keys()) == ["norm.bias", "norm.weight"]
        assert torch.equal(f.get_tensor("norm.weight"), weights["model.norm.weight"])
        assert f.metadata()["source"] == "last.ckpt"


def test_oml_export_refuses_a_malicious_pickle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned.txt"
    torch.save({"extra": _Payload(marker)}, tmp_path / "evil.pth")
    assert main(["export", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "refused to load" in err and not marker.exists() and not (tmp_path / "x.safetensors").exists()
    assert main(["export", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "x.pth")]) == 2
    assert "cannot tell the export format" in capsys.readouterr().err
