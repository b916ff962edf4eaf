"""Start-up time: `import oml_core` and `oml --help` (neither imports torch) against `import torch` alone, each in a
fresh interpreter, median of N runs.

    .venv/bin/python bench/startup/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CASES = {
    "import oml_core": "import oml_core",
    "oml --help": "from oml_core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "import torch (reference)": "import torch",
    "python -c pass (floor)": "pass",
}


def _seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"median of {args.repeats} fresh interpreters, load average {os.getloadavg()[0]:.1f}")
    medians = {}
    for name, code in CASES.items():
        _seconds(code)  # warm the file cache
        medians[name] = statistics.median(_seconds(code) for _ in range(args.repeats))
        print(f"{name:<26} {medians[name]:6.3f} s")
    print(f"oml --help / import torch: {medians['oml --help'] / medians['import torch (reference)']:.2f}")


if __name__ == "__main__":
    main()
