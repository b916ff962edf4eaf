"""Built-in plugin: the ``oml index`` and ``oml search`` commands (embedding stores, see ``oml_core.stores``).

``oml index --store URL --model NAME DATA`` embeds the images of a dataframe (CSV/parquet with a ``path`` column)
or of a folder, and adds them to the store batch by batch, so that an interrupted run keeps every finished batch
and a re-run only embeds what the store lacks. It records the model in the store, so that
``oml search --store URL IMAGE...`` embeds the query images the same way, prints the top-k and draws them.

Ids: a dataframe's ``id`` column when it has one, else the row number; for a folder, a stable 63-bit hash of each
image's path relative to the folder (so adding files to the folder keeps the ids of the others).

The model: ``--model`` names a registered extractor (``oml plugins`` lists them; e.g. ``resnet``, ``vit``,
``simple_cnn``) or a weights name of the zoo; ``--weights`` gives a checkpoint path (or weights name) and
``--arch`` the architecture; ``--set extractor.KEY=VALUE`` sets any other option of the extractor's config.
Randomly initialised models are seeded, so a re-run embeds with the same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oml_core._markers import hookimpl
from oml_core.errors import OMLError
from oml_core.registry import ExtractorChoice, ModalityChoice

if TYPE_CHECKING:
    import torch

    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.protocols import EmbeddingStore

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})
#: dataframe columns copied into each item's metadata (with the resolved image path)
METADATA_COLUMNS = ("label", "category", "split", "is_query", "is_gallery", "sequence")
_MAX_ID = 2**63 - 1


@attrs.frozen(kw_only=True)
class ModelSpec:
    """How ``oml index`` embedded images; saved in the store's ``info`` under ``"model"`` for ``oml search``."""

    extractor: ExtractorChoice
    im_size: int = 224
    modality: ModalityChoice | None = None


@attrs.frozen
class Item:
    """One image to index: its store id, its file and the metadata stored with it."""

    id: int
    path: str
    metadata: dict[str, Any]


# ================================================================================================ items
def items_from_folder(folder: str | os.PathLike[str]) -> list[Item]:
    """Every image under ``folder`` (recursively, sorted), id = stable hash of its relative path.

    Example:
        >>> items_from_folder("gallery/")  # doctest: +SKIP
        [Item(id=5026836491716838226, path='/abs/gallery/a.jpg', metadata={'path': '/abs/gallery/a.jpg'}), ...]
    """
    root = Path(folder).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise OMLError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under the folder {str(folder)!r}")
    items = [Item(path_id(p.relative_to(root).as_posix()), str(p), {"path": str(p)}) for p in files]
    _check_unique_ids(items, str(folder))
    return items


def path_id(relative_path: str) -> int:
    """A stable non-negative int64 id for a path (the first 63 bits of its BLAKE2b hash).

    Example:
        >>> path_id("a/b.jpg") == path_id("a/b.jpg"), 0 <= path_id("x.png") < 2**63
        (True, True)
    """
    digest = hashlib.blake2b(relative_path.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _MAX_ID


def items_from_dataframe(path: str | os.PathLike[str], dataset_root: str | os.PathLike[str] | None = None) -> list[Item]:
    """The rows of a dataframe (CSV/parquet with a ``path`` column); relative paths are taken from
    ``dataset_root``, by default the dataframe's folder. Ids: the ``id`` column if any, else the row number."""

    from oml_core.data import read_dataframe

    df = read_dataframe(path)
    source = str(path)
    if "path" not in df.columns:
        raise OMLError(f"the dataframe {source!r} has no 'path' column (columns: {', '.join(map(str, df.columns))})")
    root = Path(dataset_root) if dataset_root is not None else Path(path).resolve().parent
    id_values = _dataframe_ids(df, source)
    missing = df.index[df["path"].isna()].tolist()
    if missing:
        raise OMLError(f"the dataframe {source!r} has an empty 'path' in rows {missing[:10]}")
    items = []
    for row, (item_id, (_, record)) in enumerate(zip(id_values, df.iterrows())):
        file = Path(str(record["path"]))
        resolved = str(file if file.is_absolute() else (root / file).resolve())
        metadata: dict[str, Any] = {"path": resolved, "row": row}
        for column in METADATA_COLUMNS:
            if column in df.columns:
                metadata[column] = _json_scalar(record[column])
        items.append(Item(item_id, resolved, metadata))
    _check_unique_ids(items, source)
    return items


def _dataframe_ids(df: Any, source: str) -> list[int]:
    """The ``id`` column (non-negative integers) when there is one, else the row numbers."""
    import pandas as pd

    if "id" not in df.columns:
        return list(range(len(df)))
    ids = pd.to_numeric(df["id"], errors="coerce")
    bad = df.index[ids.isna() | (ids < 0) | (ids != ids.round())].tolist()
    if bad:
        raise OMLError(f"the dataframe {source!r} has ids that are not non-negative integers in rows {bad[:10]}")
    return [int(v) for v in ids]


def items_of_modality(
    path: str | os.PathLike[str], dataset_root: str | os.PathLike[str] | None, modality: Any
) -> tuple[list[Item], Any, Path]:
    """The rows of a dataframe of texts, audio... (``modality.content_columns`` go into the metadata, with the
    OML columns and the row number); returns the items, the dataframe and the root of its relative paths."""
    from oml_core.data import read_dataframe

    df = read_dataframe(path)
    source = str(path)
    missing = [c for c in modality.content_columns[:1] if c not in df.columns]
    if missing:
        raise OMLError(f"the dataframe {source!r} has no {missing[0]!r} column (columns: {', '.join(map(str, df.columns))})")
    root = Path(dataset_root) if dataset_root is not None else Path(path).resolve().parent
    items = []
    for row, (item_id, (_, record)) in enumerate(zip(_dataframe_ids(df, source), df.iterrows())):
        metadata: dict[str, Any] = {"row": row}
        for column in (*modality.content_columns, *METADATA_COLUMNS):
            if column in df.columns:
                metadata[column] = _json_scalar(record[column])
        if isinstance(metadata.get("path"), str) and not Path(metadata["path"]).is_absolute():
            metadata["path"] = str((root / metadata["path"]).resolve())
        items.append(Item(item_id, str(metadata.get(modality.content_columns[0])), metadata))
    _check_unique_ids(items, source)
    return items, df, root


def _json_scalar(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _check_unique_ids(items: Sequence[Item], source: str) -> None:
    seen: dict[int, str] = {}
    for item in items:
        if item.id in seen:
            raise OMLError(f"{source!r}: id {item.id} is given to both {seen[item.id]!r} and {item.path!r}; ids must be unique")
        seen[item.id] = item.path


class _ImageFiles:
    """A dataset of image files: ``{"input_tensors": transform(image)}`` per item (picklable for worker processes)."""

    def __init__(self, paths: Sequence[str], transform: Any) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from oml_core.data import read_image

        return {"input_tensors": self.transform(read_image(self.paths[index]))}


# ================================================================================================ the model
def _add_model_arguments(parser: argparse.ArgumentParser, *, for_search: bool) -> None:
    default = " (default: the model oml index recorded in the store)" if for_search else ""
    parser.add_argument("--model", default=None, help=f"registered extractor (see `oml plugins`) or weights name{default}")
    parser.add_argument("--weights", default=None, help="checkpoint path or weights name for the extractor")
    parser.add_argument("--arch", default=None, help="architecture of the extractor, e.g. resnet18 or vits16")
    parser.add_argument("--im-size", type=int, default=None, help="images are resized to this square size (default 224)")
    parser.add_argument(
        "--modality", default=None, help="rows and queries are not images: text (oml-text), audio (oml-audio); options "
        "with --set modality.KEY=VALUE, e.g. --set modality.tokenizer=DIR"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other option, e.g. --set extractor.gem_p=3.0"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: CUDA when available)")


def model_spec_data(args: argparse.Namespace, host: Host, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The model spec (``{"extractor": {"type": ..., ...}, "im_size": ...}``) from the command line, or the one a
    store recorded when no ``--model`` / ``--weights`` is given."""
    from oml_core.config import apply_overrides

    if args.model is None and args.weights is None:
        if recorded is None:
            raise OMLError("name the model with --model <extractor or weights name> (see `oml plugins`), e.g. --model resnet")
        data = json.loads(json.dumps(dict(recorded)))
    else:
        extractor: dict[str, Any] = {}
        for name in (args.model, args.weights):
            if name is not None and name in host.weights:
                entry = host.weights.get(name)
                extractor.update({"type": entry.extractor, "arch": entry.arch, "weights": name})
        if args.model is not None and args.model not in host.weights:
            extractor["type"] = args.model
        if args.weights is not None and args.weights not in host.weights:
            extractor["weights"] = str(Path(args.weights).resolve()) if Path(args.weights).exists() else args.weights
        if "type" not in extractor:
            raise OMLError(f"--weights {args.weights!r} is not a weights name; also name the extractor with --model")
        data = {"extractor": extractor}
    if args.arch is not None:
        data["extractor"]["arch"] = args.arch
    if args.im_size is not None:
        data["im_size"] = args.im_size
    if getattr(args, "modality", None) is not None:
        data["modality"] = {"type": args.modality}
    return apply_overrides(data, list(args.set))


def build_model(host: Host, data: Mapping[str, Any]) -> tuple[torch.nn.Module, Any, ModelSpec]:
    """The extractor and its inference transform from a model spec; seeded, so random initialisation repeats."""
    import torch

    from oml_core.data.transforms import get_normalisation_resize_torch

    spec = host.registries.structure(dict(data), ModelSpec, path="$.model")
    torch.manual_seed(0)
    extractor = host.registries.extractors.create(spec.extractor)
    weights = getattr(spec.extractor.config, "weights", None)
    transform = get_normalisation_resize_torch(spec.im_size)
    if isinstance(weights, str) and weights in host.weights and host.weights.get(weights).transforms and "im_size" not in data:
        from oml_core.weights import get_transforms_for_pretrained

        transform = get_transforms_for_pretrained(weights, host=host)[0]
    return extractor, transform, spec


def _device(name: str | None) -> torch.device:
    import torch

    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _embed_batches(
    model: torch.nn.Module, paths: Sequence[str], transform: Any, args: argparse.Namespace
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, embeddings)`` for consecutive batches of ``paths``."""

    yield from _embed_dataset(model, _ImageFiles(paths, transform), args)


def _embed_dataset(model: torch.nn.Module, dataset: Any, args: argparse.Namespace) -> Iterator[tuple[int, torch.Tensor]]:
    import torch
    from torch.utils.data import DataLoader

    from oml_core.inference import to_device

    device = _device(args.device)
    model.to(device).eval()
    loader: DataLoader[dict[str, Any]] = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)
    start = 0
    with torch.inference_mode():
        for batch in loader:
            out = model(to_device(batch["input_tensors"], device)).float().cpu()
            yield start, out
            start += len(out)


def _parse_options(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    from oml_core.config import parse_override

    options: dict[str, Any] = {}
    for pair in pairs:
        keys, value = parse_override(pair)
        if len(keys) != 1:
            raise OMLError(f"{flag} {pair}: expected KEY=VALUE with a plain key")
        options[keys[0]] = value
    return options


def _open(host: Host, args: argparse.Namespace, *, dim: int | None = None, metric: str | None = None) -> EmbeddingStore:
    from oml_core.stores import open_store

    options = _parse_options(getattr(args, "store_option", []), "--store-option")
    return open_store(host, args.store, dim=dim, metric=metric, **options)


# ================================================================================================ oml index
def _configure_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="a dataframe (.csv/.parquet with a 'path' column) or a folder of images")
    parser.add_argument("--store", required=True, help="store URL: gallery.db, sqlite:///x.db, postgresql://..., faiss:///dir")
    _add_model_arguments(parser, for_search=False)
    parser.add_argument("--dataset-root", default=None, help="folder of the dataframe's relative paths (default: its own)")
    parser.add_argument("--metric", default=None, choices=("euclidean", "cosine", "dot"), help="of a new store (euclidean)")
    parser.add_argument(
        "--store-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. index=hnsw (faiss), table=gallery (sql)"
    )
    parser.add_argument(
        "--save-every", type=int, default=1024, metavar="N", help="stores that save explicitly (faiss) save every N new images"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _index(args: argparse.Namespace, host: Host) -> int:
    from tqdm.auto import tqdm

    from oml_core.stores import existing_ids

    if args.batch_size < 1 or args.save_every < 1:
        raise OMLError("--batch-size and --save-every must be positive")
    data_path = Path(args.data)
    model_data = model_spec_data(args, host)
    model, transform, spec = build_model(host, model_data)
    modality = host.registries.modalities.create(spec.modality) if spec.modality is not None else None
    if modality is not None:
        if not data_path.is_file():
            column = modality.content_columns[0]
            raise OMLError(f"oml index: {args.data!r} is not a dataframe file (CSV/parquet with a {column!r} column)")
        items, frame, frame_root = items_of_modality(data_path, args.dataset_root, modality)
        position = {item.id: row for row, item in enumerate(items)}
    elif data_path.is_dir():
        items = items_from_folder(data_path)
    elif data_path.exists():
        items = items_from_dataframe(data_path, args.dataset_root)
    else:
        raise OMLError(f"oml index: {args.data!r} is neither a dataframe file nor a folder of images")
    dim = int(getattr(model, "feat_dim", 0)) or None
    with _open(host, args, dim=dim, metric=args.metric) as store:
        recorded = dict(getattr(store, "info", {}) or {}).get("model")
        if recorded is not None and host.registries.structure(recorded, ModelSpec, path="$.model") != spec:
            raise OMLError(
                f"the store {args.store!r} was indexed with another model ({json.dumps(recorded)}); its embeddings would not "
                f"be comparable with those of {json.dumps(model_data)}. Use a new store, or the same model."
            )
        update_info = getattr(store, "update_info", None)
        if recorded is None and callable(update_info):
            update_info({"model": model_data})
        present = existing_ids(store, [item.id for item in items])
        todo = [item for item, done in zip(items, present.tolist()) if not done]
        what = "items" if modality is not None else "images"
        print(f"oml index: {len(items)} {what}, {len(items) - len(todo)} already in {args.store}, {len(todo)} to embed")
        save = getattr(store, "save", None)
        unsaved = 0
        if modality is not None:
            rows = frame.iloc[[position[item.id] for item in todo]]
            batches = _embed_dataset(model, modality.base_dataset(rows, frame_root), args) if todo else iter(())
        else:
            batches = _embed_batches(model, [item.path for item in todo], transform, args)
        with tqdm(total=len(todo), unit="item", disable=args.no_progress or not todo) as progress:
            for start, embeddings in batches:
                batch = todo[start : start + len(embeddings)]
                store.add([item.id for item in batch], embeddings, metadata=[item.metadata for item in batch])
                unsaved += len(batch)
                if callable(save) and unsaved >= args.save_every:
                    save()
                    unsaved = 0
                progress.update(len(batch))
        total = store.count()
    print(f"oml index: the store holds {total} items")
    return 0


# ================================================================================================ oml search
def _configure_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "images", nargs="+", metavar="QUERY", help="query image files (texts, or audio files, for a store of those)"
    )
    parser.add_argument("--store", required=True, help="store URL (as given to oml index)")
    parser.add_argument("-k", type=int, default=5, help="matches per query (default 5)")
    parser.add_argument("--out", default=None, help="draw each query with its matches into this PNG file")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="only items whose metadata match")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--store-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. ef_search=128 (faiss)")
    _add_model_arguments(parser, for_search=True)


def _search(args: argparse.Namespace, host: Host) -> int:
    import torch

    if args.k < 1:
        raise OMLError(f"-k must be positive, got {args.k}")
    with _open(host, args) as store:
        recorded = dict(getattr(store, "info", {}) or {}).get("model")
        model, transform, spec = build_model(host, model_spec_data(args, host, recorded))
        modality = host.registries.modalities.create(spec.modality) if spec.modality is not None else None
        if modality is not None:  # the queries are texts, audio files...: the modality reads (and checks) them
            queries = modality.query_dataset(list(args.images))
            embeddings = torch.cat([e for _, e in _embed_dataset(model, queries, args)])
        else:
            missing = [p for p in args.images if not Path(p).is_file()]
            if missing:
                raise OMLError(f"oml search: query images not found: {missing}")
            embeddings = torch.cat([e for _, e in _embed_batches(model, list(args.images), transform, args)])
        filter_ = _parse_options(args.filter, "--filter") or None
        ids, distances = store.search(embeddings, args.k, filter=filter_)
        found = sorted({int(i) for i in ids.flatten().tolist() if i >= 0})
        metadata = dict(zip(found, store.get(found)[1])) if found else {}
    results: list[dict[str, Any]] = [
        {
            "query": str(query),
            "matches": [
                {"rank": rank + 1, "id": int(i), "distance": float(d), **metadata[int(i)]}
                for rank, (i, d) in enumerate(zip(ids[q].tolist(), distances[q].tolist()))
                if i >= 0
            ],
        }
        for q, query in enumerate(args.images)
    ]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(f"query {result['query']}")
            what = "text" if any("text" in m for m in result["matches"]) else "path"
            print(f"  {'rank':>4}  {'id':>20}  {'distance':>10}  {what}")
            for match in result["matches"]:
                print(f"  {match['rank']:>4}  {match['id']:>20}  {match['distance']:>10.4f}  {match.get(what, '')}")
            if not result["matches"]:
                print("  (no match)")
    if args.out is not None:
        pictures = modality_pictures(modality, queries, results) if modality is not None else None
        draw_matches(results, args.out, pictures=pictures)
        print(f"oml search: drew the matches into {args.out}")
    return 0


def modality_pictures(modality: Any, queries: Any, results: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Per query, its picture then those of its matches, drawn by the modality's datasets (``visualize``: a text
    on a card, an audio clip's spectrogram) from the metadata that ``oml index`` stored."""
    import pandas as pd

    rows = [m for r in results for m in r["matches"]]
    columns = [c for c in modality.content_columns if any(c in m for m in rows)]
    matched = modality.base_dataset(pd.DataFrame([{c: m.get(c) for c in columns} for m in rows])) if rows else None
    pictures, position = [], 0
    for q, result in enumerate(results):
        row = [queries.visualize(q, (0, 0, 255))]
        for _ in result["matches"]:
            assert matched is not None
            row.append(matched.visualize(position, (0, 0, 0)))
            position += 1
        pictures.append(row)
    return pictures


def draw_matches(
    results: Sequence[Mapping[str, Any]], out: str | os.PathLike[str], *, pictures: Sequence[Sequence[Any]] | None = None
) -> None:
    """One row per query: the query image, then its matches titled with rank, id and distance (as seed 001 draws them).
    ``pictures`` (per query: the query's, then each match's array) replaces reading the images from their paths."""
    import numpy as np

    from oml_core.retrieval.visualize import as_numpy_image, import_pyplot

    plt = import_pyplot()
    n_cols = 1 + max(1, max(len(r["matches"]) for r in results))
    fig, axes = plt.subplots(len(results), n_cols, figsize=(2.4 * n_cols, 3.0 * len(results)), squeeze=False)

    def show(ax: Any, path: str | None, title: str, color: str, picture: Any = None) -> None:
        try:
            image = picture if picture is not None else as_numpy_image(path) if path else None
        except OSError:
            image = None
        ax.imshow(image if image is not None else np.full((8, 8, 3), 200, dtype=np.uint8))
        ax.set_title(title if image is not None else f"{title}\n(image missing)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(3)

    for row, result in enumerate(results):
        own = pictures[row] if pictures is not None else None
        name = Path(result["query"]).name if own is None else textwrap.shorten(result["query"], 30)
        show(axes[row][0], result["query"], f"Query\n{name}", "blue", own[0] if own else None)
        for col in range(1, n_cols):
            if col - 1 < len(result["matches"]):
                match = result["matches"][col - 1]
                title = f"Top {match['rank']} (ID: {match['id']})\nd={match['distance']:.3f}"
                show(axes[row][col], match.get("path"), title, "black", own[col] if own else None)
            else:
                axes[row][col].axis("off")
    fig.tight_layout()
    fig.savefig(os.fspath(out), format="png")
    plt.close(fig)


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "index",
        help="embed the images of a dataframe or folder into an embedding store (resumable: skips stored ids)",
        configure=_configure_index,
        run=_index,
    )
    commands.add(
        "search",
        help="embed query images and print (and draw) their nearest neighbours in an embedding store",
        configure=_configure_search,
        run=_search,
    )
