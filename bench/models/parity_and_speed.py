"""Numerical parity and CPU speed of oml-vit / oml-resnet / oml-clip against the reference implementations.

References (never dependencies): OML 4.0's copies of the official DINO / DINOv2 / CLIP / Unicom code and torchvision's
ResNet, run in
the peers venv (``.venv-peers``) through a subprocess. Each reference model is built with random weights, its
state_dict and outputs saved; here the same state_dict is loaded *strictly* into ours and the outputs compared;
then both forward passes are timed on the same input in their own process (same thread count).

    .venv/bin/python bench/models/parity_and_speed.py [--repeats 5] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
if not PEERS_PYTHON.exists():  # the shared peers venv of this machine
    PEERS_PYTHON = Path("/work/peers-venv/bin/python")
CASES = [
    ("vit", "vits16", 224),
    ("vit", "vits14_reg", 224),
    ("vit", "vitb14", 224),
    ("resnet", "resnet50", 224),
    ("clip", "vitb32_224", 224),
    ("clip", "vitb16_224", 224),
    ("unicom", "vitb32_unicom", 224),
]

REFERENCE = textwrap.dedent(
    """
    import json, statistics, sys, time, torch
    sys.path.insert(0, "/work/shared/peers"); import tv_shim; tv_shim.ensure_torchvision()
    import torchvision
    from oml.models.vit_dino.extractor import ViTExtractor
    torch.manual_seed(0); torch.set_num_threads(int(sys.argv[4]))
    kind, arch, out = sys.argv[1], sys.argv[2], sys.argv[7]
    size, batch, repeats = int(sys.argv[3]), int(sys.argv[5]), int(sys.argv[6])
    if kind == "vit":
        model = ViTExtractor(None, arch, normalise_features=False).model.eval()
    elif kind == "clip":
        from oml.models.vit_clip.extractor import ViTCLIPExtractor
        model = ViTCLIPExtractor(None, arch, normalise_features=False).visual.eval()
    elif kind == "unicom":
        from oml.models.vit_unicom.extractor import ViTUnicomExtractor
        model = ViTUnicomExtractor(None, arch, normalise_features=False, use_gradient_ckpt=False).model.eval()
    else:
        model = getattr(torchvision.models, arch)().eval()
    x = torch.rand(batch, 3, size, size)
    # another grid (multiples of 14, as DINOv2 requires); CLIP and Unicom take one input size only
    x_odd = torch.rand(2, 3, 210, 266) if kind in ("vit", "resnet") else torch.rand(2, 3, size, size)
    times = []
    with torch.no_grad():
        y, y_odd = model(x), model(x_odd)
        for _ in range(repeats):
            start = time.perf_counter(); model(x); times.append(time.perf_counter() - start)
    torch.save({"sd": model.state_dict(), "x": x, "y": y, "x_odd": x_odd, "y_odd": y_odd}, out)
    print(json.dumps({"seconds": statistics.median(times)}))
    """
)


def ours(kind: str, arch: str) -> torch.nn.Module:
    if kind == "vit":
        from oml_vit import build_vit

        return build_vit(arch)
    if kind == "clip":
        from oml_clip import build_clip_visual

        return build_clip_visual(arch)
    if kind == "unicom":
        from oml_clip import build_unicom_visual

        return build_unicom_visual(arch)
    from oml_resnet import build_resnet

    return build_resnet(arch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not PEERS_PYTHON.exists():
        sys.exit(f"the peers venv is missing ({PEERS_PYTHON}); install it with bash ../shared/peers/install.sh .venv-peers")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, median of {args.repeats} forward passes")
    print(f"{'model':<12} {'same keys':>9} {'max |diff|':>11} {'odd size':>10} {'ref s':>8} {'ours s':>8} {'ref/ours':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "reference.py"
        script.write_text(REFERENCE)
        for kind, arch, size in CASES:
            out = Path(tmp) / f"{arch}.pt"
            options = [str(size), str(args.threads), str(args.batch), str(args.repeats), str(out)]
            cmd = [str(PEERS_PYTHON), str(script), kind, arch, *options]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode:
                sys.exit(f"the reference run failed for {arch}:\n{result.stderr[-2000:]}")
            ref_seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
            ref = torch.load(out, weights_only=True)
            model = ours(kind, arch).eval()
            same_keys = set(model.state_dict()) == set(ref["sd"])
            model.load_state_dict(ref["sd"], strict=True)
            times = []
            with torch.no_grad():
                diff = (model(ref["x"]) - ref["y"]).abs().max().item()
                diff_odd = (model(ref["x_odd"]) - ref["y_odd"]).abs().max().item()
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    model(ref["x"])
                    times.append(time.perf_counter() - start)
            mine = statistics.median(times)
            ratio = ref_seconds / mine
            print(f"{arch:<12} {same_keys!s:>9} {diff:>11.2e} {diff_odd:>10.2e} {ref_seconds:>8.3f} {mine:>8.3f} {ratio:>8.2f}")


if __name__ == "__main__":
    main()
