"""Checks that ``examples/oml4/*.py`` hold OML 4.0's documented snippets line for line, apart from import lines and
lines marked ``# set-up`` (needs a checkout of OML's repository, e.g. the ``fetch`` mirror; not run by the tests,
which cannot reach OML's docs).

    .venv/bin/python -m bench.compat.oml4_examples_verbatim /work/.mirror/OML-Team+open-metric-learning/repo

Prints one line per example and every snippet line that the example lacks; exits 1 if any is missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "oml4"
SOURCE = "docs/readme/examples_source"
#: example -> (file in OML's repository, the ``[comment]:NAME-start`` marker, or None for the first python block)
SNIPPETS = {
    "train_val.py": (f"{SOURCE}/extractor/train_val_all_modalities.md", "train-val-img"),
    "retrieval_usage.py": (f"{SOURCE}/extractor/retrieval_usage.md", "usage-retrieval"),
    "retrieval_streaming.py": (f"{SOURCE}/extractor/retrieval_usage_streaming.md", "usage-streaming-retrieval"),
    "postprocessing_algo.py": (f"{SOURCE}/postprocessing/algo.md", "algo-pp"),
    "postprocessing_predict.py": (f"{SOURCE}/postprocessing/predict.md", "postprocessor-pred"),
    "postprocessing_train_val.py": (f"{SOURCE}/postprocessing/train_val.md", "postprocessor"),
    "lightning.py": (f"{SOURCE}/extractor/train_val_pl.md", "lightning"),
    "two_val_loaders.py": (f"{SOURCE}/extractor/train_2loaders_val.md", "lightning-2loaders"),
    "categories.py": (f"{SOURCE}/extractor/handling_categories.md", "categories"),
    "sequences.py": (f"{SOURCE}/extractor/val_with_sequence.md", "val-with-sequence"),
    "pml.py": (f"{SOURCE}/extractor/train_with_pml.md", None),
    "pml_advanced.py": (f"{SOURCE}/extractor/train_with_pml_advanced.md", None),
    "zoo.py": (f"{SOURCE}/zoo/zoo_images.md", "zoo-image"),
    "dataset_format.py": (f"{SOURCE}/retrieval_format.md", "dataset"),
}
#: the dataset-format snippet checks texts and audios too; those lines belong to oml-text / oml-audio
OTHER_MODALITIES = re.compile(r"texts|audios|TEXTS|AUDIO")


def snippet(repo: Path, path: str, marker: str | None) -> list[str]:
    text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout
    if marker is not None:
        text = text.split(f"[comment]:{marker}-start", 1)[1].split(f"[comment]:{marker}-end", 1)[0]
    return text.split("```python", 1)[1].split("```", 1)[0].splitlines()


def is_import(line: str) -> bool:
    """An import line, or a name or ``)`` inside a parenthesised import."""
    stripped = line.strip()
    if stripped.startswith(("import ", "from ")) or stripped == ")":
        return True
    return bool(re.fullmatch(r"[\w, ]+,", stripped))


def main() -> int:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/OML-Team+open-metric-learning/repo")
    failed = False
    for name, (path, marker) in SNIPPETS.items():
        ours = [line.rstrip() for line in (EXAMPLES / name).read_text().splitlines() if "# set-up" not in line]
        missing = []
        for line in snippet(repo, path, marker):
            line = line.rstrip()
            if not line.strip() or is_import(line) or (name == "dataset_format.py" and OTHER_MODALITIES.search(line)):
                continue
            if "show=True" in line or "from_pretrained(" in line or '"vits16_dino", arch=' in line:
                continue  # the set-up lines' originals
            if line not in ours:
                missing.append(line)
        failed |= bool(missing)
        print(f"{name:30s} {'verbatim' if not missing else f'{len(missing)} line(s) missing'}")
        for line in missing:
            print(f"    {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
