"""The preprocessing of each pretrained entry equals OML 4.0's ``get_transforms_for_pretrained`` (run in the peers
venv on the same random image): exactly for the torchvision presets, within 2 grey levels for the albumentations
ones (OpenCV's fixed-point bilinear interpolation)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

from oml_core import Host
from oml_core.weights import get_transforms_for_pretrained

PEERS_PYTHON = Path("/work/peers-venv/bin/python")
NAMES = ["vits16_dino", "resnet50_moco_v2", "vits14_dinov2", "vits16_inshop", "vitb32_unicom", "vitl14_336px_unicom",
         "vits16_cars", "openai_vitb32_224", "vits16_224_mlp_384_inshop"]
REFERENCE = textwrap.dedent(
    """
    import sys, torch, numpy as np
    sys.path.insert(0, "/work/shared/peers"); import tv_shim; tv_shim.ensure_torchvision()
    from PIL import Image
    from oml.registry.transforms import get_transforms_for_pretrained
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 410, 3), dtype=np.uint8))
    out = {"img": torch.from_numpy(np.asarray(img).copy())}
    for name in sys.argv[2].split(","):
        t, _ = get_transforms_for_pretrained(name)
        out[name] = t(image=np.asarray(img))["image"] if "albu" in type(t).__module__ else t(img)
    torch.save(out, sys.argv[1])
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not PEERS_PYTHON.exists(), reason="OML 4.0 (the peers venv) is not installed here")
def test_preprocessing_equals_oml4(tmp_path: Path) -> None:
    script, out = tmp_path / "reference.py", tmp_path / "reference.pt"
    script.write_text(REFERENCE)
    result = subprocess.run([str(PEERS_PYTHON), str(script), str(out), ",".join(NAMES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    ref = torch.load(out, weights_only=True)
    image = Image.fromarray(ref["img"].numpy())
    host = Host(env={})
    for name in NAMES:
        transforms, _ = get_transforms_for_pretrained(name, host=host)
        diff = (transforms(image) - ref[name]).abs().max().item()
        albumentations = host.weights.get(name).transforms["type"].startswith("norm_resize_albu")
        assert diff <= (0.03 if albumentations else 1e-6), (name, diff)
