"""Built-in plugin: the ``oml index`` and ``oml search`` commands (embedding stores, see ``oml_core.stores``).

``oml index --store URL --run RUN_DIR DATA`` embeds the images of a dataframe (CSV/parquet with a ``path`` column)
or of a folder, and adds them to the store batch by batch, so that an interrupted run keeps every finished batch
and a re-run only embeds what the store lacks. It records the model's fingerprint in the store (weights sha256,
architecture, preprocessing, embedding size, distance: ``oml_core.fingerprint``), so that
``oml search --store URL IMAGE...`` embeds the query images the same way, refuses any other model, prints the
top-k and draws them.

Under ``torchrun --nproc-per-node N oml index ...`` the images are shared out among the ranks: they write into one
SQL store together (PostgreSQL, or SQLite which serialises them), or each into a shard of a FAISS store that rank 0
merges at the end; a killed run resumes where it stopped.

Ids: a dataframe's ``id`` column when it has one, else the row number; for a folder, a stable 63-bit hash of each
image's path relative to the folder (so adding files to the folder keeps the ids of the others).

Image paths: relative paths of a dataframe are taken from ``--dataset-root``, by default the dataframe's own folder;
every image must lie inside that root (or the indexed folder) after following symlinks, unless
``--allow-outside-root`` is given. Paths named on the command line are relative to the current directory.

The model: see ``oml_core.builtin.model_options`` (``--run``, or ``--extractor`` / ``--weights`` / ``--arch``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from oml_core._markers import hookimpl
from oml_core.builtin.model_options import (
    LoadedModel,
    ModelSpec,
    add_modality_argument,
    add_model_arguments,
    build_model,
    check_model,
    describe_given,
    load_model,
    model_spec_data,
)
from oml_core.errors import OMLError

if TYPE_CHECKING:
    import torch

    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.protocols import EmbeddingStore

__all__ = [
    "Item", "ModelSpec", "build_model", "items_from_dataframe", "items_from_folder", "items_of_modality", "model_spec_data",
    "path_id",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})
#: dataframe columns copied into each item's metadata (with the resolved image path)
METADATA_COLUMNS = ("label", "category", "split", "is_query", "is_gallery", "sequence")
_MAX_ID = 2**63 - 1
_DEFAULT_BATCH = 32


@attrs.frozen
class Item:
    """One image to index: its store id, its file and the metadata stored with it."""

    id: int
    path: str
    metadata: dict[str, Any]


# ================================================================================================ items
def items_from_folder(folder: str | os.PathLike[str], *, allow_outside_root: bool = False) -> list[Item]:
    """Every image under ``folder`` (recursively, sorted), id = stable hash of its relative path. A symlink that
    leads out of the folder is an error unless ``allow_outside_root``.

    Example:
        >>> items_from_folder("gallery/")  # doctest: +SKIP
        [Item(id=5026836491716838226, path='/abs/gallery/a.jpg', metadata={'path': '/abs/gallery/a.jpg'}), ...]
    """
    root = Path(folder).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise OMLError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under the folder {str(folder)!r}")
    if not allow_outside_root:
        _check_inside(root, [(p.relative_to(root).as_posix(), p.resolve()) for p in files], str(folder))
    items = [Item(path_id(p.relative_to(root).as_posix()), str(p), {"path": str(p)}) for p in files]
    _check_unique_ids(items, str(folder))
    return items


def _check_inside(root: Path, resolved: Sequence[tuple[str, Path]], source: str, rows: Sequence[int] | None = None) -> None:
    """Refuse images that resolve (after symlinks) outside ``root``: a dataframe must not make OML read or store
    arbitrary files (``../../etc/passwd``)."""
    real_root = root.resolve()
    outside = [(i, given) for i, (given, path) in enumerate(resolved) if not path.is_relative_to(real_root)]
    if outside:
        where = ", ".join(
            f"{'row ' + str(rows[i]) + ' ' if rows is not None else ''}{given!r}" for i, given in outside[:5]
        )
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        raise OMLError(
            f"{source}: {len(outside)} image path(s) lead outside the dataset root {str(real_root)!r} (after following "
            f"symlinks): {where}{more}. Fix the paths or --dataset-root; to index files outside the root on purpose, "
            f"pass --allow-outside-root"
        )


def path_id(relative_path: str) -> int:
    """A stable non-negative int64 id for a path (the first 63 bits of its BLAKE2b hash).

    Example:
        >>> path_id("a/b.jpg") == path_id("a/b.jpg"), 0 <= path_id("x.png") < 2**63
        (True, True)
    """
    digest = hashlib.blake2b(relative_path.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _MAX_ID


def items_from_dataframe(
    path: str | os.PathLike[str], dataset_root: str | os.PathLike[str] | None = None, *, allow_outside_root: bool = False
) -> list[Item]:
    """The rows of a dataframe (CSV/parquet with a ``path`` column); relative paths are taken from
    ``dataset_root``, by default the dataframe's folder, and every image must resolve inside that root unless
    ``allow_outside_root``. Ids: the ``id`` column if any, else the row number."""

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
    resolved_paths = []
    for row, (item_id, (_, record)) in enumerate(zip(id_values, df.iterrows())):
        file = Path(str(record["path"]))
        real = (file if file.is_absolute() else root / file).resolve()
        resolved_paths.append((str(record["path"]), real))
        resolved = str(real)
        metadata: dict[str, Any] = {"path": resolved, "row": row}
        for column in METADATA_COLUMNS:
            if column in df.columns:
                metadata[column] = _json_scalar(record[column])
        items.append(Item(item_id, resolved, metadata))
    if not allow_outside_root:
        _check_inside(root, resolved_paths, source, rows=list(range(len(items))))
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
    path: str | os.PathLike[str],
    dataset_root: str | os.PathLike[str] | None,
    modality: Any,
    *,
    allow_outside_root: bool = False,
) -> list[Item]:
    """The rows of a dataframe of texts, audio... (``protocols.Modality``): ``modality.content_columns`` go into
    the metadata with the OML columns and the row number, which is all ``oml index`` needs to embed them again.
    Relative paths (audio files) are taken from ``dataset_root``, by default the dataframe's folder, and must resolve
    inside it unless ``allow_outside_root``. Ids: the ``id`` column if any, else the row number.

    Example:
        >>> items_of_modality("texts.csv", None, host.registries.modalities.create(choice))  # doctest: +SKIP
        [Item(id=0, path='a red chair', metadata={'row': 0, 'text': 'a red chair', 'label': 3}), ...]
    """
    from oml_core.data import read_dataframe

    df = read_dataframe(path)
    source = str(path)
    main_column = modality.content_columns[0]
    if main_column not in df.columns:
        raise OMLError(f"the dataframe {source!r} has no {main_column!r} column (columns: {', '.join(map(str, df.columns))})")
    root = Path(dataset_root) if dataset_root is not None else Path(path).resolve().parent
    items = []
    resolved_paths: list[tuple[str, Path]] = []
    rows_with_path: list[int] = []
    for row, (item_id, (_, record)) in enumerate(zip(_dataframe_ids(df, source), df.iterrows())):
        metadata: dict[str, Any] = {"row": row}
        for column in (*modality.content_columns, *METADATA_COLUMNS):
            if column in df.columns:
                metadata[column] = _json_scalar(record[column])
        given = metadata.get("path")
        if isinstance(given, str) and given.strip():
            real = (Path(given) if Path(given).is_absolute() else root / given).resolve()
            metadata["path"] = str(real)
            resolved_paths.append((given, real))
            rows_with_path.append(row)
        items.append(Item(item_id, str(metadata.get(main_column)), metadata))
    if not allow_outside_root and resolved_paths:
        _check_inside(root, resolved_paths, source, rows=rows_with_path)
    _check_unique_ids(items, source)
    return items


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
    """A dataset of image files: ``(index, transform(image) or None, error or None)`` per item (picklable for worker
    processes); unreadable images are reported, not raised, so that ``--skip-unreadable`` can leave them out."""

    def __init__(self, paths: Sequence[str], transform: Any) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        from oml_core.data import read_image
        from oml_core.data.images import ImageReadError

        try:
            return index, self.transform(read_image(self.paths[index])), None
        except ImageReadError as exc:
            return index, None, exc.reason


class _ModalityItems:
    """A modality's dataset (texts, audio...) as ``(index, input_tensors or None, error or None)`` per item, like
    ``_ImageFiles``: an item its dataset cannot read (its error names the row) is reported, not raised."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        try:
            return index, self.dataset[index]["input_tensors"], None
        except OMLError as exc:
            return index, None, str(exc)


def _collate(batch: Sequence[tuple[int, Any, str | None]]) -> tuple[list[int], Any, list[tuple[int, str]]]:
    from torch.utils.data import default_collate

    good = [(i, x) for i, x, error in batch if error is None]
    failed = [(i, error) for i, _, error in batch if error is not None]
    inputs = default_collate([x for _, x in good]) if good else None  # a tensor, or a dict of tensors (texts)
    return [i for i, _ in good], inputs, failed


def _device(name: str | None) -> torch.device:
    import torch

    if name is not None:
        return torch.device(name)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    # under torchrun each rank takes its own GPU (they share when there are fewer GPUs than ranks)
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def embed_images(
    model: torch.nn.Module, paths: Sequence[str], transform: Any, args: argparse.Namespace
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """``(positions in paths, embeddings)`` for consecutive batches of ``paths``. An unreadable image is an error
    naming it, or (``--skip-unreadable``) left out with one warning at the end that gives the count."""
    yield from _embed_dataset(model, _ImageFiles(paths, transform), args, noun="image", names=[repr(p) for p in paths])


def embed_modality(
    model: torch.nn.Module, dataset: Any, args: argparse.Namespace, *, noun: str, names: Sequence[str]
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """``(positions, embeddings)`` for consecutive batches of a modality's ``dataset`` (texts, audio...), with
    ``embed_images``' rule for items that cannot be read (``names``: how to name each item in messages)."""
    yield from _embed_dataset(model, _ModalityItems(dataset), args, noun=noun, names=names)


def _embed_dataset(
    model: torch.nn.Module, dataset: Any, args: argparse.Namespace, *, noun: str, names: Sequence[str]
) -> Iterator[tuple[list[int], torch.Tensor]]:
    import torch
    from torch.utils.data import DataLoader

    from oml_core.inference import to_device

    device = _device(args.device)
    model.to(device).eval()
    loader: DataLoader[Any] = DataLoader(
        dataset, batch_size=args.batch_size or _DEFAULT_BATCH, num_workers=args.num_workers or 0, collate_fn=_collate
    )
    skipped: list[tuple[int, str]] = []
    with torch.inference_mode():
        for positions, inputs, failed in loader:
            if failed and not getattr(args, "skip_unreadable", False):
                index, reason = failed[0]
                raise OMLError(
                    f"cannot read {noun} {names[index]}: {reason}. Fix or remove the file, or pass --skip-unreadable "
                    f"to leave unreadable {noun}s out (with a warning that counts them)"
                )
            skipped.extend(failed)
            if inputs is not None:
                yield positions, model(to_device(inputs, device)).float().cpu()
    if skipped:
        shown = ", ".join(names[i] for i, _ in skipped[:5])
        print(f"oml: warning: left out {len(skipped)} unreadable {noun}(s) (--skip-unreadable): {shown}"
              f"{' ...' if len(skipped) > 5 else ''}", file=sys.stderr)


def modality_dataset(modality: Any, records: Sequence[Mapping[str, Any]], rows: Sequence[Any] | None = None) -> Any:
    """The modality's base dataset over ``records`` (metadata as ``oml index`` stores it: a ``text``, or an audio
    ``path`` and ``start_time``), its rows named ``rows`` (the dataframe's row numbers) in error messages."""
    import pandas as pd

    columns = [c for c in modality.content_columns if any(c in r for r in records)]
    index = list(rows) if rows is not None else None
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in records], columns=columns, index=index)
    return modality.base_dataset(frame)


def _parse_options(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    from oml_core.config import parse_override

    options: dict[str, Any] = {}
    for pair in pairs:
        keys, value = parse_override(pair)
        if len(keys) != 1:
            raise OMLError(f"{flag} {pair}: expected KEY=VALUE with a plain key")
        options[keys[0]] = value
    return options


def _open(
    host: Host, args: argparse.Namespace, *, url: str | None = None, dim: int | None = None, metric: str | None = None,
    create: bool = True,
) -> EmbeddingStore:
    from oml_core.stores import open_store

    options = _parse_options(getattr(args, "store_option", []), "--store-option")
    return open_store(host, url or args.store, dim=dim, metric=metric, create=create, **options)


def _recorded_model(store: EmbeddingStore) -> dict[str, Any] | None:
    from oml_core.protocols import StoreWithInfo

    if not isinstance(store, StoreWithInfo):
        return None
    recorded = store.info.get("model")
    return dict(recorded) if isinstance(recorded, Mapping) else None


# ================================================================================================ oml index
def _configure_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", help="a dataframe (.csv/.parquet with a 'path' column, or a 'text' column with --modality text) or a "
        "folder of images"
    )
    parser.add_argument("--store", required=True, help="store URL: gallery.db, sqlite:///x.db, postgresql://..., faiss:///dir")
    add_model_arguments(parser)
    add_modality_argument(parser)
    parser.add_argument("--dataset-root", default=None, help="folder of the dataframe's relative paths (default: its own)")
    parser.add_argument(
        "--allow-outside-root", action="store_true", help="index files that lie outside the dataset root (after symlinks)"
    )
    parser.add_argument("--skip-unreadable", action="store_true", help="leave unreadable images out, with a warning")
    parser.add_argument(
        "--metric", default=None, choices=("euclidean", "cosine", "dot"),
        help="distance of a new store (default: the run's, else euclidean)",
    )
    parser.add_argument(
        "--store-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. index=hnsw (faiss), table=gallery (sql)"
    )
    parser.add_argument(
        "--save-every", type=int, default=1024, metavar="N", help="stores that save explicitly (faiss) save every N new images"
    )


def _index(args: argparse.Namespace, host: Host) -> int:
    from oml_core.builtin.distributed_index import Ranks

    if (args.batch_size is not None and args.batch_size < 1) or args.save_every < 1:
        raise OMLError("--batch-size and --save-every must be positive")
    data_path = Path(args.data)
    if not data_path.exists():
        raise OMLError(f"oml index: {args.data!r} is neither a dataframe file nor a folder of images")
    ranks = Ranks.from_environment()
    try:
        model = load_model(args, host, distance=args.metric)  # first: its modality says what the rows are
        items = _index_items(args, data_path, model.modality)
        if args.metric is None and model.run is not None:
            args.metric = model.run.distance
        if ranks.world > 1:
            from oml_core.builtin.distributed_index import index_distributed

            return index_distributed(args, host, items, model, ranks)
        with _open(host, args, dim=model.dim or None, metric=args.metric) as store:
            added = index_into(store, args, items, model, store_name=args.store)
            total = store.count()
    finally:
        ranks.close()
    print(f"oml index: added {added}; the store holds {total} items")
    return 0


def _index_items(args: argparse.Namespace, data_path: Path, modality: Any) -> list[Item]:
    """The items of ``oml index``'s data: images of a folder or dataframe, or the rows of a modality's dataframe."""
    if modality is not None:
        if not data_path.is_file():
            column = modality.content_columns[0]
            raise OMLError(f"oml index: {args.data!r} is not a dataframe file (CSV/parquet with a {column!r} column)")
        return items_of_modality(data_path, args.dataset_root, modality, allow_outside_root=args.allow_outside_root)
    if data_path.is_dir():
        return items_from_folder(data_path, allow_outside_root=args.allow_outside_root)
    return items_from_dataframe(data_path, args.dataset_root, allow_outside_root=args.allow_outside_root)


def record_model(store: EmbeddingStore, model: LoadedModel, args: argparse.Namespace, store_name: str) -> LoadedModel:
    """Check the given model against the one the store recorded (refusing another), record it in a new store;
    returns the model with the store's distance in its fingerprint."""
    from oml_core.protocols import StoreWithInfo

    model = attrs.evolve(model, fingerprint=attrs.evolve(model.fingerprint, distance=store.metric))
    model = attrs.evolve(model, record={**model.record, "fingerprint": model.fingerprint.to_dict()})
    recorded = _recorded_model(store)
    check_model(recorded, model, store=store_name, what=describe_given(args))
    if recorded is None and isinstance(store, StoreWithInfo):
        store.update_info({"model": model.record})
    return model


def index_into(
    store: EmbeddingStore, args: argparse.Namespace, items: Sequence[Item], model: LoadedModel, *, store_name: str,
    record: bool = True, announce: bool = True,
) -> int:
    """Embed the ``items`` the store lacks and add them batch by batch; returns how many were added."""
    from tqdm.auto import tqdm

    from oml_core.protocols import StoreWithSave
    from oml_core.stores import existing_ids

    if record:
        record_model(store, model, args, store_name)
    present = existing_ids(store, [item.id for item in items])
    todo = [item for item, done in zip(items, present.tolist()) if not done]
    if announce:
        what = "items" if model.modality is not None else "images"
        print(f"oml index: {len(items)} {what}, {len(items) - len(todo)} already in {store_name}, {len(todo)} to embed")
    if model.modality is None:
        batches = embed_images(model.extractor, [item.path for item in todo], model.transform, args)
    elif todo:  # texts, audio...: the modality's dataset over what the items recorded, naming the dataframe's rows
        rows = [item.metadata.get("row", item.id) for item in todo]
        dataset = modality_dataset(model.modality, [item.metadata for item in todo], rows)
        batches = embed_modality(model.extractor, dataset, args, noun="row", names=[str(row) for row in rows])
    else:
        batches = iter(())
    unsaved = added = 0
    with tqdm(total=len(todo), unit="item", disable=args.no_progress or not todo) as progress:
        for positions, embeddings in batches:
            batch = [todo[i] for i in positions]
            store.add([item.id for item in batch], embeddings, metadata=[item.metadata for item in batch])
            unsaved += len(batch)
            added += len(batch)
            if isinstance(store, StoreWithSave) and unsaved >= args.save_every:
                store.save()
                unsaved = 0
            progress.update(len(batch))
    return added


# ================================================================================================ oml search
def _configure_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "images", nargs="+", metavar="QUERY", help="query image files (relative to the current directory); texts, or "
        "audio files, for a store of those"
    )
    parser.add_argument("--store", required=True, help="store URL (as given to oml index); it must exist")
    parser.add_argument("-k", type=int, default=5, help="matches per query (default 5)")
    parser.add_argument("--out", default=None, help="draw each query with its matches into this PNG file")
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="only items whose metadata match")
    parser.add_argument("--exclude-self", action="store_true", help="leave out the query's own stored copy (same file)")
    parser.add_argument(
        "--threshold", type=float, default=None, help="distance at or below which a match is the same identity "
        "(default: the run's calibrated threshold, when there is one)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--store-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. ef_search=128 (faiss)")
    add_model_arguments(parser, recorded_default=True)
    add_modality_argument(parser)


def clean_distance(value: float, metric: str) -> float:
    """A distance for printing: L2 and cosine distances are never negative (rounding can make them -1e-8), and
    no distance prints as -0.

    Example:
        >>> clean_distance(-3e-8, "cosine"), clean_distance(-0.0, "dot"), clean_distance(-2.5, "dot")
        (0.0, 0.0, -2.5)
    """
    if metric in ("euclidean", "cosine") and value < 0:
        return 0.0
    return value + 0.0 if value != 0 else 0.0


def _search(args: argparse.Namespace, host: Host) -> int:
    import torch

    if args.k < 1:
        raise OMLError(f"-k must be positive, got {args.k}")
    query_set = None
    with _open(host, args, create=False) as store:
        recorded = _recorded_model(store)
        model = load_model(args, host, recorded=recorded, distance=store.metric)
        check_model(recorded, model, store=args.store, what=describe_given(args))
        # what identifies a query's own stored copy: its file, or (texts) the text itself
        key = "path" if model.modality is None else model.modality.content_columns[0]
        if model.modality is not None:  # the queries are texts, audio files...: the modality reads (and checks) them
            queries = [str(Path(q).resolve()) if key == "path" and Path(q).is_file() else q for q in args.images]
            query_set = model.modality.query_dataset(queries)
            names = [repr(q) for q in args.images]
            batches = embed_modality(model.extractor, query_set, args, noun="query", names=names)
        else:
            missing = [p for p in args.images if not Path(p).is_file()]
            if missing:
                raise OMLError(f"oml search: query images not found: {missing}")
            queries = [str(Path(p).resolve()) for p in args.images]
            batches = embed_images(model.extractor, queries, model.transform, args)
        embeddings = torch.cat([e for _, e in batches])
        filter_ = _parse_options(args.filter, "--filter") or None
        extra = 1 if args.exclude_self else 0
        ids, distances = store.search(embeddings, args.k + extra, filter=filter_)
        found = sorted({int(i) for i in ids.flatten().tolist() if i >= 0})
        metadata = dict(zip(found, store.get(found)[1])) if found else {}
        wanted = args.out is not None or args.json
        query_labels = _query_labels(store, embeddings, queries, key) if wanted else [None] * len(queries)
        metric = store.metric
    threshold = args.threshold if args.threshold is not None else (model.run.threshold if model.run is not None else None)
    results: list[dict[str, Any]] = []
    for q, query in enumerate(args.images):
        matches: list[dict[str, Any]] = []
        for i, d in zip(ids[q].tolist(), distances[q].tolist()):
            if i < 0 or (args.exclude_self and metadata[int(i)].get(key) == queries[q]):
                continue
            match: dict[str, Any] = {"rank": len(matches) + 1, "id": int(i), "distance": clean_distance(float(d), metric)}
            if threshold is not None:
                match["same_identity"] = match["distance"] <= threshold
            match.update(metadata[int(i)])
            matches.append(match)
        result: dict[str, Any] = {"query": str(query), "matches": matches[: args.k]}
        if query_labels[q] is not None:
            result["query_label"] = query_labels[q]
        results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_results(results, threshold)
    if args.out is not None:
        pictures = modality_pictures(model.modality, query_set, results) if model.modality is not None else None
        draw_matches(results, args.out, pictures=pictures)
        print(f"oml search: drew the matches into {args.out}")
    return 0


def _query_labels(store: EmbeddingStore, embeddings: torch.Tensor, queries: Sequence[str], key: str = "path") -> list[Any]:
    """The label of each query when the store holds the same file (or text: ``key``), else None."""
    labels: list[Any] = []
    for row, query in enumerate(queries):
        ids, _ = store.search(embeddings[row : row + 1], 1, filter={key: query})
        item = int(ids[0, 0])
        labels.append(store.get([item])[1][0].get("label") if item >= 0 else None)
    return labels


def _print_results(results: Sequence[Mapping[str, Any]], threshold: float | None) -> None:
    for result in results:
        label = f" (label {result['query_label']})" if result.get("query_label") is not None else ""
        print(f"query {result['query']}{label}")
        same = "  same" if threshold is not None else ""
        what = "text" if any("text" in m for m in result["matches"]) else "path"
        print(f"  {'rank':>4}  {'id':>20}  {'distance':>10}{same}  {what}")
        for match in result["matches"]:
            flag = f"  {'yes' if match['same_identity'] else 'no':>4}" if threshold is not None else ""
            print(f"  {match['rank']:>4}  {match['id']:>20}  {match['distance']:>10.4f}{flag}  {match.get(what, '')}")
        if not result["matches"]:
            print("  (no match)")
    if threshold is not None:
        print(f"same: distance <= {threshold:.4f} (the decision threshold)")


def _frame_color(query_label: Any, match_label: Any) -> str:
    """Green for a match of the query's label, red for another label, black when either label is unknown (as
    OML's RetrievalResults.visualize frames them)."""
    if query_label is None or match_label is None:
        return "black"
    return "green" if match_label == query_label else "red"


def modality_pictures(modality: Any, queries: Any, results: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Per query, its picture then those of its matches, drawn by the modality's datasets (``visualize``: a text
    on a card, an audio clip's spectrogram) from the metadata that ``oml index`` stored."""
    rows = [m for r in results for m in r["matches"]]
    matched = modality_dataset(modality, rows) if rows else None
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
    """One row per query: the query image, then its matches titled with rank, id and distance (as seed 001 draws
    them), framed green (same label as the query) or red (another) when the query's label is known. ``pictures``
    (per query: the query's, then each match's array) replaces reading the images from their paths."""
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
                color = _frame_color(result.get("query_label"), match.get("label"))
                show(axes[row][col], match.get("path"), title, color, own[col] if own else None)
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
