"""The custom-hook examples of docs/engine.md run as printed."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from oml_core.engine import load_checkpoint_file

sys.path.insert(0, str(Path(__file__).parent))
from tiny_components import make_engine  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "engine.md"


def _module_from_block(index: int) -> types.ModuleType:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    module = types.ModuleType(f"engine_doc_block_{index}")
    exec(compile(blocks[index], str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own documentation
    return module


def test_my_hooks_example_stops_the_run_and_adds_checkpoint_state(tmp_path: Path) -> None:
    my_hooks = _module_from_block(0)

    class PerfectMetrics:
        from oml_core import hookimpl

        @hookimpl(tryfirst=True)
        def oml_epoch_end(self, engine):
            engine.state.metrics = {"OVERALL/cmc/1": 1.0}

    state = make_engine(tmp_path, plugins=[my_hooks, PerfectMetrics()], epochs=5).fit()
    assert state.stop_reason == "good enough" and state.epoch == 1
    assert load_checkpoint_file(tmp_path / "checkpoints" / "last.pt")["my_hooks"] == {"note": "saved by my_hooks"}


def test_replacing_the_step_example_trains() -> None:
    step_module = _module_from_block(1)
    engine = make_engine(None, plugins=[step_module.TwoLossesStep()], epochs=1)
    before = [p.clone() for p in engine.model.parameters()]
    engine.fit()
    assert any(not bool((a == b).all()) for a, b in zip(before, engine.model.parameters()))
    assert engine.state.step == 4
