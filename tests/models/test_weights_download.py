"""Downloads: cache location, file:// URLs, sha256 verification, re-use, corruption, offline errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from oml_core.errors import OMLError
from oml_core.weights import (
    PLACEHOLDER_SHA256,
    ChecksumMismatchError,
    DownloadError,
    WeightsError,
    cache_dir,
    download,
    resolve_weights,
    sha256_file,
)
from oml_core.zoo import WeightsRegistry


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, str]:
    source = tmp_path / "server" / "weights-v1.pth"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * 4099)  # a bit over 1 MiB: more than one read chunk
    return source, hashlib.sha256(source.read_bytes()).hexdigest()


def test_cache_dir_follows_oml_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OML_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "oml"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "oml"
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_sha256_file_equals_hashlib(served: tuple[Path, str]) -> None:
    source, sha256 = served
    assert sha256_file(source) == sha256


def test_a_file_url_downloads_verifies_and_caches(
    cache: Path, served: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    source, sha256 = served
    path = download(source.as_uri(), sha256, name="demo")
    assert path.read_bytes() == source.read_bytes()
    assert path.is_relative_to(cache / "weights") and path.name == "weights-v1.pth"
    assert "Downloading weights-v1.pth" in capsys.readouterr().err  # the progress bar
    assert not list(path.parent.glob("*.part"))  # the temporary file was renamed
    source.unlink()  # the server is gone: the cached, verified copy is used
    assert download(source.as_uri(), sha256, name="demo") == path


def test_a_wrong_sha256_is_refused_and_the_file_removed(cache: Path, served: tuple[Path, str]) -> None:
    source, sha256 = served
    wrong = "f" * 64
    with pytest.raises(ChecksumMismatchError) as info:
        download(source.as_uri(), wrong, name="demo")
    message = str(info.value)
    assert sha256 in message and wrong in message and "deleted" in message and source.as_uri() in message
    assert [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"] == []  # the lock file stays


def test_a_corrupted_cache_entry_is_fetched_again(cache: Path, served: tuple[Path, str]) -> None:
    source, sha256 = served
    path = download(source.as_uri(), sha256)
    path.write_bytes(b"tampered")
    again = download(source.as_uri(), sha256)
    assert again == path and sha256_file(again) == sha256


def test_offline_error_names_the_url_and_how_to_pass_a_local_file(cache: Path) -> None:
    url = "http://127.0.0.1:9/dino_deitsmall16_pretrain.pth"  # the discard port: connection refused at once
    with pytest.raises(DownloadError) as info:
        download(url, "a" * 64, name="vits16_dino")
    message = str(info.value)
    assert url in message and "vits16_dino" in message and "local path" in message
    assert [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"] == []  # the lock file stays


def test_a_placeholder_sha256_refuses_before_downloading(cache: Path, served: tuple[Path, str]) -> None:
    source, _ = served
    with pytest.raises(WeightsError, match="no verified sha256"):
        download(source.as_uri(), PLACEHOLDER_SHA256, name="unsure")
    assert not cache.exists()


def test_the_registry_takes_a_full_sha256_or_an_md5_prefix_and_refuses_no_checksum() -> None:
    zoo = WeightsRegistry()
    with pytest.raises(OMLError, match="full 64-hex-digit sha256"):
        zoo.add("x", url="https://e/x.pth", sha256="cf0f22", arch="vits16", extractor="vit")
    with pytest.raises(OMLError, match="without a checksum"):
        zoo.add("y", url="https://e/y.pth", arch="vits16", extractor="vit")
    with pytest.raises(OMLError, match="6 to 32 hex digits"):
        zoo.add("y", url="https://e/y.pth", md5="cf0", arch="vits16", extractor="vit")
    zoo.add("z", url="https://e/z.pth", sha256="A" * 64, arch="vits16", extractor="vit")
    zoo.add("m", url="https://e/m.pth", md5="CF0F22", arch="vits16", extractor="vit")
    assert zoo.get("z").verified and zoo.get("z").sha256 == "a" * 64
    assert zoo.get("m").verified and zoo.get("m").md5 == "cf0f22" and zoo.get("m").sha256 is None


def test_resolve_weights_accepts_names_urls_and_paths(cache: Path, served: tuple[Path, str]) -> None:
    source, sha256 = served
    zoo = WeightsRegistry()
    zoo.add("served", url=source.as_uri(), sha256=sha256, arch="a", extractor="e")
    by_name, entry = resolve_weights("served", zoo=zoo, progress=False)
    assert entry is not None and entry.name == "served" and by_name.is_relative_to(cache)
    by_url, entry = resolve_weights(source.as_uri(), zoo=zoo, progress=False)
    assert by_url == by_name and entry is not None
    local, entry = resolve_weights(source, zoo=zoo)
    assert local == source and entry is None
    with pytest.raises(WeightsError, match="did you mean 'served'"):
        resolve_weights("serve", zoo=zoo)
    with pytest.raises(WeightsError, match="no installed plugin registered"):
        resolve_weights("https://example.org/x.pth", zoo=zoo)
