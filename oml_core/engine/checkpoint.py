"""Checkpoint files: written atomically (temp file, fsync, rename) and read back with ``weights_only=True``."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from oml_core.errors import OMLError
from oml_core.files import atomic_copy, atomic_link, atomic_write, atomic_write_text, commit_temp, write_temp

__all__ = [
    "CheckpointError",
    "CheckpointWriter",
    "atomic_copy",
    "atomic_link",
    "atomic_save",
    "atomic_write",
    "atomic_write_text",
    "load_checkpoint_file",
]

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


class CheckpointWriter:
    """Writes checkpoints so that training waits only for the serialisation: the fsync, the rename into place and
    the other names of the same state (``best.pt``, ``step-N.pt``: hard links, not copies) are done by a background
    thread while the next steps run. One write is in flight at a time; :meth:`wait` (called by the next
    :meth:`save` and when the run ends) returns once it is on disk, or raises its error. A crash or kill at any
    moment leaves each name holding the previous complete file or the new one.

    Example:
        >>> writer = CheckpointWriter()
        >>> writer.save({"w": torch.zeros(2)}, "/tmp/oml-doctest-ckpt/last.pt", also=["/tmp/oml-doctest-ckpt/best.pt"])
        >>> writer.wait()
        >>> sorted(path.name for path in Path("/tmp/oml-doctest-ckpt").glob("*.pt"))
        ['best.pt', 'last.pt']
    """

    def __init__(self, *, background: bool = True) -> None:
        self.background = background
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def save(
        self, obj: Any, path: str | Path, *, also: Sequence[str | Path] = (), then: Callable[[], None] | None = None
    ) -> None:
        """Serialise ``obj`` into a temp file beside ``path`` now; fsync it, rename it to ``path``, give it the
        names in ``also`` and call ``then`` in the background (at once when ``background`` is false)."""
        self.wait()
        path = Path(path)
        try:
            tmp = write_temp(path, lambda handle: torch.save(obj, handle))
        except (OSError, RuntimeError) as exc:  # torch's writer reports a short write as a RuntimeError
            raise _write_error(path, exc) from None
        finish = _Finish(self, tmp, path, [Path(name) for name in also], then)
        if not self.background:
            finish()
            self.wait()
            return
        # not a daemon: an interpreter that exits (even after an exception) still renames the finished file in place
        self._thread = threading.Thread(target=finish, name=f"oml-checkpoint-{path.name}")
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight is on disk; raise its :class:`CheckpointError` if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure


class _Finish:
    """The background half of a checkpoint write (a class, not a closure, so the failure lands on the writer)."""

    def __init__(
        self, writer: CheckpointWriter, tmp: Path, path: Path, also: list[Path], then: Callable[[], None] | None
    ) -> None:
        self.writer, self.tmp, self.path, self.also, self.then = writer, tmp, path, also, then

    def __call__(self) -> None:
        try:
            commit_temp(self.tmp, self.path)
            for name in self.also:
                atomic_link(self.path, name)
            if self.then is not None:
                self.then()
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread by wait()
            self.writer._failure = _write_error(self.path, exc) if isinstance(exc, (OSError, RuntimeError)) else exc


def _write_error(path: Path, exc: BaseException) -> CheckpointError:
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return CheckpointError(
        f"cannot write checkpoint {path} ({reason}: a full disk?); the run stopped and the previous "
        f"{path.name} (if any) is intact. Free disk space (or fix the folder's permissions) and resume."
    )


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
