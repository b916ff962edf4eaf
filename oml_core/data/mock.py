"""A small image dataset generated locally and deterministically, in OML's format: no download.

Each label is an identity "colour x shape" (e.g. a red star); its instances vary in position, scale, rotation,
brightness, background (a random two-colour gradient with a few thin distractor lines) and noise. Validation
labels are identities never seen in training, made of shapes and colours that training does show, so that a
small CNN learns something that transfers, but not from one trivial cue.

Example:
    >>> import tempfile
    >>> df_train, df_val = download_mock_dataset(tempfile.mkdtemp(), n_labels=3, n_instances=2, im_size=32)
    >>> len(df_train), len(df_val), sorted(df_val.columns)[:3]
    (4, 2, ['is_gallery', 'is_query', 'label'])
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from oml_core.data.const import (
    BBOXES_COLUMNS,
    CATEGORIES_COLUMN,
    IS_GALLERY_COLUMN,
    IS_QUERY_COLUMN,
    LABELS_COLUMN,
    PATHS_COLUMN,
    SEQUENCE_COLUMN,
    SPLIT_COLUMN,
    TRAIN_SPLIT,
    VALIDATION_SPLIT,
)
from oml_core.data.dataframe import read_dataframe, split_dataframe
from oml_core.errors import OMLError

MOCK_DATASET_PATH = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oml" / "mock_dataset"
MOCK_DATAFRAMES = ("df.csv", "df_with_category.csv", "df_with_bboxes.csv", "df_with_sequence.csv")
MANIFEST_NAME = "mock_manifest.json"
_GENERATOR_VERSION = 3
_SUPERSAMPLING = 4
_MIN_CONTRAST = 80.0  # RGB distance between the shape's colour and any background colour

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 45),
    "blue": (35, 70, 220),
    "yellow": (235, 205, 30),
    "magenta": (205, 40, 195),
    "cyan": (30, 195, 205),
    "orange": (245, 130, 25),
    "purple": (115, 45, 170),
    "brown": (125, 80, 35),
    "pink": (250, 150, 185),
}
SHAPES = ("circle", "square", "triangle", "pentagon", "star", "cross", "diamond", "arrow", "ring", "crescent")
PATTERNS = ("plain", "striped", "dotted")
MAX_LABELS = len(COLOURS) * len(SHAPES) * len(PATTERNS)


@attrs.frozen(kw_only=True)
class MockDatasetParams:
    """What determines a mock dataset: the same values give byte-identical files."""

    n_labels: int = 36
    n_instances: int = 8
    im_size: int = 64
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if not 2 <= self.n_labels <= MAX_LABELS:
            raise OMLError(f"mock dataset: n_labels must be between 2 and {MAX_LABELS}, got {self.n_labels}")
        if not 2 <= self.n_instances <= 1000:
            raise OMLError(
                f"mock dataset: n_instances must be between 2 and 1000 (retrieval needs pairs), got {self.n_instances}"
            )
        if not 16 <= self.im_size <= 1024:
            raise OMLError(f"mock dataset: im_size must be between 16 and 1024 pixels, got {self.im_size}")

    @property
    def n_val_labels(self) -> int:
        """A third of the labels (at least one) are validation identities."""
        return max(1, self.n_labels // 3)

    @property
    def n_train_labels(self) -> int:
        return self.n_labels - self.n_val_labels


@attrs.frozen
class Identity:
    colour: str
    shape: str
    pattern: str

    @property
    def name(self) -> str:
        return "_".join([self.colour, self.shape] + ([] if self.pattern == "plain" else [self.pattern]))


def identities(seed: int) -> list[Identity]:
    """Every identity, in label order for ``seed``: all plain ones first (shuffled), then striped, then dotted, so
    that label ``i`` is the same identity whatever the number of labels.

    Example:
        >>> identities(0)[0] == identities(0)[0], len(identities(0)) == MAX_LABELS
        (True, True)
    """
    rng = np.random.default_rng([seed, 7919])
    ordered: list[Identity] = []
    for pattern in PATTERNS:
        block = [Identity(c, s, pattern) for s in SHAPES for c in COLOURS]
        ordered.extend(block[i] for i in rng.permutation(len(block)))
    return ordered


# ================================================================================================== drawing
def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _shape_polygons(shape: str) -> list[tuple[list[tuple[float, float]], int]]:
    """Polygons in unit coordinates (radius about 1), each with the value it paints: 255 adds, 0 cuts out."""
    if shape == "circle":
        return [(_regular(48), 255)]
    if shape == "square":
        return [(_regular(4, 1.0, math.pi / 4), 255)]
    if shape == "triangle":
        return [(_regular(3, 1.1), 255)]
    if shape == "pentagon":
        return [(_regular(5), 255)]
    if shape == "star":
        outer, inner = _regular(5, 1.1), _regular(5, 0.45, -math.pi / 2 + math.pi / 5)
        return [([p for pair in zip(outer, inner) for p in pair], 255)]
    if shape == "cross":
        a, b = 0.32, 1.0
        return [
            ([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)], 255)
        ]
    if shape == "diamond":
        return [([(0.0, -1.1), (0.55, 0.0), (0.0, 1.1), (-0.55, 0.0)], 255)]
    if shape == "arrow":
        return [([(-1.0, -0.28), (0.15, -0.28), (0.15, -0.7), (1.05, 0.0), (0.15, 0.7), (0.15, 0.28), (-1.0, 0.28)], 255)]
    if shape == "ring":
        return [(_regular(48), 255), (_regular(48, 0.55), 0)]
    if shape == "crescent":
        return [(_regular(48), 255), ([(x + 0.55, y - 0.15) for x, y in _regular(48, 0.85)], 0)]
    raise OMLError(f"unknown mock shape {shape!r}")


def _shape_mask(shape: str, size: int, centre: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of the shape, drawn at a higher resolution and averaged down."""
    big = size * _SUPERSAMPLING
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = centre[0] * _SUPERSAMPLING, centre[1] * _SUPERSAMPLING
    r = radius * _SUPERSAMPLING
    for polygon, value in _shape_polygons(shape):
        points = [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in polygon]
        draw.polygon(points, fill=value)
    small = mask.resize((size, size), resample=Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _pattern(pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Brightness multiplier of the shape's colour: stripes or dots for the non-plain identities."""
    if pattern == "plain":
        return np.ones((size, size), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = size / 8
    if pattern == "striped":
        angle = rng.uniform(0, math.pi)
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
        return np.where((phase % 1.0) < 0.5, 1.0, 0.45).astype(np.float32)
    dots = ((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2 < (period / 4) ** 2
    return np.where(dots, 0.4, 1.0).astype(np.float32)


def _background_colours(fill: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two background colours such that every colour of the gradient between them is at least
    ``_MIN_CONTRAST`` away from ``fill``: the shape stays visible, however the background is drawn."""
    for _ in range(100):
        start = rng.uniform(60, 200) + rng.uniform(-30, 30, 3)
        end = rng.uniform(60, 200) + rng.uniform(-30, 30, 3)
        along = end - start
        t = float(np.clip(np.dot(fill - start, along) / max(float(np.dot(along, along)), 1e-9), 0.0, 1.0))
        if np.linalg.norm(start + t * along - fill) >= _MIN_CONTRAST:
            return start, end
    grey = np.full(3, 40.0 if fill.mean() > 128 else 215.0)  # practically never reached
    return grey, grey


def render_instance(identity: Identity, size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One image ``(size, size, 3)`` uint8 of ``identity`` and the box ``(x1, y1, x2, y2)`` around the shape.

    Example:
        >>> image, box = render_instance(Identity("red", "star", "plain"), 32, np.random.default_rng(0))
        >>> image.shape, image.dtype, 0 <= box[0] < box[2] <= 32
        ((32, 32, 3), dtype('uint8'), True)
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    fill = np.clip(np.asarray(COLOURS[identity.colour], dtype=np.float64) * rng.uniform(0.9, 1.08), 0, 255)
    # background: a gradient between two muted random colours, none of it close to the shape's colour
    start, end = _background_colours(fill, rng)
    direction = rng.uniform(0, 2 * math.pi)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(direction) + (yy - 0.5) * math.sin(direction), 0, 1)[..., None]
    canvas = (start * (1 - t) + end * t).astype(np.float32)
    # distractors: thin lines of random colours
    lines = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(lines)
    for _ in range(int(rng.integers(0, 4))):
        ends = [tuple(float(v) for v in rng.uniform(0, size, 2)) for _ in range(2)]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.line(ends, fill=(*colour, int(rng.integers(90, 200))), width=max(1, size // 40))
    overlay = np.asarray(lines, dtype=np.float32)
    alpha = overlay[..., 3:4] / 255.0
    canvas = canvas * (1 - alpha) + overlay[..., :3] * alpha
    # the shape
    radius = rng.uniform(0.2, 0.36) * size
    margin = radius * 0.9
    centre = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin, size - margin)))
    mask = _shape_mask(identity.shape, size, centre, radius, float(rng.uniform(0, 2 * math.pi)))
    shade = _pattern(identity.pattern, size, rng)[..., None]
    canvas = canvas * (1 - mask[..., None]) + fill * shade * mask[..., None]
    canvas += rng.normal(0.0, rng.uniform(3.0, 9.0), canvas.shape)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(mask > 0.25)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return image, box


# ================================================================================================== writing
def generate_mock_dataset(
    dataset_root: str | os.PathLike[str],
    *,
    n_labels: int = 36,
    n_instances: int = 8,
    im_size: int = 64,
    seed: int = 0,
    force: bool = False,
    check_md5: bool = True,
) -> Path:
    """Write the mock dataset into ``dataset_root`` (images and the dataframes of ``MOCK_DATAFRAMES``) unless it is
    already there with the same parameters (and, with ``check_md5``, intact files); return the folder.

    Example:
        >>> import tempfile
        >>> root = generate_mock_dataset(tempfile.mkdtemp(), n_labels=2, n_instances=2, im_size=16)
        >>> sorted(p.name for p in root.glob("*.csv"))
        ['df.csv', 'df_with_bboxes.csv', 'df_with_category.csv', 'df_with_sequence.csv']
    """
    params = MockDatasetParams(n_labels=n_labels, n_instances=n_instances, im_size=im_size, seed=seed)
    root = Path(dataset_root)
    if not force and _is_generated(root, params, check_md5=check_md5):
        return root
    if root.exists() and not root.is_dir():
        raise OMLError(f"cannot write the mock dataset into {root}: it is a file, not a folder; give a folder's path")
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST_NAME
    manifest_path.unlink(missing_ok=True)  # written last: a missing manifest means "generate again"

    rows: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    chosen = identities(seed)[:n_labels]
    splits = [TRAIN_SPLIT if label < params.n_train_labels else VALIDATION_SPLIT for label in range(n_labels)]
    categories = mock_categories([(split, identity.shape) for split, identity in zip(splits, chosen)])
    for label, (split, identity) in enumerate(zip(splits, chosen)):
        folder = root / "images" / f"{label:03d}_{identity.name}"
        folder.mkdir(parents=True, exist_ok=True)
        for instance in range(n_instances):
            rng = np.random.default_rng([seed, label, instance])
            pixels, box = render_instance(identity, im_size, rng)
            relative = f"images/{folder.name}/{instance:02d}.png"
            Image.fromarray(pixels).save(root / relative, format="PNG")
            files[relative] = _sha256(root / relative)
            is_val = split == VALIDATION_SPLIT
            rows.append(
                {
                    LABELS_COLUMN: label,
                    PATHS_COLUMN: relative,
                    SPLIT_COLUMN: split,
                    IS_QUERY_COLUMN: True if is_val else None,
                    IS_GALLERY_COLUMN: True if is_val else None,
                    CATEGORIES_COLUMN: categories[label],
                    SEQUENCE_COLUMN: f"seq_{label:03d}_{instance // 2}",
                    # every fourth instance has no box: rows without one use the whole image
                    **dict(zip(BBOXES_COLUMNS, (None,) * 4 if instance % 4 == 3 else box)),
                }
            )
    full = pd.DataFrame(rows)
    base = [LABELS_COLUMN, PATHS_COLUMN, SPLIT_COLUMN, IS_QUERY_COLUMN, IS_GALLERY_COLUMN]
    variants = {
        "df.csv": base,
        "df_with_category.csv": [*base, CATEGORIES_COLUMN],
        "df_with_bboxes.csv": [*base, *BBOXES_COLUMNS],
        "df_with_sequence.csv": [*base, SEQUENCE_COLUMN],
    }
    for name, columns in variants.items():
        full[columns].to_csv(root / name, index=False)
        files[name] = _sha256(root / name)
    manifest = {"generator": "oml_core.data.mock", "version": _GENERATOR_VERSION, "params": attrs.asdict(params), "files": files}
    temporary = manifest_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(temporary, manifest_path)
    return root


def mock_categories(labels: list[tuple[str, str]]) -> list[str]:
    """The category of each label (given as ``(split, shape)``): its shape, except that within a split a shape held by
    a single label is not a category of its own (OML's category samplers need at least two labels per category):
    such labels form the category ``mixed``, or join the largest category when there is only one of them.

    Example:
        >>> mock_categories([("train", "star"), ("train", "star"), ("train", "ring"), ("validation", "ring")])
        ['star', 'star', 'star', 'ring']
    """
    result = [shape for _, shape in labels]
    for split in dict.fromkeys(split for split, _ in labels):
        members: dict[str, list[int]] = {}
        for i, (s, shape) in enumerate(labels):
            if s == split:
                members.setdefault(shape, []).append(i)
        lone = [ids[0] for ids in members.values() if len(ids) == 1]
        groups = {shape: ids for shape, ids in members.items() if len(ids) > 1}
        if len(lone) == 1 and groups:
            largest = max(groups, key=lambda shape: len(groups[shape]))
            result[lone[0]] = largest
        elif len(lone) > 1:
            for i in lone:
                result[i] = "mixed"
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_generated(root: Path, params: MockDatasetParams, *, check_md5: bool) -> bool:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("version") != _GENERATOR_VERSION or manifest.get("params") != attrs.asdict(params):
        return False
    files: dict[str, str] = manifest.get("files", {})
    for relative, digest in files.items():
        path = root / relative
        if not path.is_file() or (check_md5 and _sha256(path) != digest):
            return False
    return bool(files)


def download_mock_dataset(
    dataset_root: str | os.PathLike[str] = MOCK_DATASET_PATH,
    *,
    df_name: str = "df.csv",
    check_md5: bool = True,
    global_paths: bool = False,
    n_labels: int = 36,
    n_instances: int = 8,
    im_size: int = 64,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the mock dataset into ``dataset_root`` (or reuse it if it is there already) and return
    ``(df_train, df_val)`` read from ``df_name`` (one of ``MOCK_DATAFRAMES``). Nothing is downloaded: the name
    is OML's. Paths are relative to ``dataset_root`` unless ``global_paths=True``; ``check_md5`` re-hashes the
    files of an existing copy and regenerates it if any changed.

    The default (36 labels: 24 train, 12 validation; 8 instances; 64x64) suits a CPU demo; pass larger values
    for more.

    Example:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> df_train, df_val = download_mock_dataset(root, n_labels=6, n_instances=2, im_size=16)
        >>> df_train["label"].nunique(), df_val["label"].nunique(), bool(df_val["is_query"].all())
        (4, 2, True)
    """
    if df_name not in MOCK_DATAFRAMES:
        raise OMLError(f"the mock dataset has no dataframe {df_name!r}; choose one of {', '.join(MOCK_DATAFRAMES)}")
    root = generate_mock_dataset(
        dataset_root, n_labels=n_labels, n_instances=n_instances, im_size=im_size, seed=seed, check_md5=check_md5
    )
    df = read_dataframe(root / df_name)
    if global_paths:
        df[PATHS_COLUMN] = [str(root / p) for p in df[PATHS_COLUMN]]
    df_train, df_val = split_dataframe(df)
    return df_train.reset_index(drop=True), df_val.reset_index(drop=True)  # as OML returns them


def get_mock_images_dataset(
    dataset_root: str | os.PathLike[str] | None = None,
    df_name: str = "df.csv",
    check_md5: bool = True,
    global_paths: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """OML 4's name and call shape for :func:`download_mock_dataset` with its default size: ``(df_train, df_val)``
    of ``df_name`` (``df.csv``, ``df_with_category.csv``, ``df_with_bboxes.csv`` or ``df_with_sequence.csv``),
    generated into ``dataset_root`` (default: ``MOCK_DATASET_PATH``) unless a mock dataset was generated there
    already (of any size: it is used as it is). Every category of ``df_with_category.csv`` has
    at least two labels in each split, as OML's category samplers need.

    Example:
        >>> df_train, df_val = get_mock_images_dataset(global_paths=True)   # doctest: +SKIP
    """
    root = Path(dataset_root if dataset_root is not None else MOCK_DATASET_PATH)
    # like OML's download, a mock dataset already there is used as it is (whatever size it was generated with)
    params = _manifest_params(root) or {}
    return download_mock_dataset(root, df_name=df_name, check_md5=check_md5, global_paths=global_paths, **params)


def _manifest_params(root: Path) -> dict[str, int] | None:
    try:
        params = json.loads((root / MANIFEST_NAME).read_text())["params"]
        return {key: int(params[key]) for key in ("n_labels", "n_instances", "im_size", "seed")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


__all__ = [
    "COLOURS",
    "MAX_LABELS",
    "MOCK_DATAFRAMES",
    "MOCK_DATASET_PATH",
    "SHAPES",
    "Identity",
    "MockDatasetParams",
    "download_mock_dataset",
    "generate_mock_dataset",
    "get_mock_images_dataset",
    "identities",
    "mock_categories",
    "render_instance",
]
