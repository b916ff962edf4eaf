"""``oml datasets fonts``: the dataset built from a folder of real font files (Debian packages installed by
``bash scripts/install_fonts.sh``), its filters, its determinism and its messages on bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from oml_datasets.fonts import MANIFEST_NAME, FontsDatasetParams, build_fonts_dataset
from PIL import Image

from oml_core.cli import main
from oml_core.data.dataframe import validate_dataframe
from oml_core.errors import OMLError

# from the packages of scripts/install_fonts.sh (without --full)
TEXT_FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Italic.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/opentype/urw-base35/NimbusSans-Regular.otf",
    "/usr/share/fonts/opentype/urw-base35/URWGothic-Book.otf",
]
DINGBATS = "/usr/share/fonts/opentype/urw-base35/D050000L.otf"
SAME_OUTLINES_AS_NIMBUS = "/usr/share/fonts/type1/urw-base35/NimbusSans-Regular.t1"


@pytest.fixture(scope="module")
def font_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    needed = [*TEXT_FONTS, DINGBATS, SAME_OUTLINES_AS_NIMBUS]
    missing = [path for path in needed if not Path(path).is_file()]
    assert not missing, f"font files missing: {missing}; install the test fonts with: bash scripts/install_fonts.sh"
    folder = tmp_path_factory.mktemp("fonts")
    for path in needed:
        shutil.copy(path, folder / Path(path).name)
    shutil.copy(TEXT_FONTS[0], folder / "ZZ-copy-of-DejaVuSans.ttf")
    (folder / "broken.ttf").write_bytes(b"\x00\x01\x00\x00" + b"not really a font" * 10)
    return folder


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(font_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("dataset")
    warnings: list[str] = []
    build_fonts_dataset(out, FontsDatasetParams(seed=3), font_dirs=[font_dir], warn=warnings.append)
    return out, warnings


def test_dataset_in_omls_format_split_by_identity(built: tuple[Path, list[str]]) -> None:
    root, _ = built
    df = pd.read_csv(root / "df.csv")
    report = validate_dataframe(df, dataset_root=root)
    assert report.ok and not report.warnings, str(report)
    assert list(df.columns) == ["label", "path", "split", "is_query", "is_gallery", "category"]
    assert df["label"].nunique() == 62 and set(df["label"]) == {ord(c) for c in "abcxyzABCXYZ0123456789"} | set(df["label"])
    train, val = set(df[df["split"] == "train"]["label"]), set(df[df["split"] == "validation"]["label"])
    assert not train & val and len(val) == 31
    assert df[df["split"] == "validation"][["is_query", "is_gallery"]].all().all()
    assert df.groupby("label").size().eq(len(TEXT_FONTS)).all()  # one image per distinct legible face
    assert set(df[df["label"] == ord("q")]["category"]) == {"lower"} and set(df[df["label"] == ord("7")]["category"]) == {"digit"}
    image = Image.open(root / df["path"].iloc[0])
    assert image.size == (32, 32) and image.mode == "L"


def test_manifest_lists_faces_used_and_left_out(built: tuple[Path, list[str]], font_dir: Path) -> None:
    root, warnings = built
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    families = {face["family"] for face in manifest["faces"]}
    assert {"DejaVu Sans", "DejaVu Serif", "Liberation Serif", "FreeSans", "Nimbus Sans"} <= families
    dejavu = next(face for face in manifest["faces"] if face["family"] == "DejaVu Sans")
    assert dejavu["file"] == str(font_dir / "DejaVuSans.ttf") and len(dejavu["sha256"]) == 64
    assert {c["character"] for c in manifest["characters"]} >= set("oO0lI1")
    reasons = {Path(entry["file"]).name: entry["reason"] for entry in manifest["left_out"]}
    details = {Path(entry["file"]).name: entry["detail"] for entry in manifest["left_out"]}
    assert reasons["broken.ttf"] == "unreadable"
    assert reasons["D050000L.otf"] == "illegible"  # a dingbat face: letters mapped to symbols
    assert reasons["ZZ-copy-of-DejaVuSans.ttf"] == "near-duplicate"
    assert details["ZZ-copy-of-DejaVuSans.ttf"] == f"of {font_dir / 'DejaVuSans.ttf'} (face 0)"
    duplicated = {"NimbusSans-Regular.otf", "NimbusSans-Regular.t1"} & set(reasons)
    assert len(duplicated) == 1 and reasons[duplicated.pop()] == "near-duplicate"  # same outlines, two formats
    assert len(manifest["left_out"]) == 4
    assert any("broken.ttf cannot be read" in w and "built from the other fonts" in w for w in warnings)


def test_glyphs_keep_baseline_and_case(built: tuple[Path, list[str]]) -> None:
    root, _ = built
    face = "0000.png"

    def ink(char: str) -> np.ndarray:
        return np.asarray(Image.open(root / "images" / f"U+{ord(char):04X}" / face)) < 128

    rows_o, rows_big_o, rows_p = (np.flatnonzero(ink(c).any(axis=1)) for c in "oOp")
    assert rows_big_o[0] < rows_o[0] and rows_o[-1] == pytest.approx(rows_big_o[-1], abs=1)  # same baseline, O taller
    assert rows_p[-1] > rows_o[-1] + 2  # the descender goes below the baseline


def test_same_fonts_give_byte_identical_output(font_dir: Path, built: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, _ = built
    build_fonts_dataset(tmp_path, FontsDatasetParams(seed=3), font_dirs=[font_dir], warn=lambda message: None)
    assert _digest(tmp_path) == _digest(root)


def test_options_size_characters_faces(font_dir: Path, tmp_path: Path) -> None:
    params = FontsDatasetParams(image_size=48, characters="aAbB01", faces_per_identity=3, val_fraction=0.5, seed=0)
    report = build_fonts_dataset(tmp_path, params, font_dirs=[font_dir], warn=lambda message: None)
    df = pd.read_csv(tmp_path / "df.csv")
    assert sorted(df["label"].unique()) == sorted(ord(c) for c in "aAbB01")
    assert df.groupby("label").size().eq(3).all() and report.n_images == 18
    assert len(report.val_characters) == 3 and Image.open(tmp_path / df["path"].iloc[0]).size == (48, 48)
    with pytest.raises(OMLError, match="exists already; pass --force"):
        build_fonts_dataset(tmp_path, params, font_dirs=[font_dir])
    build_fonts_dataset(tmp_path, params, font_dirs=[font_dir], force=True, warn=lambda message: None)


def test_character_no_font_draws_is_left_out_with_a_message(font_dir: Path, tmp_path: Path) -> None:
    warnings: list[str] = []
    rare = "\U0002fa1d"  # a CJK compatibility ideograph that none of these fonts has
    report = build_fonts_dataset(
        tmp_path, FontsDatasetParams(characters="abcd" + rare), font_dirs=[font_dir], warn=warnings.append
    )
    assert f"no installed font draws '{rare}' (U+2FA1D); left out of the dataset" in "\n".join(warnings)
    assert sorted(report.train_characters + report.val_characters) == list("abcd")
    assert report.n_faces >= len(TEXT_FONTS)  # no face dropped for lacking it


def test_no_fonts_and_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    assert main(["datasets", "fonts", str(tmp_path / "out"), "--font-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no font files (.otc, .otf, .pfa, .pfb, .t1, .ttc, .ttf) found" in err and "scripts/install_fonts.sh" in err
    assert "Traceback" not in err and not (tmp_path / "out" / "df.csv").exists()
    with pytest.raises(OMLError, match="image size must be a multiple of 16"):
        FontsDatasetParams(image_size=30)
    with pytest.raises(OMLError, match="characters must be visible"):
        FontsDatasetParams(characters="a b")


def test_cli_builds_and_reports(font_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    rc = main(["datasets", "fonts", str(out), "--font-dir", str(font_dir), "--faces-per-identity", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"fonts dataset in {out}: 124 images of 32x32 from" in captured.out
    assert "1 unreadable" in captured.out and "1 illegible" in captured.out and "2 near-duplicate" in captured.out
    assert "broken.ttf cannot be read" in captured.err


REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_quickstart_trains_fonts_best_on_a_fonts_dataset(font_dir: Path, tmp_path: Path) -> None:
    """The quickstart's path: build a fonts dataset, then `oml train configs/fonts_best.yaml` on it (shortened)."""
    from oml_core.pipelines.train import train

    data = tmp_path / "fonts_dataset"
    build_fonts_dataset(data, FontsDatasetParams(faces_per_identity=4), font_dirs=[font_dir], warn=lambda message: None)
    overrides = [
        f"data.dataframe={data / 'df.csv'}",
        f"data.dataset_root={data}",
        f"run_dir={tmp_path / 'runs'}",
        "epochs=2",
        "validation.every_n_epochs=2",
        "progress_bar=false",
        "loggers=[]",
    ]
    result = train(REPO / "configs" / "fonts_best.yaml", overrides=overrides)
    assert result.status == "completed" and result.steps == 4
    assert 0.0 <= result.metrics_after["OVERALL/cmc/1"] <= 1.0
