"""Downloads users can rely on, against a local HTTP server on 127.0.0.1 that sends good, wrong, truncated and slow
content: md5-prefix verification with the sha256 recorded afterwards, resume, atomic rename, the inter-process lock,
OML_OFFLINE, a mirror base URL, and a file copied into the cache by hand."""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oml_core.downloads import ChecksumMismatchError, DownloadError, fetch, sha256_file, weights_dir

PAYLOAD = bytes(range(256)) * 8192  # 2 MiB: more than one read chunk
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5_PREFIX = hashlib.md5(PAYLOAD).hexdigest()[:6]  # noqa: S324 - what OML's zoo publishes


class _Server:
    """A tiny HTTP server: ``mode`` decides what GET /weights.pth sends; Range requests are honoured."""

    def __init__(self) -> None:
        self.mode = "good"
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                server.requests.append((self.path, self.headers.get("Range")))
                if not self.path.endswith("/weights.pth"):
                    self.send_error(404)
                    return
                body, start = PAYLOAD, 0
                range_header = self.headers.get("Range")
                if range_header and server.mode != "no-range":
                    start = int(range_header.split("=")[1].split("-")[0])
                if server.mode == "wrong":
                    body = b"x" * len(PAYLOAD)
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if server.mode == "truncated-once":
                    server.mode = "good"
                    self.wfile.write(chunk[: len(chunk) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                if server.mode == "slow":
                    self.wfile.write(chunk[:1000])
                    self.wfile.flush()
                    time.sleep(3)
                    return
                self.wfile.write(chunk)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.base}/files/weights.pth"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    served = _Server()
    yield served
    served.close()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OML_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OML_OFFLINE", "OML_WEIGHTS_BASE_URL", "OML_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def test_http_download_verified_by_an_md5_prefix_records_and_prints_the_sha256(
    server: _Server, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fetch([server.url], "w.ckpt", md5=MD5_PREFIX, name="demo", progress=False)
    assert path == weights_dir() / "w.ckpt" and path.read_bytes() == PAYLOAD
    marker = path.with_name("w.ckpt.sha256")
    assert marker.read_text().split()[0] == SHA256
    assert SHA256 in capsys.readouterr().err
    assert not list(path.parent.glob("*.part"))
    # the file changes later (same md5 prefix is irrelevant: the recorded sha256 is what counts now)
    path.write_bytes(PAYLOAD[:-1] + b"\x00")
    server.close()
    with pytest.raises(DownloadError):  # the changed copy is refused and deleted; the server is gone
        fetch([server.url], "w.ckpt", md5=MD5_PREFIX, name="demo", progress=False)
    assert not path.exists()


def test_wrong_content_is_refused_and_deleted(server: _Server) -> None:
    server.mode = "wrong"
    with pytest.raises(ChecksumMismatchError) as info:
        fetch([server.url], "w.ckpt", sha256=SHA256, name="demo", progress=False)
    assert SHA256 in str(info.value) and "deleted" in str(info.value)
    assert [p.name for p in weights_dir().iterdir() if not p.name.endswith(".lock")] == []
    with pytest.raises(ChecksumMismatchError, match="md5"):
        fetch([server.url], "w.ckpt", md5=MD5_PREFIX, progress=False)


def test_a_truncated_transfer_is_resumed_with_a_range_request(server: _Server) -> None:
    server.mode = "truncated-once"
    path = fetch([server.url], "w.ckpt", sha256=SHA256, progress=False)
    assert sha256_file(path) == SHA256
    ranges = [r for _, r in server.requests]
    assert ranges[0] is None and ranges[1] is not None and int(ranges[1].split("=")[1].rstrip("-")) > 0


def test_a_partial_file_left_by_an_earlier_run_is_resumed(server: _Server) -> None:
    part = weights_dir() / "w.ckpt.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(PAYLOAD[:12345])
    path = fetch([server.url], "w.ckpt", sha256=SHA256, progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests == [("/files/weights.pth", "bytes=12345-")]


def test_a_server_ignoring_ranges_restarts_from_zero(server: _Server) -> None:
    server.mode = "no-range"
    part = weights_dir() / "w.ckpt.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"garbage" * 100)
    assert fetch([server.url], "w.ckpt", sha256=SHA256, progress=False).read_bytes() == PAYLOAD


def test_a_stalled_server_times_out_keeps_the_partial_file_and_says_so(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.mode = "slow"
    monkeypatch.setenv("OML_DOWNLOAD_TIMEOUT", "0.5")
    with pytest.raises(DownloadError) as info:
        fetch([server.url], "w.ckpt", sha256=SHA256, progress=False)
    message = str(info.value)
    assert "interrupted" in message and "run again to resume" in message
    # three attempts, each resumed where the previous one stalled, each received 1000 bytes
    assert [r for _, r in server.requests] == [None, "bytes=1000-", "bytes=2000-"]
    assert (weights_dir() / "w.ckpt.part").stat().st_size == 3000
    server.mode = "good"
    assert fetch([server.url], "w.ckpt", sha256=SHA256, progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=3000-"


def test_offline_mode_uses_a_file_copied_by_hand_and_explains_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OML_OFFLINE", "1")
    with pytest.raises(DownloadError) as info:
        fetch(["http://127.0.0.1:9/w.pth"], "w.ckpt", md5=MD5_PREFIX, name="demo", progress=False)
    message = str(info.value)
    assert "OML_OFFLINE=1" in message and str(weights_dir() / "w.ckpt") in message and "http://127.0.0.1:9/w.pth" in message
    (weights_dir() / "w.ckpt").write_bytes(PAYLOAD)  # copied by hand
    path = fetch(["http://127.0.0.1:9/w.pth"], "w.ckpt", md5=MD5_PREFIX, name="demo", progress=False)
    assert path.read_bytes() == PAYLOAD and path.with_name("w.ckpt.sha256").read_text().split()[0] == SHA256


def test_a_mirror_base_url_replaces_the_published_urls(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OML_WEIGHTS_BASE_URL", f"{server.base}/mirror/")
    # the entry's own URL is unreachable; the mirror serves the file under its cache name
    path = fetch(["http://127.0.0.1:9/x.pth"], "weights.pth", sha256=SHA256, progress=False)
    assert path.read_bytes() == PAYLOAD and server.requests == [("/mirror/weights.pth", None)]


def test_file_urls_are_served_too(tmp_path: Path) -> None:
    source = tmp_path / "served.pth"
    source.write_bytes(PAYLOAD)
    assert fetch([source.as_uri()], "s.ckpt", md5=MD5_PREFIX, progress=False).read_bytes() == PAYLOAD


def _fetch_in_process(url: str, cache: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import os

    os.environ["OML_CACHE_DIR"] = cache
    queue.put(str(fetch([url], "w.ckpt", sha256=SHA256, progress=False)))


def test_two_processes_download_the_file_once(server: _Server, cache: Path) -> None:
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    workers = [context.Process(target=_fetch_in_process, args=(server.url, str(cache), queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert queue.get() == queue.get() == str(weights_dir() / "w.ckpt")
    assert len(server.requests) == 1  # the second process waited on the lock and found the verified file
