"""The complete plugin in docs/writing-a-plugin.md works as printed and stays under 40 lines of Python."""

from __future__ import annotations

import re
import types
from pathlib import Path

import torch

from oml_core import Host

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-plugin.md"


def load_guide_plugin() -> types.ModuleType:
    block = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)[0]
    code_lines = [line for line in block.splitlines() if line.strip()]
    assert len(code_lines) < 40, f"the example plugin must stay under 40 lines, it has {len(code_lines)}"
    module = types.ModuleType("my_oml_plugin_from_docs")
    exec(compile(block, str(GUIDE), "exec"), module.__dict__)  # noqa: S102 - our own documentation
    return module


def test_guide_plugin_registers_and_builds_its_components() -> None:
    plugin = load_guide_plugin()
    host = Host(entry_points=False, plugins=[plugin], env={})
    extractor = host.registries.extractors.create("tiny_cnn", {"feat_dim": 32})
    embeddings = extractor(torch.rand(4, 3, 32, 32))
    assert embeddings.shape == (4, 32) and extractor.feat_dim == 32
    loss = host.registries.losses.create("center")(embeddings, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert loss.item() > 0 and extractor.head.weight.grad is not None
