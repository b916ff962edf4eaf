"""Runs one of examples/oml4/{text,audio}_*.py in this process after the test's set-up, then saves what the test
checks. Used by test_examples_oml4_modal.py in a subprocess, so that the Hugging Face cache and the weights cache
set in the environment are the ones the libraries read when they are first imported.

Usage: python oml4_modal_runner.py EXAMPLE.py OUT.pt
Environment: OML_TEST_ECAPA_FILE / OML_TEST_ECAPA_SHA256 point the ``ecapa_tdnn_taoruijie`` zoo entry at a local
file (``file://`` URL with its real sha256), as the seeds' harness does for the image weights.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import matplotlib
import torch

matplotlib.use("Agg")


def main() -> None:
    example, out = sys.argv[1], sys.argv[2]
    served = os.environ.get("OML_TEST_ECAPA_FILE")
    if served:
        import attrs
        from oml_audio import pretrained

        sha256 = os.environ["OML_TEST_ECAPA_SHA256"]
        pretrained.WEIGHTS = tuple(
            attrs.evolve(e, urls=(Path(served).as_uri(),), sha256=sha256) if e.name == "ecapa_tdnn_taoruijie" else e
            for e in pretrained.WEIGHTS
        )
    # executed here rather than with runpy.run_path, which sets sys.argv[0] to the example: Lightning's DDP workers
    # re-run sys.argv, and a worker started as examples/oml4/<example> would import examples/oml4/lightning.py
    # (OML 4.0's Lightning example) instead of the lightning package
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": example}
    exec(compile(Path(example).read_text(encoding="utf-8"), example, "exec"), namespace)  # noqa: S102 - a repo example
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP worker that Lightning launched with the same command
        return
    keep: dict[str, object] = {}
    if "trainer" in namespace:
        keep["callback_metrics"] = {k: float(v) for k, v in namespace["trainer"].callback_metrics.items()}
        keep["world_size"] = namespace["trainer"].world_size
    for name in ("embeddings", "loss"):
        if isinstance(namespace.get(name), torch.Tensor):
            keep[name] = namespace[name].detach().cpu()
    model = namespace.get("model", namespace.get("extractor"))
    if isinstance(model, torch.nn.Module):
        keep["model_state"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if "rr" in namespace:
        keep["retrieved_ids"] = [ids.tolist() for ids in namespace["rr"].retrieved_ids]
    torch.save(keep, out)


if __name__ == "__main__":
    main()
