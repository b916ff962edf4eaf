"""Build a glyph-identity dataset in OML's format from the fonts installed on this machine.

Identity = character, instances = font faces: each character drawn by many type designers. Validation holds
characters never seen in training (split by identity, seeded), every validation image both query and gallery.

Layout of ``OUT_DIR``::

    df.csv                   label (the character's code point), path, split, is_query, is_gallery, category
    images/U+0041/0007.png   one image per (character, face); the face id is its position in the manifest
    fonts_manifest.json      parameters, characters, the faces used (family, style, file, package, licence,
                             sha256) and every face left out with the reason

Example:
    >>> import tempfile
    >>> build_fonts_dataset(tempfile.mkdtemp(), FontsDatasetParams(characters="oO0"), font_dirs=[])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    oml_core.errors.OMLError: no font files (.otc, .otf, .pfa, .pfb, .t1, .ttc, .ttf) found (font folders searched: ...
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import string
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
from PIL import Image

from oml_core.errors import OMLError
from oml_datasets.fonts.discovery import DEFAULT_FONT_DIRS, FONT_SUFFIXES, find_font_files, font_sources
from oml_datasets.fonts.faces import duplicate_of, legibility, signatures
from oml_datasets.fonts.render import Face, UnreadableFontError, covered_characters, open_faces, render_face

DEFAULT_CHARACTERS = string.ascii_letters + string.digits
MANIFEST_NAME = "fonts_manifest.json"
GENERATOR = "oml-datasets fonts v1"
#: A face is a dingbat (or otherwise illegible) when at most this share of its glyphs look like their character
#: (case-insensitive). Low on purpose: decorative display faces that people read easily still score 0.1-0.3 on
#: a pixel consensus, true dingbats about 0.
MAX_ILLEGIBLE_SCORE = 0.05
#: Families that map letters to symbols (pi fonts) by name: Greek or ornaments in the Latin slots.
SYMBOL_FAMILY = re.compile(r"symbol|dingbat|ding\b|wingding|webding|emoji|ornament|\bpi\b", re.IGNORECASE)
#: Faces closer than this (RMS of 16x16 grey signatures, 0..1) repeat an earlier face: same outlines in another
#: format (.t1 and .otf of URW), metric clones, a family's "Book" and "Regular".
DUPLICATE_DISTANCE = 0.03
#: A character drawn by fewer than this share of the readable faces is left out (with a warning) rather than
#: dropping every face that lacks it.
MIN_CHARACTER_COVERAGE = 0.5

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"oml: warning: {message}", file=sys.stderr)


@attrs.frozen(kw_only=True)
class FontsDatasetParams:
    """What determines the dataset besides the installed fonts: the same values and fonts give the same bytes."""

    image_size: int = 32
    characters: str = DEFAULT_CHARACTERS
    faces_per_identity: int = 300
    val_fraction: float = 0.5
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        problems = []
        if not 16 <= self.image_size <= 512 or self.image_size % 16:
            problems.append(f"image size must be a multiple of 16 between 16 and 512, got {self.image_size}")
        if len(set(self.characters)) < 2:
            problems.append(f"at least 2 distinct characters are needed, got {self.characters!r}")
        if any(char.isspace() or unicodedata.category(char).startswith("C") for char in self.characters):
            problems.append("characters must be visible (no spaces or control characters)")
        if self.faces_per_identity < 2:
            problems.append(f"faces per identity must be at least 2, got {self.faces_per_identity}")
        if not 0.0 < self.val_fraction < 1.0:
            problems.append(f"the validation fraction must be between 0 and 1, got {self.val_fraction}")
        if problems:
            raise OMLError("fonts dataset: " + "; ".join(problems))

    @property
    def unique_characters(self) -> str:
        return "".join(dict.fromkeys(self.characters))


@attrs.frozen
class FontsDatasetReport:
    """What was built: where, how many images, characters and faces, and what was left out."""

    root: Path
    n_images: int
    train_characters: str
    val_characters: str
    n_faces: int
    left_out: dict[str, int]


def character_category(char: str) -> str:
    """``upper``, ``lower``, ``digit`` or ``other``: the ``category`` column.

    Example:
        >>> [character_category(c) for c in "aZ7%"]
        ['lower', 'upper', 'digit', 'other']
    """
    if char.isdigit():
        return "digit"
    if char.isupper():
        return "upper"
    if char.islower():
        return "lower"
    return "other"


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(chars: str) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)


def build_fonts_dataset(
    out_dir: str | os.PathLike[str],
    params: FontsDatasetParams | None = None,
    *,
    font_dirs: Sequence[str | os.PathLike[str]] | None = None,
    force: bool = False,
    warn: Warn = _stderr,
) -> FontsDatasetReport:
    """Render the installed fonts into ``out_dir`` in OML's format and return what was built.

    Unreadable font files, faces that lack a character, illegible (dingbat) faces and near-duplicates are left out
    and listed in the manifest; a character that too few faces draw is left out with a warning. Raises
    ``OMLError`` when no usable font is found or ``out_dir`` already holds a dataset (unless ``force``).
    """
    params = params or FontsDatasetParams()
    root = Path(out_dir)
    if (root / "df.csv").exists() and not force:
        raise OMLError(f"{root / 'df.csv'} exists already; pass --force to build the fonts dataset there again")
    files = find_font_files(font_dirs)
    if not files:
        searched = ", ".join(str(Path(d).expanduser()) for d in (DEFAULT_FONT_DIRS if font_dirs is None else font_dirs))
        raise OMLError(
            f"no font files ({', '.join(sorted(FONT_SUFFIXES))}) found (font folders searched: {searched or 'none given'}). "
            "Install fonts, e.g. with 'bash scripts/install_fonts.sh' (Debian packages), or pass --font-dir FOLDER "
            "with font files in it."
        )
    characters = params.unique_characters
    left_out: list[dict[str, object]] = []

    faces: list[tuple[Face, str]] = []
    for path in files:
        try:
            file_faces = list(open_faces(path))
        except UnreadableFontError as exc:
            warn(f"font file {path} cannot be read ({exc}); left out, the dataset is built from the other fonts")
            left_out.append({"file": str(path), "face_index": 0, "reason": "unreadable", "detail": str(exc)})
            continue
        for face in file_faces:
            try:
                faces.append((face, covered_characters(face, characters)))
            except UnreadableFontError as exc:
                warn(f"font file {path} (face {face.index}) cannot be drawn ({exc}); left out")
                left_out.append({"file": str(path), "face_index": face.index, "reason": "unreadable", "detail": str(exc)})
    if not faces:
        raise OMLError(f"none of the {len(files)} font files found could be read; see the warnings above")

    coverage = {char: sum(char in covered for _, covered in faces) for char in characters}
    uncovered = "".join(c for c in characters if coverage[c] == 0)
    if uncovered:
        warn(f"no installed font draws {_describe(uncovered)}; left out of the dataset")
    rare = "".join(c for c in characters if 0 < coverage[c] < MIN_CHARACTER_COVERAGE * len(faces))
    for char in rare:
        warn(
            f"only {coverage[char]} of {len(faces)} font faces draw {_describe(char)}; left out of the dataset "
            "(keeping it would leave out every face that lacks it)"
        )
    characters = "".join(c for c in characters if c not in uncovered and c not in rare)
    if len(characters) < 2:
        raise OMLError(
            f"fonts dataset: fewer than 2 of the requested characters are drawn by the installed fonts "
            f"(requested {params.characters!r}); install more fonts or choose other characters"
        )

    complete: list[Face] = []
    for face, covered in faces:
        lacking = "".join(c for c in characters if c not in covered)
        if lacking:
            left_out.append(_face_entry(face, "no glyph", f"for {lacking}"))
        else:
            complete.append(face)

    rendered: list[Face] = []
    images: list[np.ndarray] = []
    for face in complete:
        try:
            glyphs = render_face(face, characters, image_size=params.image_size)
        except UnreadableFontError as exc:
            warn(f"font file {face.path} (face {face.index}) cannot be drawn ({exc}); left out")
            left_out.append(_face_entry(face, "unreadable", str(exc)))
            continue
        rendered.append(face)
        images.append(np.stack([glyphs[c] for c in characters]))
    if not rendered:
        raise OMLError(f"fonts dataset: no font face draws all of {characters!r}; install more fonts")

    stack = np.stack(images)
    sigs = signatures(255 - stack)
    scores = legibility(sigs, np.array([ord(c.lower()) for c in characters]))
    legible = []
    for i, score in enumerate(scores):
        if score <= MAX_ILLEGIBLE_SCORE:
            reason = f"dingbat or symbol face: {score:.0%} of its glyphs look like their character"
            left_out.append(_face_entry(rendered[i], "illegible", reason))
        elif SYMBOL_FAMILY.search(rendered[i].family):
            left_out.append(_face_entry(rendered[i], "illegible", f"symbol face by its family name {rendered[i].family!r}"))
        else:
            legible.append(i)
    duplicates = duplicate_of(sigs[legible], max_distance=DUPLICATE_DISTANCE)
    unique = [legible[j] for j, dup in enumerate(duplicates) if dup is None]
    for j, dup in enumerate(duplicates):
        if dup is not None:
            original = rendered[legible[dup]]
            left_out.append(_face_entry(rendered[legible[j]], "near-duplicate", f"of {original.path} (face {original.index})"))
    if len(unique) < 2:
        raise OMLError(
            f"fonts dataset: only {len(unique)} distinct legible font face(s) found; at least 2 are needed "
            "(install more fonts, e.g. 'bash scripts/install_fonts.sh')"
        )

    return _write(root, params, characters, [rendered[i] for i in unique], stack[unique], left_out, force, warn)


def _face_entry(face: Face, reason: str, detail: str) -> dict[str, object]:
    return {
        "file": str(face.path),
        "face_index": face.index,
        "family": face.family,
        "style": face.style,
        "reason": reason,
        "detail": detail,
    }


def _write(
    root: Path,
    params: FontsDatasetParams,
    characters: str,
    faces: list[Face],
    stack: np.ndarray,
    left_out: list[dict[str, object]],
    force: bool,
    warn: Warn,
) -> FontsDatasetReport:
    rng = np.random.default_rng(params.seed)
    order = rng.permutation(len(characters))
    n_val = min(len(characters) - 1, max(1, round(params.val_fraction * len(characters))))
    val_chars = {characters[i] for i in order[:n_val]}
    per_identity = min(params.faces_per_identity, len(faces))
    chosen = {char: np.sort(rng.permutation(len(faces))[:per_identity]) for char in characters}
    used = sorted({int(i) for idx in chosen.values() for i in idx})
    face_id = {face: n for n, face in enumerate(used)}

    images_dir = root / "images"
    if force and images_dir.is_dir():
        shutil.rmtree(images_dir)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, char in enumerate(characters):
        char_dir = images_dir / f"U+{ord(char):04X}"
        char_dir.mkdir(parents=True, exist_ok=True)
        is_val = char in val_chars
        for i in chosen[char]:
            relative = f"images/U+{ord(char):04X}/{face_id[int(i)]:04d}.png"
            (root / relative).write_bytes(_png_bytes(stack[i, c]))
            rows.append(
                {
                    "label": ord(char),
                    "path": relative,
                    "split": "validation" if is_val else "train",
                    "is_query": True if is_val else None,
                    "is_gallery": True if is_val else None,
                    "category": character_category(char),
                }
            )
    df = pd.DataFrame(rows, columns=["label", "path", "split", "is_query", "is_gallery", "category"])
    df.to_csv(root / "df.csv", index=False, lineterminator="\n")

    sources = font_sources(sorted({faces[i].path for i in used}))
    manifest = {
        "generator": GENERATOR,
        "params": attrs.asdict(params) | {"characters": params.characters},
        "characters": [
            {
                "label": ord(char),
                "character": char,
                "category": character_category(char),
                "split": "validation" if char in val_chars else "train",
                "n_images": int(len(chosen[char])),
            }
            for char in characters
        ],
        "faces": [
            {
                "id": n,
                "family": faces[i].family,
                "style": faces[i].style,
                "file": str(faces[i].path),
                "face_index": faces[i].index,
                "package": sources[faces[i].path].package,
                "licence": sources[faces[i].path].licence,
                "sha256": _sha256(faces[i].path),
            }
            for n, i in enumerate(used)
        ],
        "left_out": sorted(left_out, key=lambda e: (str(e["file"]), int(str(e["face_index"])))),
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    reasons: dict[str, int] = {}
    for entry in left_out:
        reasons[str(entry["reason"])] = reasons.get(str(entry["reason"]), 0) + 1
    return FontsDatasetReport(
        root=root,
        n_images=len(df),
        train_characters="".join(c for c in characters if c not in val_chars),
        val_characters="".join(c for c in characters if c in val_chars),
        n_faces=len(used),
        left_out=dict(sorted(reasons.items())),
    )
