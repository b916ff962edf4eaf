"""Finding the installed font files, the faces inside them, and what is known about where each came from.

Example:
    >>> files = find_font_files(["/nonexistent"])
    >>> files
    []
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

#: Where Debian (and most Linux distributions) keep fonts; fontconfig's defaults.
DEFAULT_FONT_DIRS: tuple[str, ...] = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
#: Scalable outline formats that FreeType renders at any size. Bitmap formats (.pcf, .otb, .bdf) are left out:
#: they have one pixel size and would be rescaled blocks, not glyphs drawn by a designer.
FONT_SUFFIXES: frozenset[str] = frozenset({".ttf", ".otf", ".ttc", ".otc", ".pfb", ".pfa", ".t1"})
_DPKG_INFO = Path("/var/lib/dpkg/info")
_DOC_ROOT = Path("/usr/share/doc")


@attrs.frozen
class FontSource:
    """The Debian package a font file belongs to and the licence its copyright file names ("" where unknown)."""

    package: str = ""
    licence: str = ""


def find_font_files(dirs: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """Every font file under ``dirs`` (default: fontconfig's usual folders), sorted, symlinks resolved, each once.

    Example:
        >>> find_font_files([])
        []
    """
    roots = DEFAULT_FONT_DIRS if dirs is None else dirs
    seen: set[Path] = set()
    found: list[Path] = []
    for root in roots:
        base = Path(root).expanduser()
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix.lower() not in FONT_SUFFIXES:
                    continue
                real = path.resolve()
                if real in seen or not real.is_file():
                    continue
                seen.add(real)
                found.append(path)
    return sorted(found, key=lambda p: str(p))


def _dpkg_owners() -> dict[str, str]:
    owners: dict[str, str] = {}
    if not _DPKG_INFO.is_dir():
        return owners
    for listing in sorted(_DPKG_INFO.glob("*.list")):
        package = listing.stem.split(":")[0]
        try:
            lines = listing.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if "/fonts/" in line:
                owners.setdefault(line, package)
    return owners


_LICENSE_LINE = re.compile(r"^License:\s*(\S.*?)\s*$", re.MULTILINE)


def _package_licence(package: str) -> str:
    copyright_file = _DOC_ROOT / package / "copyright"
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    names: list[str] = []
    for match in _LICENSE_LINE.finditer(text):
        name = match.group(1)
        if name not in names:
            names.append(name)
    return " / ".join(names)


def font_sources(paths: Iterable[Path]) -> dict[Path, FontSource]:
    """The Debian package and licence of each font file (read from dpkg's file lists and the packages'
    machine-readable copyright files); files no package owns get an empty ``FontSource``.

    Example:
        >>> font_sources([Path("/nonexistent.ttf")])[Path("/nonexistent.ttf")]
        FontSource(package='', licence='')
    """
    owners = _dpkg_owners()
    licences: dict[str, str] = {}
    sources: dict[Path, FontSource] = {}
    for path in paths:
        package = owners.get(str(path)) or owners.get(str(path.resolve()), "")
        if package and package not in licences:
            licences[package] = _package_licence(package)
        sources[path] = FontSource(package, licences.get(package, ""))
    return sources
