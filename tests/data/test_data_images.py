"""Image reading: RGB whatever the mode, EXIF orientation, errors naming file and row, opt-in skipping."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from oml_core.data import DatasetWithLabels, ImageReadError, read_image
from oml_core.data.images import BytesCache, image_size
from oml_core.data.transforms import ToTensor


def _png_bytes(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def test_grayscale_becomes_rgb_with_equal_channels() -> None:
    image = read_image(_png_bytes(Image.fromarray(np.array([[0, 100], [200, 255]], dtype=np.uint8))))
    assert image.mode == "RGB"
    assert np.asarray(image)[:, :, 0].tolist() == [[0, 100], [200, 255]]
    assert (np.asarray(image) == np.asarray(image)[:, :, :1]).all()


def test_bilevel_and_cmyk_become_rgb() -> None:
    assert read_image(_png_bytes(Image.new("1", (2, 2), 1))).getpixel((0, 0)) == (255, 255, 255)
    buffer = io.BytesIO()
    Image.new("CMYK", (2, 2), (0, 0, 0, 0)).save(buffer, format="JPEG")
    assert read_image(buffer.getvalue()).getpixel((1, 1)) == pytest.approx((255, 255, 255), abs=2)


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257 * 10], [32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    image = read_image(_png_bytes(Image.fromarray(values)))
    assert image.mode == "RGB"
    assert np.asarray(image)[:, :, 1].tolist() == [[0, 10], [128, 255]]


def test_float_image_in_unit_range_is_scaled() -> None:
    values = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="TIFF")
    assert np.asarray(read_image(buffer.getvalue()))[:, :, 2].tolist() == [[0, 128], [255, 64]]


def test_transparency_goes_on_white() -> None:
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 255, 0))
    image = read_image(_png_bytes(rgba))
    assert image.getpixel((0, 0)) == (255, 0, 0) and image.getpixel((1, 0)) == (255, 255, 255)
    half = read_image(_png_bytes(Image.new("LA", (1, 1), (0, 128))))
    assert half.getpixel((0, 0)) == pytest.approx((127, 127, 127), abs=1)


def test_palette_with_and_without_transparency() -> None:
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    assert read_image(_png_bytes(palette)).getpixel((1, 0)) == (0, 255, 0)
    assert read_image(_png_bytes(palette, transparency=1)).getpixel((1, 0)) == (255, 255, 255)
    assert read_image(_png_bytes(palette, transparency=1)).getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize(("orientation", "red_at"), [(1, (0, 0)), (3, (3, 1)), (6, (1, 0)), (8, (0, 3))])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, red_at: tuple[int, int]) -> None:
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = orientation
    target = tmp_path / "o.png"
    image.save(target, exif=exif)
    out = read_image(target)
    expected_size = (2, 4) if orientation in (6, 8) else (4, 2)
    assert out.size == expected_size == image_size(target)
    red = np.argwhere(np.asarray(out)[:, :, 0] > 128)
    assert [tuple(int(v) for v in red[0][::-1])] == [red_at] and len(red) == 1


def test_missing_file_names_file_and_row(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "nope.png", row=12)
    message = str(info.value)
    assert "nope.png" in message and "row 12" in message and "does not exist" in message
    assert "skip_unreadable=True" in message


@pytest.mark.parametrize("content", [b"not an image at all", _png_bytes(Image.new("RGB", (64, 64), "red"))[:80]])
def test_corrupt_or_truncated_file_names_file_and_row(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "bad.png"
    target.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(target, row="r7")
    assert str(target) in str(info.value) and "row r7" in str(info.value)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)


def _dataset_with_a_corrupt_row(image_root: Path, good_df: pd.DataFrame) -> pd.DataFrame:
    (image_root / "img" / "2.png").write_bytes(b"garbage")
    return good_df.iloc[:4].assign(path=["img/0.png", "img/1.png", "img/2.png", "img/3.png"], label=[0, 0, 1, 1])


def test_dataset_raises_with_file_and_row_by_default(image_root: Path, good_df: pd.DataFrame) -> None:
    df = _dataset_with_a_corrupt_row(image_root, good_df).set_axis([10, 11, 12, 13])
    dataset = DatasetWithLabels(df, dataset_root=image_root, transform=ToTensor())
    assert dataset[1]["labels"] == 0
    with pytest.raises(ImageReadError) as info:
        dataset[2]
    assert "2.png" in str(info.value) and "row 12" in str(info.value)


def test_skip_mode_drops_unreadable_rows_with_one_warning(image_root: Path, good_df: pd.DataFrame) -> None:
    df = _dataset_with_a_corrupt_row(image_root, good_df)
    (image_root / "img" / "3.png").unlink()
    embeddings = torch.arange(4).float()[:, None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = DatasetWithLabels(
            df, dataset_root=image_root, transform=ToTensor(), skip_unreadable=True, extra_data={"embeddings": embeddings}
        )
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "skipping 2 unreadable image(s)" in messages[0] and "row 2" in messages[0] and "row 3" in messages[0]
    assert len(dataset) == 2
    assert dataset.get_labels().tolist() == [0, 0]
    assert [dataset[i]["embeddings"].item() for i in range(2)] == [0.0, 1.0]
    assert dataset.df["path"].tolist() == [str(image_root / "img" / f"{i}.png") for i in range(2)]


def test_bytes_cache_is_least_recently_used() -> None:
    cache = BytesCache(maxsize=2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # a is now the most recent
    cache.put("c", b"3")
    assert cache.get("b") is None and cache.get("a") == b"1" and cache.get("c") == b"3"
    assert len(cache) == 2
