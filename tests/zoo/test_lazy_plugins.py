"""Plugin packages export their names lazily (PEP 562): the host imports them for every command, torch is imported
only when a component is used."""

from __future__ import annotations

import subprocess
import sys


def test_plugin_packages_import_their_names_lazily() -> None:
    code = (
        "import sys, oml_vit.plugin, oml_resnet.plugin, oml_clip.plugin\n"
        "before = 'torch' in sys.modules\nfrom oml_vit import ViTExtractor\n"
        "print(before, 'torch' in sys.modules, ViTExtractor.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "oml_vit.extractor"]
