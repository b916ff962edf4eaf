"""Checkpoint files: written atomically (temp file, fsync, rename) and read back with ``weights_only=True``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from oml_core.errors import OMLError
from oml_core.files import atomic_copy, atomic_write, atomic_write_text

__all__ = ["CheckpointError", "atomic_copy", "atomic_save", "atomic_write", "atomic_write_text", "load_checkpoint_file"]

CHECKPOINT_FORMAT = "oml-checkpoint/1"


class CheckpointError(OMLError):
    """A checkpoint file that cannot be read or does not hold what is needed."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` into a temp file in the same folder, fsync it, then rename it over ``path``, so that a crash
    at any moment leaves either the old file or the new one, never a torn one.

    Example:
        >>> atomic_save({"w": torch.zeros(2)}, "/tmp/oml-doctest.pt").name
        'oml-doctest.pt'
    """
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by the engine (``weights_only=True``: no code from the file ever runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "it is corrupt, truncated, or holds objects other than tensors and plain Python values"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an OML engine checkpoint (no 'format: {CHECKPOINT_FORMAT}' entry)")
    return checkpoint


def rng_states() -> dict[str, Any]:
    """The RNG states a resumed run needs to continue exactly (torch CPU/CUDA, Python, NumPy if present)."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": _python_state_to_plain(random.getstate())}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        numpy_state: Any = np.random.get_state(legacy=True)
        _, keys, pos, has_gauss, cached = numpy_state
        states["numpy"] = {
            "keys": torch.from_numpy(np.asarray(keys).astype("int64")),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        }
    except ImportError:  # pragma: no cover - numpy comes with torch in practice
        pass
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(_python_state_from_plain(states["python"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "numpy" in states:
        import numpy as np

        numpy_state = states["numpy"]
        keys = numpy_state["keys"].numpy().astype("uint32")
        np.random.set_state(("MT19937", keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"]))


def _python_state_to_plain(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_plain(plain: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = plain
    return (version, tuple(internal), gauss)
