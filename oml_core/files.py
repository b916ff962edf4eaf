"""Files written atomically: a temp file in the same folder, fsync, rename. A crash, kill -9 or a full disk at any
moment leaves the old file or the new one, never a torn one. Every file the engine and the pipelines write (the
checkpoints, ``best.pt``, ``metrics.json``, the resolved ``config.yaml``) goes through here."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a binary temp file in ``path``'s folder, fsync it and rename it over ``path``:
    a crash or a full disk at any moment leaves the old file or the new one, never a torn one.

    Example:
        >>> atomic_write("/tmp/oml-doctest.txt", lambda handle: handle.write(b"hello")).read_text()
        'hello'
    """
    path = Path(path)
    return commit_temp(write_temp(path, write), path)


def write_temp(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """The first half of ``atomic_write``: ``write(handle)`` into a new temp file beside ``path`` (removed if
    ``write`` fails); ``commit_temp`` puts it in place, possibly later or on another thread.

    Example:
        >>> tmp = write_temp("/tmp/oml-doctest-two-step.txt", lambda handle: handle.write(b"x"))
        >>> commit_temp(tmp, "/tmp/oml-doctest-two-step.txt").read_text()
        'x'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Path(tmp_name)


def commit_temp(tmp: str | Path, path: str | Path) -> Path:
    """The second half of ``atomic_write``: fsync the temp file ``tmp`` and rename it over ``path`` (``tmp`` is
    removed if that fails, and ``path`` keeps its previous content)."""
    tmp, path = Path(tmp), Path(path)
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see ``atomic_write``).

    Example:
        >>> atomic_write_text("/tmp/oml-doctest.json", "{}").read_text()
        '{}'
    """
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_copy(source: str | Path, destination: str | Path) -> Path:
    """Copy ``source`` to ``destination`` atomically (``best.pt`` from ``last.pt``).

    Example:
        >>> _ = atomic_write_text("/tmp/oml-doctest-source.json", "[]")
        >>> atomic_copy("/tmp/oml-doctest-source.json", "/tmp/oml-doctest-copy.json").read_text()
        '[]'
    """

    def copy(handle: IO[bytes]) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, handle, length=1 << 20)

    return atomic_write(destination, copy)


def atomic_link(source: str | Path, destination: str | Path) -> Path:
    """Make ``destination`` name the same file as ``source`` (a hard link, renamed into place, so no copy is made
    and a crash leaves the old ``destination`` or the new one); copies atomically where hard links are refused.
    Safe because every file written here is replaced by a rename, never rewritten in place.

    Example:
        >>> _ = atomic_write_text("/tmp/oml-doctest-source.txt", "x")
        >>> atomic_link("/tmp/oml-doctest-source.txt", "/tmp/oml-doctest-link.txt").read_text()
        'x'
    """
    source, destination = Path(source), Path(destination)
    tmp_name = destination.parent / f".{destination.name}.{os.getpid()}.link.tmp"
    try:
        tmp_name.unlink(missing_ok=True)
        os.link(source, tmp_name)
    except OSError:  # a file system without hard links (some network and FAT mounts), or across devices
        return atomic_copy(source, destination)
    try:
        os.replace(tmp_name, destination)
        _fsync_folder(destination.parent)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return destination


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temp files that writes into ``folder`` left behind when their process was killed (``.NAME.*.tmp``
    of ``write_temp`` and ``atomic_link``); returns them. Call it only where no other process is writing.

    Example:
        >>> _ = write_temp("/tmp/oml-doctest-stale/last.pt", lambda handle: handle.write(b"x"))
        >>> [path.suffix for path in remove_temp_files("/tmp/oml-doctest-stale")]
        ['.tmp']
    """
    folder = Path(folder)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
