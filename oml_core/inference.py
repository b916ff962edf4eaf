"""Embedding a dataset with a model: ``inference`` (any dataset whose items are dicts with ``input_tensors``),
``inference_on_dataframe`` (OML's helper: a dataframe in, train/validation embeddings and dataframes out) and
``inference_cached`` (the same, skipped when the model, the data and the transforms have not changed).

Under ``torch.distributed`` every rank embeds its share of the dataset and all ranks get the full result, in
dataset order.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from oml_core.errors import OMLError

if TYPE_CHECKING:
    import pandas as pd

INPUT_TENSORS_KEY = "input_tensors"


# ================================================================================================ inference
def inference(
    model: nn.Module,
    dataset: Dataset[Any],
    batch_size: int = 128,
    num_workers: int = 0,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    use_fp16: bool = False,
    key: str = INPUT_TENSORS_KEY,
) -> Tensor:
    """Embed every item of ``dataset`` with ``model``; returns a float32 CPU tensor ``(len(dataset), feat_dim)`` in
    dataset order.

    ``device`` defaults to the model's device if it is not the CPU, else CUDA when available, else the CPU; the
    model is moved there for the call and back afterwards, and runs in eval mode without gradients (its mode is
    restored). Items are dicts holding ``key`` (or plain tensors). Under an initialised ``torch.distributed``
    process group each rank embeds every ``world_size``-th item and the results are gathered on every rank.
    ``use_fp16`` runs the model under CUDA autocast.

    Example:
        >>> dataset = [{"input_tensors": torch.rand(3, 8, 8)} for _ in range(5)]
        >>> inference(nn.Sequential(nn.Flatten(), nn.Linear(192, 4)), dataset, batch_size=2, progress=False).shape
        torch.Size([5, 4])
    """
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise OMLError("inference: the dataset is empty")
    if batch_size < 1:
        raise OMLError(f"inference: batch_size must be >= 1, got {batch_size}")
    rank, world = _dist_rank_world()
    per_rank = -(-size // world)
    # every rank gets the same number of items (the last ones repeat the first), so that all_gather lines up
    order = [i % size for i in range(per_rank * world)]
    indices = order[rank::world]
    target = _choose_device(model, device)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=num_workers,
        pin_memory=target.type == "cuda",
    )
    original_device = _module_device(model)
    was_training = model.training
    model.to(target)
    model.eval()
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_fp16 and target.type == "cuda" else nullcontext()
    chunks: list[Tensor] = []
    try:
        with torch.no_grad(), autocast:
            for batch in tqdm(loader, desc="Inference", disable=not progress or rank != 0, leave=False):
                output = model(to_device(_inputs(batch, key), target))
                if output.ndim != 2:
                    raise OMLError(f"inference: the model returned shape {tuple(output.shape)}; expected (batch, feat_dim)")
                chunks.append(output.float())
    finally:
        model.train(was_training)
        if original_device is not None and original_device != target:
            model.to(original_device)
    embeddings: Tensor = torch.cat(chunks)
    if world > 1:
        embeddings = _gather_in_order(embeddings, world)[:size]
    return embeddings.cpu()


def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _module_device(model: nn.Module) -> torch.device | None:
    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return None


def _choose_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    current = _module_device(model)
    if current is not None and current.type != "cpu":
        return current
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def to_device(inputs: Any, device: str | torch.device) -> Any:
    """A model's input moved to ``device``: a tensor, or a dict of tensors (a tokenizer's ``input_ids`` and
    ``attention_mask``, as the text datasets give them), also nested.

    Example:
        >>> to_device({"input_ids": torch.zeros(1, 3, dtype=torch.long)}, "cpu")["input_ids"].device.type
        'cpu'
    """
    if isinstance(inputs, Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, Mapping):
        return {k: to_device(v, device) for k, v in inputs.items()}
    return inputs


def _inputs(batch: Any, key: str) -> Tensor | Mapping[str, Tensor]:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, Mapping):
        if key not in batch:
            raise OMLError(f"inference: the dataset's items have no {key!r} key (keys: {', '.join(map(str, batch))})")
        value = batch[key]
        if isinstance(value, Tensor) or (isinstance(value, Mapping) and all(isinstance(v, Tensor) for v in value.values())):
            return value
    raise OMLError(
        f"inference: expected items that are dicts with a tensor (or a dict of tensors) under {key!r}, got {type(batch).__name__}"
    )


def _gather_in_order(local: Tensor, world: int) -> Tensor:
    """Rank ``r`` holds items ``r, r + world, r + 2 * world...``; interleave the ranks' rows back into that order."""
    backend = dist.get_backend()
    device = local.device if backend == "nccl" else torch.device("cpu")
    local = local.to(device).contiguous()
    gathered = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    return torch.stack(gathered, dim=1).reshape(-1, local.shape[-1])


# ================================================================================================ caching
def fingerprint_model(model: nn.Module) -> str:
    """A sha256 of what determines a model's outputs: its class, repr, plain attributes and every tensor of its
    state_dict.

    Example:
        >>> layer = nn.Linear(2, 2)
        >>> fingerprint_model(layer) == fingerprint_model(layer)
        True
    """
    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}\n".encode())
    for module_name, module in model.named_modules():
        plain = {k: v for k, v in vars(module).items() if _is_plain_setting(k, v)}
        digest.update(f"{module_name}:{json.dumps(plain, sort_keys=True)}\n".encode())
    for name, tensor in model.state_dict().items():
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint_dataframe(df: pd.DataFrame, dataset_root: str | os.PathLike[str] | None = None) -> str:
    """A sha256 of a dataframe's content and of the size and modification time of every file it names.

    Example:
        >>> import pandas as pd
        >>> len(fingerprint_dataframe(pd.DataFrame({"path": ["missing.png"]})))
        64
    """
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    digest.update(repr(list(df.columns)).encode())
    root = Path(dataset_root) if dataset_root is not None else None
    if "path" in df.columns:
        for path in df["path"].astype(str):
            full = root / path if root is not None and not os.path.isabs(path) else Path(path)
            try:
                stat = full.stat()
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}:missing\n".encode())
    return digest.hexdigest()


def _is_plain_setting(name: str, value: Any) -> bool:
    return not name.startswith("_") and name != "training" and isinstance(value, (bool, int, float, str))


def inference_cached(
    model: nn.Module,
    dataset: Dataset[Any],
    batch_size: int = 128,
    num_workers: int = 0,
    *,
    key_parts: tuple[str, ...] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    cache_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Tensor:
    """``inference`` whose result is stored under ``cache_dir`` (default ``cache_dir()/embeddings``), keyed by the
    model's fingerprint and ``key_parts`` (strings that identify the data and the transforms: the caller's duty).

    Example:
        >>> dataset = [{"input_tensors": torch.rand(3, 4, 4)} for _ in range(3)]
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
        >>> folder = __import__("tempfile").mkdtemp()
        >>> first = inference_cached(model, dataset, key_parts=("demo",), cache_dir=folder, progress=False)
        >>> torch.equal(first, inference_cached(model, dataset, key_parts=("demo",), cache_dir=folder, progress=False))
        True
    """
    from oml_core.weights import cache_dir as default_cache_dir

    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "embeddings"
    # without key_parts the dataset's paths and transform identify the data (OML 4 keyed on nothing but a file name,
    # so two datasets embedded with one model got the same cached embeddings)
    parts = key_parts or _dataset_key(dataset)
    key = hashlib.sha256("\n".join((fingerprint_model(model), *parts)).encode()).hexdigest()
    path = Path(cache_path) if cache_path is not None else directory / f"{key}.pt"
    directory = path.parent
    cached = _read_cached(path)
    if cached is not None and len(cached) == len(dataset):  # type: ignore[arg-type]
        return cached
    embeddings = inference(model, dataset, batch_size, num_workers, **kwargs)
    rank, _ = _dist_rank_world()
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(embeddings, tmp)
        os.replace(tmp, path)
    return embeddings


def _dataset_key(dataset: Any) -> tuple[str, ...]:
    """What identifies a dataset's inputs when the caller gave no key: its paths and transform, else its size."""
    get_paths = getattr(dataset, "get_paths", None)
    if not callable(get_paths):
        return (f"{type(dataset).__name__}:{len(dataset)}",)
    digest = hashlib.sha256("\n".join(map(str, get_paths())).encode()).hexdigest()
    return (digest, repr(getattr(dataset, "transform", None)))


def _read_cached(path: Path) -> Tensor | None:
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a corrupt cache entry is recomputed, never fatal
        return None
    return cached if isinstance(cached, Tensor) else None


# ================================================================================================ dataframes
def inference_on_dataframe(
    dataset_root: str | os.PathLike[str] | None,
    df_or_csv_path: pd.DataFrame | str | os.PathLike[str],
    extractor: nn.Module,
    transforms: Any = None,
    *,
    batch_size: int = 128,
    num_workers: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    use_fp16: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Tensor, Tensor, pd.DataFrame, pd.DataFrame]:
    """Embed every image of an OML dataframe and split the result by the ``split`` column, as OML does:
    ``emb_train, emb_val, df_train, df_val = inference_on_dataframe(dataset_root, "df.csv", extractor, transforms)``.

    ``df_or_csv_path`` is a DataFrame or a CSV/parquet path (relative paths that do not exist from the working
    directory are looked up under ``dataset_root``). The returned dataframes hold the paths joined with
    ``dataset_root`` (as in OML), a fresh 0-based index and rows in the file's order, aligned with the embeddings.
    With ``cache_dir``, the embeddings are cached there, keyed by the extractor's weights, the dataframe (and its
    files' sizes and times) and ``repr(transforms)``.

    Example:
        >>> emb_train, emb_val, df_train, df_val = inference_on_dataframe(
        ...     "data/", "df.csv", extractor, transforms)  # doctest: +SKIP
    """
    from oml_core.data import DatasetWithLabels, read_dataframe

    source: Any = df_or_csv_path
    if not _is_dataframe(source):
        path = Path(source)
        if not path.exists() and dataset_root is not None and (Path(dataset_root) / path).exists():
            path = Path(dataset_root) / path
        source = path
    df = read_dataframe(source)
    if "split" not in df.columns:
        where = source if not _is_dataframe(source) else "the dataframe"
        raise OMLError(f"inference_on_dataframe: {where} has no 'split' column (values 'train' / 'validation')")
    df = df.reset_index(drop=True)
    dataset = DatasetWithLabels(df, dataset_root=dataset_root, transform=transforms)
    options: dict[str, Any] = {"device": device, "progress": progress, "use_fp16": use_fp16}
    if cache_dir is None:
        embeddings = inference(extractor, dataset, batch_size, num_workers, **options)
    else:
        key_parts = (fingerprint_dataframe(df, dataset_root), str(dataset_root), repr(transforms))
        embeddings = inference_cached(
            extractor, dataset, batch_size, num_workers, key_parts=key_parts, cache_dir=cache_dir, **options
        )
    # as OML does, the returned frames hold the paths joined with dataset_root, so datasets built from them
    # without a root (seed 004) find their images wherever the program runs
    df = dataset.df
    is_train = (df["split"].astype(str) == "train").to_numpy()
    df_train = df[is_train].reset_index(drop=True)
    df_val = _bool_columns(df[~is_train].reset_index(drop=True), ("is_query", "is_gallery"))
    mask = torch.from_numpy(is_train.copy())
    return embeddings[mask], embeddings[~mask], df_train, df_val


def _bool_columns(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Make ``is_query`` / ``is_gallery`` real bool columns when every value is a boolean (they are stored as
    objects because the train rows leave them empty)."""
    from oml_core.data.dataframe import parse_bool_column

    for column in columns:
        if column in df.columns:
            parsed, _ = parse_bool_column(df[column])
            if parsed.notna().all():
                df[column] = parsed.astype(bool)
    return df


def _is_dataframe(value: Any) -> bool:
    import pandas as pd

    return isinstance(value, pd.DataFrame)


__all__ = [
    "fingerprint_dataframe",
    "fingerprint_model",
    "inference",
    "inference_cached",
    "inference_on_dataframe",
]
