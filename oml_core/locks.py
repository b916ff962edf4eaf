"""An exclusive inter-process lock on a file (POSIX ``flock``), for work that two processes must not do at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(lock_path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing, and left in place afterwards: removing it would
    race with a process waiting on it) for the duration of the block.

    Example:
        >>> with exclusive_lock("/tmp/oml-example.lock"):
        ...     pass
    """
    import fcntl

    Path(lock_path).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["exclusive_lock"]
