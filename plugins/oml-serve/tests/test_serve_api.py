"""The HTTP API of ``oml serve`` (in-process, through FastAPI's TestClient): answers, limits, auth, concurrency."""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from oml_serve.app import create_app
from oml_serve.plugin import build_service
from oml_serve.service import Limits
from oml_serve.testing import fill_store
from PIL import Image

from oml_core import Host


def _png(color=(200, 30, 30), size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["sqlite", "faiss"])
def service(request, served_run, tmp_path):
    url = f"sqlite:///{tmp_path / 'gallery.db'}" if request.param == "sqlite" else f"faiss://{tmp_path / 'gallery.faiss'}"
    svc = build_service(
        Host(),
        url,
        served_run["run_dir"],
        create=True,
        upload_dir=served_run["root"] / f"uploads-{tmp_path.name}",
        limits=Limits(max_upload_bytes=200_000, max_pixels=500 * 500),
    )
    fill_store(svc, served_run["root"], served_run["val"])
    yield svc
    svc.store.close()


@pytest.fixture
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def test_search_by_image_returns_top_k_with_metadata_distances_and_verdicts(client, served_run):
    row = served_run["val"].iloc[3]
    data = (served_run["root"] / row["path"]).read_bytes()
    r = client.post("/search", files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["k"] == 4 and body["threshold"] == served_run["calibration"]["threshold"]
    matches = body["matches"]
    assert len(matches) == 4
    # the query's own stored copy comes first, at distance 0, judged the same identity
    assert matches[0]["id"] == 3 and matches[0]["distance"] == pytest.approx(0.0, abs=1e-3)
    assert matches[0]["same"] is True and matches[0]["metadata"]["label"] == int(row["label"])
    distances = [m["distance"] for m in matches]
    assert distances == sorted(distances)
    assert all(m["same"] == (m["distance"] < body["threshold"]) for m in matches)
    assert all(m["image"] == f"/images/{m['id']}" for m in matches)
    assert body["timing_ms"]["embed"] > 0 and body["timing_ms"]["search"] > 0


def test_search_by_vector_and_its_errors(client, service):
    vector = service.store.get([5])[0][0].tolist()
    r = client.post("/search", json={"vector": vector, "k": 2})
    assert r.status_code == 200 and r.json()["matches"][0]["id"] == 5
    assert r.json()["matches"][0]["distance"] == 0.0  # never -0.0
    bad = {
        "wrong size": ({"vector": vector[:-1]}, 400, f"must have {service.dim} numbers"),
        "not numbers": ({"vector": ["a"] * service.dim}, 400, "list of"),
        "nan": ({"vector": [float("nan")] * service.dim}, 400, "finite"),
        "k too large": ({"vector": vector, "k": 1000}, 400, "k must be between 1 and"),
        "k not int": ({"vector": vector, "k": "x"}, 400, "k must be an integer"),
        "no vector": ({"k": 3}, 400, "'vector'"),
    }
    for name, (payload, status, message) in bad.items():
        r = client.post("/search", content=json.dumps(payload, allow_nan=True), headers={"content-type": "application/json"})
        assert r.status_code == status, name
        assert message in r.json()["detail"], (name, r.json())
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post("/search", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_malformed_uploads_get_clear_4xx(client):
    cases = {
        "not an image": (b"this is text, not a picture", 400, "not an image"),
        "empty": (b"", 400, "empty"),
        "too many pixels": (_png(size=(600, 600)), 413, "pixels"),
        "too many bytes": (np.random.default_rng(0).bytes(300_000), 413, "limit"),
        "truncated": (_png()[:60], 400, "image"),
    }
    for name, (data, status, message) in cases.items():
        r = client.post("/search", files={"image": ("x.png", data, "image/png")})
        assert r.status_code == status, (name, r.status_code, r.text)
        assert message in r.json()["detail"], (name, r.json())
        assert "Traceback" not in r.text
    r = client.post("/search", files={"other": ("x.png", _png(), "image/png")})
    assert r.status_code == 400 and "'image'" in r.json()["detail"]
    r = client.post("/search", content=b"--zzz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zzz"})
    assert 400 <= r.status_code < 500


def test_add_delete_and_unknown_ids(client, service):
    before = service.count()
    r = client.post("/items", files=[("images", ("new.png", _png((1, 2, 3)), "image/png"))], data={"metadata": '{"label": 77}'})
    assert r.status_code == 201, r.text
    (new_id,) = r.json()["added"]
    assert r.json()["store_items"] == before + 1
    assert client.get(f"/items/{new_id}").json()["metadata"]["label"] == 77
    assert client.get(f"/images/{new_id}").status_code == 200  # kept in the upload folder, inside the dataset root
    # the same image again: the same (content) id, refused rather than stored twice
    r = client.post("/items", files=[("images", ("again.png", _png((1, 2, 3)), "image/png"))])
    assert r.status_code == 409 and "already stored" in r.json()["detail"]
    r = client.post("/items", json={"items": [{"id": 10**6, "vector": [0.5] * service.dim, "metadata": {"label": 1}}]})
    assert r.status_code == 201
    r = client.post("/items", json={"items": [{"id": 10**6 + 1, "vector": [0.5] * (service.dim + 1)}]})
    assert r.status_code == 400 and f"{service.dim} numbers" in r.json()["detail"]
    r = client.post("/items", json={"items": [{"id": -4, "vector": [0.5] * service.dim}]})
    assert r.status_code == 400 and "non-negative" in r.json()["detail"]
    r = client.post("/items", files=[("images", ("a.png", _png((9, 9, 9)), "image/png"))], data={"ids": "1,2"})
    assert r.status_code == 400 and "2 ids for 1 images" in r.json()["detail"]
    assert client.delete(f"/items/{new_id}").status_code == 200
    assert client.delete(f"/items/{new_id}").status_code == 404
    assert client.get("/items/123456789").status_code == 404
    r = client.delete("/items/not-a-number")
    assert r.status_code == 422 and "malformed request" in r.json()["detail"]
    assert service.count() == before + 1


def test_thumbnails_only_from_inside_the_dataset_root(client, service, tmp_path):
    assert client.get("/images/0").headers["content-type"].startswith("image/")
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png())
    service.add([555_555], service.store.get([0])[0], [{"path": str(outside)}])
    r = client.get("/images/555555")
    assert r.status_code == 403 and "outside the dataset root" in r.json()["detail"]
    service.add([555_556], service.store.get([0])[0], [{"path": str(served_root(service) / ".." / "secret.png")}])
    assert client.get("/images/555556").status_code in (403, 404)
    assert client.get("/images/999999999").status_code == 404


def served_root(service):
    return service.dataset_root


def test_health_metrics_and_openapi(client, service):
    assert client.get("/health").json()["store_items"] == service.count()
    client.post("/search", json={"vector": [0.0] * service.dim})
    client.post("/search", json={"vector": [0.0]})
    text = client.get("/metrics").text
    assert 'oml_serve_requests_total{method="POST",route="/search",status="200"} 1.0' in text
    assert 'oml_serve_errors_total{route="/search",status="400"} 1.0' in text
    assert 'oml_serve_request_duration_seconds_bucket{le="0.01",route="/search"}' in text
    assert f"oml_serve_store_items {float(service.count())}" in text
    assert "oml_serve_search_seconds_count" in text
    spec = client.get("/openapi.json").json()
    assert {"/search", "/items", "/items/{item_id}", "/health", "/metrics"} <= set(spec["paths"])
    assert set(spec["paths"]["/search"]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="drop"' in page.text


def test_api_key_protects_reads_and_writes(service):
    vector = [0.0] * service.dim
    with TestClient(create_app(service, api_key="s3cret")) as c:
        assert c.get("/health").status_code == 200
        assert c.post("/search", json={"vector": vector}).status_code == 401
        assert c.post("/search", json={"vector": vector}, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/search", json={"vector": vector}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/search", json={"vector": vector}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/images/0?api_key=s3cret").status_code == 200
        assert c.get("/metrics").status_code == 401
    with TestClient(create_app(service, api_key="s3cret", protect="writes")) as c:
        assert c.post("/search", json={"vector": vector}).status_code == 200
        assert c.delete("/items/0").status_code == 401
        assert service.count() > 0 and c.get("/items/0").status_code == 200


def test_one_writer_many_readers_lose_and_duplicate_nothing(client, service):
    before = service.count()
    colors = [(i, 255 - i, (7 * i) % 256) for i in range(24)]
    statuses: list[int] = []
    lock = threading.Lock()

    def add(color):
        r = client.post("/items", files=[("images", ("c.png", _png(color), "image/png"))])
        with lock:
            statuses.append(r.status_code)

    def search(_):
        r = client.post("/search", json={"vector": [0.1] * service.dim, "k": 3})
        assert r.status_code == 200

    with ThreadPoolExecutor(8) as pool:
        # every image twice, concurrently: each is stored exactly once
        list(pool.map(lambda job: job[0](job[1]), [(add, c) for c in colors] * 2 + [(search, i) for i in range(24)]))
    assert statuses.count(201) == len(colors) and statuses.count(409) == len(colors)
    assert service.count() == before + len(colors)
    assert len(set(service.store.ids().tolist())) == service.count()


def test_a_store_filled_by_another_model_is_refused(served_run, tmp_path):
    from oml_core import OMLError
    from oml_core.stores import open_store

    url = f"sqlite:///{tmp_path / 'other.db'}"
    with open_store(Host(), url, dim=7, metric="euclidean") as store:
        store.add([1], np.zeros((1, 7), dtype=np.float32))
    with pytest.raises(OMLError, match="holds 7-d ones"):
        build_service(Host(), url, served_run["run_dir"])
    with pytest.raises(OMLError, match="there is no store"):
        build_service(Host(), f"sqlite:///{tmp_path / 'missing.db'}", served_run["run_dir"])
    assert not (tmp_path / "missing.db").exists()

    # the right size, but filled by other weights: refused by the same identity check as oml index / search
    from oml_core.runs import load_run

    run = load_run(served_run["run_dir"])
    other = {**run.fingerprint.to_dict(), "weights_sha256": "0" * 64}
    url = f"sqlite:///{tmp_path / 'same_size.db'}"
    with open_store(Host(), url, dim=run.embedding_size, metric=run.distance) as store:
        store.update_info({"model": {"fingerprint": other}})
    with pytest.raises(OMLError, match="filled by another model"):
        build_service(Host(), url, served_run["run_dir"])


def test_oml_serve_refuses_a_missing_store_without_creating_it(served_run, tmp_path, capsys):
    from oml_core.cli import main

    missing = tmp_path / "missing.db"
    assert main(["serve", "--store", str(missing), "--run", str(served_run["run_dir"])]) == 2
    err = capsys.readouterr().err
    assert "there is no store" in err and "--create" in err and not missing.exists()
    assert main(["serve", "--store", str(missing), "--run", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
