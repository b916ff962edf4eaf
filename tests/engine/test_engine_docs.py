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


def test_the_callback_example_is_configured_from_the_yaml_block_and_stops_a_slow_run(tmp_path: Path) -> None:
    import yaml

    from oml_core import Host
    from oml_core.pipelines.train import build_callbacks
    from oml_core.registry import CallbackChoice

    text = DOC.read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[2]
    assert len([line for line in code.splitlines() if line.strip()]) < 30  # under 30 lines (blank lines aside)
    timer_module = _module_from_block(2)
    config = yaml.safe_load(text.split("```python\n" + code + "```", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0])
    assert config["plugins"] == {"local": ["epoch_timer.py"]}
    host = Host(entry_points=False, plugins=[timer_module], env={})
    choices = host.registries.structure(config["callbacks"], tuple[CallbackChoice, ...])
    timer, early_stopping, checkpointing = build_callbacks(host, choices)
    assert (timer.budget_s, timer.stop, early_stopping.monitor, checkpointing.keep_last) == (600, True, "OVERALL/map/5", 3)
    timer.budget_s = 0.0  # every epoch is too slow now
    state = make_engine(tmp_path, plugins=[timer], epochs=3).fit()
    assert state.stop_reason.startswith("epoch 1 took") and state.epoch == 1
