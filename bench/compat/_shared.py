"""What both sides of the OML 4 parity check use: plain Python and NumPy, importable in either environment."""

from __future__ import annotations

from typing import Any

import numpy as np

KS = {"cmc_top_k": (1, 5), "precision_top_k": (5,), "map_top_k": (5,)}


def median_third(rr: Any) -> float:
    """A threshold that cuts some lists: the median distance of the third retrieved item."""
    return float(np.median([d[2].item() for d in rr.distances]))


def flat(metrics: dict[Any, Any], prefix: str = "") -> dict[str, float]:
    """``{"OVERALL": {"cmc": {1: x}}}`` -> ``{"OVERALL/cmc/1": x}``."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        out.update(flat(value, name) if isinstance(value, dict) else {name: float(value)})
    return out
