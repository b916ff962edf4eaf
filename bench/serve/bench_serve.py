"""Load test of ``oml serve`` on 127.0.0.1: a fixed number of requests from N concurrent clients.

For each store (SQLite, FAISS flat) a gallery of ``--gallery`` vectors is written, ``oml serve`` is started on a free
local port, and ``--requests`` POST /search requests (uploaded images: embedding + search) are sent by ``--clients``
threads with keep-alive connections. Reported: p50 / p99 latency seen by the clients, QPS, and the server's own split
of each request's time between embedding the query and searching the store (``timing_ms`` of the answers).

    .venv/bin/python bench/serve/bench_serve.py                                   # tiny trained run, 20k gallery
    .venv/bin/python bench/serve/bench_serve.py --arch resnet18 --im-size 224 --requests 200   # a ResNet-18 run
    .venv/bin/python bench/serve/bench_serve.py --run runs/mock-train-... --gallery 100000 --requests 2000

Only 127.0.0.1 is contacted; every loop is bounded by the request count and a per-request timeout.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _multipart(image: bytes, k: int) -> tuple[bytes, str]:
    boundary = "omlbenchboundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{k}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.png\"\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _fill(store_url: str, run_dir: Path, n: int, seed: int = 0, options: dict[str, Any] | None = None) -> None:
    """A gallery of ``n`` clustered vectors (the search cost does not depend on what they encode)."""
    from oml_serve.plugin import build_service

    from oml_core import Host

    service = build_service(Host(), store_url, run_dir, create=True, store_options=options)
    try:
        rng = np.random.default_rng(seed)
        dim = service.dim
        centres = rng.standard_normal((max(1, n // 50), dim)).astype(np.float32)
        batch = 10_000
        for start in range(0, n, batch):
            size = min(batch, n - start)
            x = centres[rng.integers(0, len(centres), size)] + 0.1 * rng.standard_normal((size, dim)).astype(np.float32)
            service.add(list(range(start, start + size)), x, [{"label": int(i % 97)} for i in range(start, start + size)])
    finally:
        service.store.close()


def _images(count: int, size: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(1)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def load(port: int, images: list[bytes], requests: int, clients: int, k: int) -> dict[str, Any]:
    latencies: list[float] = []
    embed_ms: list[float] = []
    search_ms: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        nonlocal errors
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                body, content_type = _multipart(images[index % len(images)], k)
                started = time.perf_counter()
                connection.request("POST", "/search", body=body, headers={"Content-Type": content_type})
                answer = connection.getresponse()
                data = answer.read()
                elapsed = time.perf_counter() - started
                with lock:
                    if answer.status != 200:
                        errors += 1
                        continue
                    timing = json.loads(data)["timing_ms"]
                    latencies.append(elapsed)
                    embed_ms.append(timing["embed"])
                    search_ms.append(timing["search"])
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1e3
    return {
        "requests": requests, "errors": errors, "clients": clients, "qps": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
        "embed_ms_mean": float(np.mean(embed_ms)), "search_ms_mean": float(np.mean(search_ms)),
    }


def serve(store_url: str, run_dir: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "oml_core.cli", "serve", "--store", store_url, "--run", str(run_dir), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"oml serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit("oml serve did not start within 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="a run directory (default: train a tiny one on mock data)")
    parser.add_argument("--gallery", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--stores", default="sqlite,sqlite_binary,faiss")
    parser.add_argument(
        "--arch", default=None, help="train the run's extractor as this ResNet (e.g. resnet18) at --im-size, not a small CNN"
    )
    parser.add_argument("--im-size", type=int, default=32)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="oml-bench-serve-"))
    if args.run is None:
        from oml_core.testing.runs import make_tiny_run

        extractor = {"type": "resnet", "arch": args.arch, "weights": None} if args.arch else None
        run_dir, _ = make_tiny_run(work / "run", extractor=extractor, im_size=args.im_size)
    else:
        run_dir = Path(args.run)
    from oml_core.runs import load_run

    im_size = load_run(run_dir).im_size
    images = _images(32, im_size)
    print(f"# oml serve load test: {args.requests} image searches, {args.clients} clients, k={args.k}, gallery "
          f"{args.gallery}, run {run_dir.name} (im_size {im_size}); {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    urls = {
        "sqlite": f"sqlite:///{work / 'gallery.db'}",
        "sqlite_binary": f"sqlite:///{work / 'gallery-binary.db'}",  # binary codes + re-scoring (saved: reopened so)
        "faiss": f"faiss://{work / 'gallery.faiss'}",
    }
    options = {"sqlite_binary": {"quantize": "binary"}}
    rows = []
    for name in args.stores.split(","):
        _fill(urls[name], run_dir, args.gallery, options=options.get(name))
        port = _free_port()
        process = serve(urls[name], run_dir, port)
        try:
            load(port, images, min(20, args.requests), args.clients, args.k)  # warm-up
            row = {"store": name, **load(port, images, args.requests, args.clients, args.k)}
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(f"| store (gallery {args.gallery:,}) | clients | requests | errors | QPS | p50 ms | p99 ms | embed ms (mean) | "
          "search ms (mean) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['store']} | {r['clients']} | {r['requests']} | {r['errors']} | {r['qps']:.1f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} | {r['embed_ms_mean']:.1f} | {r['search_ms_mean']:.1f} |")


if __name__ == "__main__":
    main()
