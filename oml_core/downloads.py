"""Downloads that users can rely on: streamed with a progress bar, resumed after an interruption, verified, renamed
into the cache atomically, and done once when several processes (DDP ranks) ask for the same file.

Verification never blocks a good file: a full sha256 is checked where it is known; where the publisher gives only
an md5 (OML's zoo publishes md5 prefixes) the md5 is checked and the file's sha256 is then recorded next to it in
the cache (and printed), so that a later change of the file is caught. A mismatch refuses and deletes the file.

Environment:
    ``OML_CACHE_DIR``           where files go (default ``$XDG_CACHE_HOME/oml`` or ``~/.cache/oml``)
    ``OML_OFFLINE=1``           never touch the network: only files already in the cache (or put there by hand)
    ``OML_WEIGHTS_BASE_URL``    a mirror: weights are fetched from ``<base>/<file name>`` instead of their URLs
    ``OML_DOWNLOAD_TIMEOUT``    seconds without data before a connection counts as stalled (default 60)

Example:
    >>> path = fetch(["https://example.org/w.pth"], "w.pth", sha256="0" * 64)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from oml_core.errors import OMLError
from oml_core.locks import exclusive_lock

_CHUNK = 1 << 20
_ATTEMPTS_PER_URL = 3


class WeightsError(OMLError):
    """A checkpoint could not be found, downloaded, verified or loaded."""


class ChecksumMismatchError(WeightsError):
    """A file does not have the checksum it was registered with (the file has been deleted)."""


class DownloadError(WeightsError):
    """A download failed (offline machine, HTTP error, unreachable host, interrupted transfer...)."""


class _Interrupted(Exception):
    """A transfer stopped early; what arrived is kept in the partial file for the next attempt."""


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where OML keeps downloads: ``$OML_CACHE_DIR``, else ``$XDG_CACHE_HOME/oml``, else ``~/.cache/oml``.

    Example:
        >>> cache_dir({"OML_CACHE_DIR": "/data/oml"})
        PosixPath('/data/oml')
    """
    env = os.environ if env is None else env
    explicit = env.get("OML_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "oml"


def weights_dir() -> Path:
    """Where zoo weights are kept, by their file name: ``cache_dir()/weights``. A file copied there by hand is used
    without a network (after its checksum is checked)."""
    return cache_dir() / "weights"


def offline() -> bool:
    """True when ``OML_OFFLINE`` is set to 1 / true / yes."""
    return os.environ.get("OML_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def file_digests(path: str | Path) -> tuple[str, str]:
    """The sha256 and md5 hex digests of a file, read once in chunks.

    Example:
        >>> len(file_digests(__file__)[0])
        64
    """
    sha, md5 = hashlib.sha256(), hashlib.md5()  # noqa: S324 - md5 only checks what publishers give as md5
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file.

    Example:
        >>> sha256_file(__file__) == sha256_file(__file__)
        True
    """
    return file_digests(path)[0]


# ------------------------------------------------------------------------------------------------ verification
def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded(path: Path) -> tuple[str, bool] | None:
    """The sha256 recorded for ``path`` and whether the file is unchanged since (same size and mtime)."""
    marker = _marker(path)
    if not marker.is_file():
        return None
    parts = marker.read_text().split()
    if len(parts) != 3:
        return None
    stat = path.stat()
    return parts[0], parts[1:] == [str(stat.st_size), str(stat.st_mtime_ns)]


def _record(path: Path, sha256: str) -> None:
    stat = path.stat()
    tmp = _marker(path).with_suffix(".tmp")
    tmp.write_text(f"{sha256} {stat.st_size} {stat.st_mtime_ns}\n")
    os.replace(tmp, _marker(path))


def _delete(path: Path) -> None:
    for p in (path, _marker(path)):
        p.unlink(missing_ok=True)


def verify_file(path: Path, *, sha256: str | None, md5: str | None, what: str, origin: str) -> str:
    """Check ``path`` against the known checksums and return its sha256; record it next to the file.

    Order: the full ``sha256`` if given; else a sha256 recorded earlier in the cache (the file must not have changed
    since it was first verified); else the publisher's ``md5`` (prefix). On a mismatch the file is deleted and
    ``ChecksumMismatchError`` says what was expected and found.
    """
    recorded = _recorded(path)
    if recorded is not None and recorded[1] and (sha256 is None or recorded[0] == sha256):
        return recorded[0]  # verified before and untouched since: no need to hash gigabytes again
    actual_sha, actual_md5 = file_digests(path)
    expected, found, how = None, None, ""
    if sha256 is not None:
        expected, found, how = sha256, actual_sha, "sha256"
    elif recorded is not None:
        expected, found, how = recorded[0], actual_sha, "sha256 recorded when it was first verified"
    elif md5 is not None:
        if not actual_md5.startswith(md5):
            expected, found, how = md5, actual_md5, "md5 prefix"
    if expected is not None and found != expected:
        _delete(path)
        raise ChecksumMismatchError(
            f"{what} ({origin}) has {how.split(' ')[0]} {found}, but {expected} was expected ({how}); the file was "
            f"deleted. The download was corrupted, the file on the server changed, or the cached file was altered: "
            f"run again to download it anew, and report it to the plugin that registered it if it persists."
        )
    if sha256 is None and recorded is None:
        print(
            f"oml: {what}: verified by the publisher's md5 prefix {md5}; recorded its sha256 {actual_sha} in "
            f"{_marker(path)}",
            file=sys.stderr,
        )
    _record(path, actual_sha)
    return actual_sha


# ------------------------------------------------------------------------------------------------ locking
def file_lock(path: Path) -> AbstractContextManager[None]:
    """An exclusive inter-process lock on ``<path>.lock`` (two DDP ranks never download the same file twice: the
    second waits and then finds the file verified in the cache)."""
    return exclusive_lock(path.with_name(path.name + ".lock"))


# ------------------------------------------------------------------------------------------------ transfer
def _timeout() -> float:
    try:
        return float(os.environ.get("OML_DOWNLOAD_TIMEOUT", "60"))
    except ValueError:
        value = os.environ["OML_DOWNLOAD_TIMEOUT"]
        raise WeightsError(f"OML_DOWNLOAD_TIMEOUT must be a number of seconds, got {value!r}") from None


def _open(url: str, offset: int) -> tuple[Any, int, int | None]:
    """Open ``url`` from byte ``offset``: returns the stream, the offset it really starts at, and the total size."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
        size = path.stat().st_size
        start = min(offset, size)
        stream.seek(start)
        return stream, start, size
    if parsed.scheme not in {"http", "https"}:
        raise DownloadError(f"cannot download {url!r}: only http(s):// and file:// URLs are supported")
    headers = {"User-Agent": "oml-downloader", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked above
    try:
        response = urllib.request.urlopen(request, timeout=_timeout())  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is already complete
            return _EmptyStream(), offset, offset
        raise
    length = response.headers.get("Content-Length")
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rsplit("/", 1)[-1]
        return response, offset, int(total) if total.isdigit() else None
    return response, 0, int(length) if length and length.isdigit() else None


class _EmptyStream:
    def read(self, size: int = -1) -> bytes:
        return b""

    read1 = read

    def close(self) -> None:
        pass


def _transfer(url: str, part: Path, *, label: str, progress: bool) -> None:
    """Append ``url``'s bytes to ``part`` (resuming from its size); raise ``_Interrupted`` if it stops early."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    stream, start, total = _open(url, offset)
    try:
        mode = "ab" if start == offset else "wb"  # the server ignored the range: start again
        read = getattr(stream, "read1", stream.read)
        received = start
        bar = tqdm(
            total=total, initial=start, disable=not progress, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
            leave=False,
        )
        with open(part, mode) as out, bar:
            while True:
                try:
                    chunk = read(_CHUNK)  # read1: what has arrived, so a stall loses nothing already received
                except (TimeoutError, OSError, http.client.HTTPException) as exc:  # stalled, reset, incomplete
                    raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received < total:
            raise _Interrupted(f"the connection closed after {received} of {total} bytes")
    finally:
        stream.close()


def mirrored(urls: Sequence[str], filename: str) -> list[str]:
    """The URLs to try: ``OML_WEIGHTS_BASE_URL/<filename>`` when a mirror is set, else ``urls``.

    Example:
        >>> mirrored(["https://a/x.pth"], "x.pth")   # doctest: +SKIP
        ['https://mirror.local/oml/x.pth']
    """
    base = os.environ.get("OML_WEIGHTS_BASE_URL", "").strip()
    if base:
        return [f"{base.rstrip('/')}/{urllib.parse.quote(filename)}"]
    return list(urls)


def fetch(
    urls: Sequence[str],
    filename: str,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    directory: str | Path | None = None,
    name: str | None = None,
    progress: bool = True,
) -> Path:
    """Return the verified local copy of a file published at ``urls``, downloading it into the cache if needed.

    The file is ``directory/filename`` (default ``weights_dir()``). A copy already there (downloaded before or put
    there by hand) is verified and used without a network. Otherwise each URL is tried in turn (a mirror replaces
    them, see ``mirrored``): the bytes stream into ``<filename>.part`` (resumed after an interruption, also by a
    later call), are verified, and the file is renamed into place. ``name`` (the zoo name) improves messages.

    Example:
        >>> fetch(["file:///tmp/x.pth"], "x.pth", sha256="0" * 64)   # doctest: +SKIP
    """
    if sha256 is None and md5 is None:
        raise WeightsError(f"refusing to download {filename} without a checksum (give sha256= or md5=)")
    what = f"weights {name!r}" if name else filename
    target = (Path(directory) if directory is not None else weights_dir()) / filename
    with file_lock(target):
        if target.is_file():
            try:
                verify_file(target, sha256=sha256, md5=md5, what=what, origin=f"cached file {target}")
                return target
            except ChecksumMismatchError as exc:
                if offline():
                    raise
                print(f"oml: {exc} Downloading it again.", file=sys.stderr)
        sources = mirrored(urls, filename)
        if offline():
            raise DownloadError(
                f"{what} is not in the cache and OML_OFFLINE=1 forbids downloading it. On a machine with network "
                f"access download {sources[0]} and copy it to {target} (it is verified against its "
                f"{'sha256 ' + sha256 if sha256 else 'md5 prefix ' + str(md5)}), or unset OML_OFFLINE."
            )
        part = target.with_name(target.name + ".part")
        failures: list[str] = []
        for url in sources:
            for _attempt in range(_ATTEMPTS_PER_URL):
                try:
                    _transfer(url, part, label=f"Downloading {filename}", progress=progress)
                except _Interrupted as exc:
                    failures.append(f"{url}: interrupted ({exc})")
                    continue  # resume from what arrived
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
                    break  # this source does not answer: try the next one
                verify_file(part, sha256=sha256, md5=md5, what=what, origin=f"downloaded from {url}")
                marker_sha = _recorded(part)
                os.replace(part, target)
                _marker(part).unlink(missing_ok=True)
                _record(target, marker_sha[0] if marker_sha else sha256_file(target))
                return target
        kept = f" The {part.stat().st_size} bytes received are kept in {part}; run again to resume." if part.exists() else ""
        raise DownloadError(
            f"could not download {what}: {'; '.join(failures[-3:])}.{kept} If this machine cannot reach the URL, "
            f"download it elsewhere and copy it to {target}, set OML_WEIGHTS_BASE_URL to a mirror holding "
            f"{filename}, or pass the local path of the file instead of the name."
        )


def describe_environment() -> dict[str, Any]:
    """The download settings in effect (for ``oml zoo`` and bug reports)."""
    return {
        "cache": str(weights_dir()),
        "offline": offline(),
        "mirror": os.environ.get("OML_WEIGHTS_BASE_URL") or None,
        "timeout_s": _timeout(),
    }


__all__ = [
    "ChecksumMismatchError",
    "DownloadError",
    "WeightsError",
    "cache_dir",
    "describe_environment",
    "fetch",
    "file_digests",
    "file_lock",
    "mirrored",
    "offline",
    "sha256_file",
    "verify_file",
    "weights_dir",
]
