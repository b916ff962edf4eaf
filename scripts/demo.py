"""The main job: generate the mock dataset, train a small model on CPU, validate before and after training.

Extra arguments are config overrides, e.g. ``bash scripts/dev.sh demo epochs=5``. Exits non-zero if the retrieval
metrics did not improve.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from oml_core.data import download_mock_dataset
from oml_core.pipelines.train import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    started = time.perf_counter()
    download_mock_dataset(ROOT / "mock_dataset")
    result = train(ROOT / "configs" / "train_mock.yaml", overrides=[f"data.dataframe={ROOT / 'mock_dataset' / 'df.csv'}",
                   f"data.dataset_root={ROOT / 'mock_dataset'}", f"run_dir={ROOT / 'runs'}", *sys.argv[1:]])  # fmt: skip
    print(f"\nrun directory: {result.run_dir}  ({result.status}, {result.epochs} epochs, {result.steps} steps, "
          f"{time.perf_counter() - started:.0f} s)")  # fmt: skip
    print(f"{'metric':<24}{'before':>10}{'after':>10}")
    for name in sorted(result.metrics_after):
        before, after = result.metrics_before.get(name, float("nan")), result.metrics_after[name]
        print(f"{name:<24}{before:>10.4f}{after:>10.4f}")
    key = "OVERALL/cmc/1"
    improved = result.metrics_after.get(key, 0.0) > result.metrics_before.get(key, 1.0)
    print(f"\n{key} {'improved' if improved else 'did NOT improve'}")
    return 0 if improved else 1


if __name__ == "__main__":
    sys.exit(main())
