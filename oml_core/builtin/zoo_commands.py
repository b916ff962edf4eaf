"""``oml zoo list``, ``oml zoo show NAME`` and ``oml zoo download NAME``: the pretrained weights of the installed
plugins, their model cards, and fetching them into the cache (for machines that go offline later)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.zoo import WeightsEntry


def _cache_state(entry: WeightsEntry) -> dict[str, Any]:
    from oml_core.downloads import weights_dir

    path = weights_dir() / entry.filename
    marker = path.with_name(path.name + ".sha256")
    recorded = marker.read_text().split()[0] if marker.is_file() else None
    return {"path": str(path), "cached": path.is_file(), "recorded_sha256": recorded}


def _list(args: argparse.Namespace, host: Host) -> int:
    entries = host.weights.entries()
    if args.extractor:
        entries = [e for e in entries if e.extractor == args.extractor]
    if args.json:
        print(json.dumps([{**e.card(), "cache": _cache_state(e)} for e in entries], indent=2))
        return 0
    from oml_core.downloads import describe_environment

    settings = describe_environment()
    print(f"cache {settings['cache']}, offline {settings['offline']}, mirror {settings['mirror'] or '-'}")
    print(f"{'name':<28} {'extractor':<19} {'arch':<20} {'dim':>5} {'check':<7} {'cached':<6} summary")
    for e in entries:
        check = "sha256" if e.sha256 else "md5"
        cached = "yes" if _cache_state(e)["cached"] else "-"
        dim = str(e.embedding_size or "?")
        print(f"{e.name:<28} {e.extractor:<19} {e.arch:<20} {dim:>5} {check:<7} {cached:<6} {e.summary}")
    return 0


def _show(args: argparse.Namespace, host: Host) -> int:
    entry = host.weights.get(args.name)
    card = {**entry.card(), "cache": _cache_state(entry)}
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    width = max(len(k) for k in card)
    for key, value in card.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        print(f"{key:<{width}}  {shown}")
    return 0


def _download(args: argparse.Namespace, host: Host) -> int:
    from oml_core.downloads import sha256_file
    from oml_core.weights import fetch_entry

    names = host.weights.names() if args.name == "all" else [args.name]
    for name in names:
        entry = host.weights.get(name)
        path = fetch_entry(entry, progress=not args.no_progress)
        state = _cache_state(entry)
        print(f"{name}: {path} (sha256 {state['recorded_sha256'] or sha256_file(path)})")
    return 0


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extractor", default=None, help="only the weights of this extractor (vit, resnet, vit_clip...)")
    parser.add_argument("--json", action="store_true", help="print every model card as JSON")


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a weights name, e.g. vits16_dino")
    parser.add_argument("--json", action="store_true", help="print the model card as JSON")


def _configure_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a weights name, or 'all'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_zoo_commands(commands: CommandRegistry) -> None:
    """Register the ``oml zoo`` commands (called from the built-in commands plugin)."""
    commands.add("zoo list", help="the pretrained weights of the installed plugins", configure=_configure_list, run=_list)
    commands.add(
        "zoo show",
        help="the model card of one weights name: architecture, preprocessing, embedding size, licence, source, metrics",
        configure=_configure_show,
        run=_show,
    )
    commands.add(
        "zoo download",
        help="download (and verify) weights into the cache; OML_OFFLINE=1 runs then find them",
        configure=_configure_download,
        run=_download,
    )
