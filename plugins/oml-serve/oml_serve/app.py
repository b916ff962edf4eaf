"""The HTTP app (FastAPI): search, items, health, metrics, thumbnails and the web page.

Every refusal is a 4xx JSON answer ``{"detail": "<one clear sentence>"}``; an unexpected failure is a 500 with a
generic message and no traceback (the traceback goes to the server log).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from oml_core.errors import OMLError
from oml_serve.metrics import ServeMetrics
from oml_serve.page import PAGE_HTML
from oml_serve.service import SearchService, ServiceError, Timing, content_id

log = logging.getLogger("oml_serve")

_VECTOR_SCHEMA = {
    "type": "object",
    "properties": {
        "vector": {"type": "array", "items": {"type": "number"}, "description": "one query embedding"},
        "k": {"type": "integer", "default": 5},
    },
    "required": ["vector"],
}
_IMAGE_SCHEMA = {
    "type": "object",
    "properties": {"image": {"type": "string", "format": "binary"}, "k": {"type": "integer", "default": 5}},
    "required": ["image"],
}
_ITEMS_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "vector": {"type": "array", "items": {"type": "number"}},
                    "metadata": {"type": "object"},
                },
                "required": ["id", "vector"],
            },
        }
    },
    "required": ["items"],
}
_ITEMS_FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "ids": {"type": "string", "description": "comma-separated ids, one per image (default: a hash of each image)"},
        "metadata": {"type": "string", "description": "a JSON object for all images, or a JSON list, one per image"},
    },
    "required": ["images"],
}


def create_app(service: SearchService, *, api_key: str | None = None, protect: str = "all") -> FastAPI:
    """The ASGI app serving ``service``. ``api_key``: required in ``X-API-Key`` (or ``Authorization: Bearer``, or
    ``?api_key=`` for image links) on writes (``protect="writes"``) or on every route but ``/health`` (``"all"``).

    Example:
        >>> import uvicorn                                                        # doctest: +SKIP
        >>> uvicorn.run(create_app(service), host="127.0.0.1", port=8000)       # doctest: +SKIP
    """
    if protect not in ("all", "writes"):
        raise OMLError(f"protect must be 'all' or 'writes', got {protect!r}")
    app = FastAPI(
        title="OML search service",
        description="Nearest-neighbour search over an OML embedding store with a trained run's model.",
        version="0.1.0",
    )
    metrics = ServeMetrics(store_size=service.count)
    app.state.service = service
    app.state.metrics = metrics
    open_paths = {"/health", "/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    write_methods = {"POST", "DELETE", "PUT", "PATCH"}

    def _authorised(request: Request) -> bool:
        if api_key is None or request.url.path in open_paths:
            return True
        is_search = request.url.path == "/search"  # a read, although it is a POST
        if protect == "writes" and (request.method not in write_methods or is_search):
            return True
        given = request.headers.get("x-api-key") or request.query_params.get("api_key") or ""
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), api_key.encode())

    @app.middleware("http")
    async def _observe(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        route = _route_name(request)
        limit = service.limits.max_upload_bytes * service.limits.max_images
        length = request.headers.get("content-length")
        if not _authorised(request):
            response: Response = JSONResponse({"detail": "a valid API key is required (header X-API-Key)"}, status_code=401)
        elif length is not None and (not length.isdigit() or int(length) > limit):
            response = JSONResponse({"detail": f"the request body is larger than the limit of {limit} bytes"}, status_code=413)
        else:
            try:
                response = await call_next(request)
            except Exception:  # noqa: BLE001 - the client gets no traceback; the log does
                log.exception("unexpected error on %s %s", request.method, request.url.path)
                response = JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
        metrics.observe(request.method, route, response.status_code, time.perf_counter() - started)
        return response

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(OMLError)
    async def _oml_error(_: Request, exc: OMLError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse({"detail": f"malformed request: {problems}"}, status_code=422)

    # ------------------------------------------------------------------------------------------------ routes
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE_HTML)

    @app.get("/health", summary="liveness and what is served")
    async def health() -> dict[str, Any]:
        count = await anyio.to_thread.run_sync(service.count)
        return {
            "status": "ok",
            "store_items": count,
            "dim": service.dim,
            "metric": service.store.metric,
            "threshold": service.threshold,
            "model_fingerprint": service.fingerprint.to_dict() if service.fingerprint is not None else None,
        }

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
    async def prometheus() -> Response:
        body, content_type = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=content_type)

    @app.post(
        "/search",
        summary="top-k of an uploaded image (multipart field 'image') or of a vector (JSON {'vector': [...]})",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": _IMAGE_SCHEMA},
                    "application/json": {"schema": _VECTOR_SCHEMA},
                },
            }
        },
    )
    async def search(request: Request, k: int | None = None) -> dict[str, Any]:
        timing = Timing()
        kind = _body_kind(request)
        if kind == "json":
            body = await _json_body(request)
            if not isinstance(body, dict) or "vector" not in body:
                raise ServiceError("the JSON body must be an object with a 'vector' (a list of numbers)")
            k = _int_param(body.get("k", k if k is not None else 5), "k")
            vectors = service.check_vectors(body["vector"])
            started = time.perf_counter()
        else:
            form = await _form(request, service)
            image = form.get("image")
            if not isinstance(image, UploadFile):
                raise ServiceError("upload the query image in the multipart field 'image'")
            k = _int_param(form.get("k", k if k is not None else 5), "k")
            data = await _read_upload(image, service)
            started = time.perf_counter()
            decoded = await anyio.to_thread.run_sync(service.decode_image, data, image.filename or "image")
            vectors = await anyio.to_thread.run_sync(service.embed_images, [decoded])
            timing.embed_s = time.perf_counter() - started
        results = await anyio.to_thread.run_sync(service.search, vectors, k, timing)
        metrics.observe_timing(timing)
        matches = [_with_links(match) for match in results[0]]
        return {
            "k": k,
            "threshold": service.threshold,
            "matches": matches,
            "timing_ms": {"embed": round(timing.embed_s * 1e3, 3), "search": round(timing.search_s * 1e3, 3)},
        }

    @app.post(
        "/items",
        status_code=201,
        summary="add images (multipart 'images', optional 'ids', 'metadata') or vectors (JSON {'items': [...]})",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": _ITEMS_FORM_SCHEMA},
                    "application/json": {"schema": _ITEMS_JSON_SCHEMA},
                },
            }
        },
    )
    async def add_items(request: Request) -> dict[str, Any]:
        if _body_kind(request) == "json":
            ids, vectors, metadata = _items_from_json(await _json_body(request), service)
        else:
            ids, vectors, metadata = await _items_from_form(await _form(request, service), service)
        await anyio.to_thread.run_sync(service.add, ids, vectors, metadata)
        return {"added": ids, "store_items": await anyio.to_thread.run_sync(service.count)}

    @app.get("/items/{item_id}", summary="metadata of a stored item")
    async def get_item(item_id: int) -> dict[str, Any]:
        metadata = await anyio.to_thread.run_sync(service.get, item_id)
        return {"id": item_id, "metadata": metadata, "image": f"/images/{item_id}"}

    @app.delete("/items/{item_id}", summary="delete a stored item")
    async def delete_item(item_id: int) -> dict[str, Any]:
        await anyio.to_thread.run_sync(service.delete, item_id)
        return {"deleted": item_id, "store_items": await anyio.to_thread.run_sync(service.count)}

    @app.get("/images/{item_id}", summary="the image of a stored item (only files inside the dataset root)")
    async def image(item_id: int) -> FileResponse:
        file = await anyio.to_thread.run_sync(service.image_file, item_id)
        return FileResponse(file)

    return app


# ---------------------------------------------------------------------------------------------- helpers
def _route_name(request: Request) -> str:
    path = request.url.path
    for prefix in ("/items/", "/images/"):
        if path.startswith(prefix):
            return prefix + "{id}"
    known = {"/", "/health", "/metrics", "/search", "/items", "/docs", "/openapi.json", "/redoc"}
    return path if path in known else "other"


def _body_kind(request: Request) -> str:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        return "json"
    if content_type.startswith("multipart/form-data"):
        return "form"
    raise ServiceError(
        f"send multipart/form-data (an image upload) or application/json (vectors), not {content_type or 'no content type'!r}",
        415,
    )


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise ServiceError("the body is not valid JSON") from None


async def _form(request: Request, service: SearchService) -> Any:
    try:
        return await request.form(max_files=service.limits.max_images, max_fields=service.limits.max_images + 8)
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's fault
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        raise ServiceError(f"malformed multipart upload: {detail}") from None


async def _read_upload(upload: UploadFile, service: SearchService) -> bytes:
    data = await upload.read(service.limits.max_upload_bytes + 1)
    if len(data) > service.limits.max_upload_bytes:
        raise ServiceError(
            f"the upload {upload.filename!r} is larger than the limit of {service.limits.max_upload_bytes} bytes", 413
        )
    return data


def _int_param(value: Any, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ServiceError(f"{name} must be an integer, got {value!r}") from None
    return number


def _with_links(match: dict[str, Any]) -> dict[str, Any]:
    return {**match, "image": f"/images/{match['id']}"}


def _items_from_json(body: Any, service: SearchService) -> tuple[list[int], Any, list[dict[str, Any]]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ServiceError("the JSON body must be {'items': [{'id': int, 'vector': [...], 'metadata': {...}}, ...]}")
    if len(items) > 10_000:
        raise ServiceError(f"at most 10000 items per request, got {len(items)}", 413)
    ids, vectors, metadata = [], [], []
    for n, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item or "vector" not in item:
            raise ServiceError(f"items[{n}] needs an 'id' and a 'vector'")
        ids.append(_check_id(item["id"], f"items[{n}].id"))
        vectors.append(item["vector"])
        meta = item.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ServiceError(f"items[{n}].metadata must be a JSON object")
        metadata.append(meta)
    _check_unique(ids)
    return ids, service.check_vectors(vectors), metadata


async def _items_from_form(form: Any, service: SearchService) -> tuple[list[int], Any, list[dict[str, Any]]]:
    uploads = [f for f in form.getlist("images") if isinstance(f, UploadFile)]
    if not uploads:
        raise ServiceError("upload the images in the multipart field 'images'")
    datas = [await _read_upload(upload, service) for upload in uploads]
    names = [upload.filename or f"image {n}" for n, upload in enumerate(uploads)]
    ids_text = form.get("ids")
    if ids_text:
        parts = [p.strip() for p in str(ids_text).split(",") if p.strip()]
        if len(parts) != len(uploads):
            raise ServiceError(f"'ids' gives {len(parts)} ids for {len(uploads)} images")
        ids = [_check_id(p, "ids") for p in parts]
    else:
        ids = [content_id(data) for data in datas]
    _check_unique(ids)
    metadata = _form_metadata(form.get("metadata"), len(uploads))
    images = [await anyio.to_thread.run_sync(service.decode_image, data, name) for data, name in zip(datas, names)]
    vectors = await anyio.to_thread.run_sync(service.embed_images, images)
    for item_id, data, name, meta in zip(ids, datas, names, metadata):
        saved = service.save_upload(item_id, data, Path(name).suffix.lower()[:8] or ".img")
        if saved is not None:
            meta.setdefault("path", saved)
        meta.setdefault("filename", name)
    return ids, vectors, metadata


def _form_metadata(text: Any, n: int) -> list[dict[str, Any]]:
    if not text:
        return [{} for _ in range(n)]
    try:
        value = json.loads(str(text))
    except ValueError:
        raise ServiceError("'metadata' must be JSON: an object for all images, or a list of objects, one per image") from None
    if isinstance(value, dict):
        return [dict(value) for _ in range(n)]
    if isinstance(value, list) and len(value) == n and all(isinstance(v, dict) for v in value):
        return [dict(v) for v in value]
    raise ServiceError(f"'metadata' must be a JSON object or a list of {n} objects (one per image)")


def _check_id(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ServiceError(f"{what} must be a non-negative integer, got {value!r}")
    try:
        number = int(str(value))
    except ValueError:
        raise ServiceError(f"{what} must be a non-negative integer, got {value!r}") from None
    if not 0 <= number < 2**63:
        raise ServiceError(f"{what} must be a non-negative 63-bit integer, got {number}")
    return number


def _check_unique(ids: list[int]) -> None:
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ServiceError(f"ids repeated within the request: {repeated[:10]}")
