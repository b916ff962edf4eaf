"""Registers ``oml serve``: an HTTP search service over an embedding store with a trained run's model."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oml_core import hookimpl
from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_serve.service import SearchService

API_KEY_ENV = "OML_SERVE_API_KEY"


def build_service(
    host: Host,
    store_url: str,
    run_dir: str | Path,
    *,
    create: bool = False,
    dataset_root: str | Path | None = None,
    upload_dir: str | Path | None = None,
    threshold: float | None = None,
    limits: Any = None,
    device: str = "cpu",
    store_options: dict[str, Any] | None = None,
) -> SearchService:
    """Open the store and load the run's model (best weights, preprocessing, calibrated threshold).

    Example:
        >>> service = build_service(Host(), "gallery.db", "runs/mock-train-...")   # doctest: +SKIP
    """
    from oml_core.runs import load_run
    from oml_core.stores import StoreError, open_store
    from oml_serve.service import SearchService

    run = load_run(run_dir, host=host)
    dim = int(getattr(run.extractor, "feat_dim", 0)) or None
    try:
        store = open_store(
            host, store_url, dim=dim if create else None, metric=run.distance if create else None, create=create,
            **(store_options or {}),
        )
    except StoreError as exc:
        if create:
            raise
        hint = "Fill it with `oml index` first, or pass --create to start an empty one that POST /items fills"
        raise OMLError(f"{exc} {hint}") from None
    root = dataset_root if dataset_root is not None else (run.config.get("data") or {}).get("dataset_root")
    if upload_dir is None and root is not None:
        upload_dir = Path(root) / "oml-serve-uploads"
    try:
        return SearchService(
            store,
            run.extractor,
            run.transform,
            threshold=threshold if threshold is not None else run.threshold,
            dataset_root=root,
            upload_dir=upload_dir,
            fingerprint=run.fingerprint,
            model_record={"fingerprint": run.fingerprint.to_dict(), "run": str(run.run_dir), "checkpoint": str(run.checkpoint)},
            limits=limits,
            device=device,
        )
    except BaseException:
        store.close()
        raise


def _configure(parser: argparse.ArgumentParser) -> None:
    from oml_serve.limits import Limits

    defaults = Limits()
    parser.add_argument("--store", required=True, help="store URL: gallery.db, sqlite:///x.db, postgresql://..., faiss:///dir")
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="the run whose model (and calibration) to use")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--create", action="store_true", help="create the store if it does not exist (empty)")
    parser.add_argument("--dataset-root", default=None, help="the only folder images are served from (default: the run's)")
    parser.add_argument(
        "--upload-dir", default=None, help="where uploaded images are kept (default: DATASET_ROOT/oml-serve-uploads)"
    )
    parser.add_argument("--threshold", type=float, default=None, help="same/not-same threshold (default: the run's calibration)")
    parser.add_argument("--api-key", default=None, help=f"require this key (header X-API-Key); default ${API_KEY_ENV} if set")
    parser.add_argument("--protect", choices=("all", "writes"), default="all", help="what the key protects (default all)")
    parser.add_argument("--max-upload-bytes", type=int, default=defaults.max_upload_bytes)
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--store-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. index=hnsw, quantize=binary (faiss)"
    )


def _serve(args: argparse.Namespace, host: Host) -> int:
    import uvicorn

    from oml_core.builtin.stores import _parse_options
    from oml_serve.app import create_app
    from oml_serve.service import Limits

    service = build_service(
        host,
        args.store,
        args.run,
        create=args.create,
        dataset_root=args.dataset_root,
        upload_dir=args.upload_dir,
        threshold=args.threshold,
        limits=Limits(max_upload_bytes=args.max_upload_bytes, max_pixels=args.max_pixels),
        device=args.device,
        store_options=_parse_options(args.store_option, "--store-option"),
    )
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    app = create_app(service, api_key=api_key, protect=args.protect)
    print(f"oml serve: {service.count()} items, http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        service.store.close()
    return 0


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "serve",
        help="serve search over an embedding store with a run's model (HTTP API + web page)",
        configure=_configure,
        run=_serve,
    )
