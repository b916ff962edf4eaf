"""Built-in plugin: the ``extractor_with_mlp`` and ``simple_cnn`` extractors, and the ``oml export`` and
``oml embed`` commands."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from oml_core._markers import hookimpl
from oml_core.builtin.model_options import add_model_arguments
from oml_core.errors import ConfigError, OMLError
from oml_core.registry import ExtractorChoice, TransformChoice

if TYPE_CHECKING:
    import torch

    from oml_core.cli import CommandRegistry
    from oml_core.host import Host
    from oml_core.models import ExtractorWithMLP, SimpleCNNExtractor
    from oml_core.registry import Registry


# ================================================================================================ components
@attrs.frozen(kw_only=True)
class ExtractorWithMLPConfig:
    """``extractor_with_mlp``: any extractor plus an MLP head of sizes ``mlp_features`` (the last is ``feat_dim``)."""

    extractor: ExtractorChoice
    mlp_features: tuple[int, ...] = (384,)
    weights: str | None = None
    train_backbone: bool = False


def _create_extractor_with_mlp(
    extractor: Any, mlp_features: tuple[int, ...], weights: str | None, train_backbone: bool, zoo: Any = None
) -> ExtractorWithMLP:
    from oml_core.models import ExtractorWithMLP

    return ExtractorWithMLP(extractor, list(mlp_features), weights=weights, train_backbone=train_backbone, zoo=zoo)


def _create_simple_cnn(channels: tuple[int, ...], normalise_features: bool) -> SimpleCNNExtractor:
    from oml_core.models import SimpleCNNExtractor

    return SimpleCNNExtractor(channels=channels, normalise_features=normalise_features)


@hookimpl
def oml_register_extractors(registry: Registry[Any]) -> None:
    from oml_core.models import SimpleCNNConfig

    registry.add(
        "extractor_with_mlp",
        config=ExtractorWithMLPConfig,
        factory=_create_extractor_with_mlp,
        summary="any extractor followed by an MLP projection head (OML's ExtractorWithMLP)",
        example={"extractor": {"type": "simple_cnn", "channels": [8, 16]}, "mlp_features": [32, 8], "train_backbone": True},
    )
    registry.add(
        "simple_cnn",
        config=SimpleCNNConfig,
        factory=_create_simple_cnn,
        summary="a tiny CNN (stride-2 conv stages + average pooling) for smoke tests and CPU demos",
        example={"channels": [8, 16]},
    )


# ================================================================================================ oml export
def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="what to export: a run directory (oml train's), a weights name (vits16_dino), or a checkpoint file "
        "(.pth, .ckpt, .pt, .safetensors; with --extractor for onnx/torchscript)",
    )
    parser.add_argument(
        "--run", "--run-dir", dest="run", default=None, metavar="RUN_DIR", help="export this run of oml train (its best weights)"
    )
    parser.add_argument("--out", required=True, help="the file to write: *.onnx, *.pt (TorchScript) or *.safetensors")
    parser.add_argument(
        "--format", choices=["onnx", "torchscript", "safetensors"], default=None, help="default: from the suffix of --out"
    )
    parser.add_argument(
        "--strip-prefix", default="", metavar="PREFIX", help="remove this prefix from the keys (e.g. 'model.'); drop other keys"
    )
    parser.add_argument("--extractor", default=None, help="registered extractor a checkpoint file is for (onnx/torchscript)")
    parser.add_argument("--arch", default=None, help="its architecture (e.g. vits16)")
    parser.add_argument("--im-size", type=int, default=224, help="input size of the exported graph for a checkpoint file")
    parser.add_argument("--no-check", action="store_true", help="do not compare the exported model with PyTorch")


def _export(args: argparse.Namespace, host: Host) -> int:
    from oml_core.export import export_model, format_for, source_from_checkpoint, source_from_run, source_from_weights

    out = Path(args.out)
    fmt = format_for(out, args.format)
    if (args.run is None) == (args.checkpoint is None):
        raise OMLError("oml export: give one model: --run RUN_DIR, a weights name, or a checkpoint file")
    target = Path(args.run if args.run is not None else args.checkpoint)
    if args.run is not None or target.is_dir():
        source = source_from_run(target, host)
    elif args.checkpoint in host.weights and not target.is_file():
        source = source_from_weights(args.checkpoint, host)
    elif args.extractor is not None:
        options = {"arch": args.arch} if args.arch else {}
        source = source_from_checkpoint(target, host, args.extractor, options, args.im_size)
    elif fmt == "safetensors":
        return _convert_to_safetensors(args, host, out)
    else:
        raise OMLError(
            f"oml export: to write {fmt} from the checkpoint file {target}, say which extractor it is for, e.g. "
            f"--extractor vit --arch vits16 (or export a run directory or a weights name)"
        )
    export_model(source, out, fmt, check=not args.no_check)
    from oml_core.export import card_path

    print(f"wrote {out} ({fmt}, input {source.image_size}x{source.image_size}, dynamic batch) and {card_path(out)}")
    return 0


def _convert_to_safetensors(args: argparse.Namespace, host: Host, out: Path) -> int:
    """A checkpoint's tensors as safetensors (no architecture needed), optionally without a wrapper prefix."""
    from oml_core.weights import load_checkpoint, resolve_weights, save_safetensors

    path, entry = resolve_weights(args.checkpoint, zoo=host.weights)
    state_dict = load_checkpoint(path)
    if args.strip_prefix:
        kept = {k[len(args.strip_prefix) :]: v for k, v in state_dict.items() if k.startswith(args.strip_prefix)}
        if not kept:
            raise OMLError(f"oml export: no key of {path} starts with {args.strip_prefix!r} (first keys: {list(state_dict)[:3]})")
        state_dict = kept
    metadata = {"source": path.name, "format": "pt"}
    if entry is not None:
        metadata.update({"weights": entry.name, "arch": entry.arch, "extractor": entry.extractor})
    save_safetensors(state_dict, out, metadata)
    print(f"wrote {len(state_dict)} tensors from {path} to {out}")
    return 0


# ================================================================================================ oml embed
@attrs.frozen(kw_only=True)
class EmbedConfig:
    """``oml embed``: embed every image of a dataframe and write the embeddings, in the dataframe's row order.

    ``transforms`` empty: those of the extractor's ``weights`` if it is a weights name, else resize to ``im_size``
    and ImageNet normalisation. ``out``: ``.safetensors`` (tensor ``embeddings``), ``.pt`` or ``.npy``.
    Relative image paths are taken from ``dataset_root``, by default the dataframe's own folder (the rule of every
    ``oml`` command). ``skip_unreadable``: leave unreadable images out, with one warning that counts them.
    """

    pipeline: Literal["embed"] = "embed"
    dataframe: Path
    dataset_root: Path | None = None
    extractor: ExtractorChoice
    transforms: tuple[TransformChoice, ...] = ()
    im_size: int = 224
    batch_size: int = 128
    num_workers: int = 0
    device: str | None = None
    skip_unreadable: bool = False
    out: Path = Path("embeddings.safetensors")

    @property
    def images_root(self) -> Path:
        """The folder of the dataframe's relative paths: ``dataset_root``, else the dataframe's own folder."""
        return self.dataset_root if self.dataset_root is not None else Path(self.dataframe).resolve().parent


def _configure_embed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="an embed config (.yaml/.yml) or a dataframe (.csv/.parquet)")
    parser.add_argument("--out", default=None, help="output file: .safetensors (default embeddings.safetensors), .pt or .npy")
    parser.add_argument("--dataset-root", default=None, help="folder of the dataframe's relative paths (default: its own)")
    parser.add_argument("--skip-unreadable", action="store_true", help="leave unreadable images out, with a warning")
    add_model_arguments(parser)


def _embed_config_data(args: argparse.Namespace, host: Host) -> tuple[dict[str, Any], str]:
    from oml_core.builtin.model_options import model_spec_data
    from oml_core.config import apply_overrides, load_yaml

    source = Path(args.source)
    if source.suffix in {".yaml", ".yml"}:
        data = load_yaml(source)
        if not isinstance(data, dict):
            raise ConfigError([f"$: expected a mapping at the top of the file, got {type(data).__name__}"], str(source))
        data.setdefault("pipeline", "embed")
    elif source.suffix in {".csv", ".parquet", ".tsv"}:
        sets, args.set = args.set, []  # applied below, to the whole config
        data = {"dataframe": str(source), **model_spec_data(args, host)}
        args.set = sets
    else:
        raise OMLError(f"oml embed: {source} is neither a config (.yaml) nor a dataframe (.csv, .parquet)")
    for key, value in (
        ("dataset_root", args.dataset_root),
        ("out", args.out),
        ("batch_size", args.batch_size),
        ("num_workers", args.num_workers),
        ("device", args.device),
        ("skip_unreadable", args.skip_unreadable or None),
    ):
        if value is not None:
            data[key] = value
    return apply_overrides(data, list(args.set)), str(source)


def _embed(args: argparse.Namespace, host: Host) -> int:
    from oml_core.data.images import ImageReadError

    try:
        if args.run is not None:
            return _embed_run(args, host)
        return _embed_from_options(args, host)
    except ImageReadError as exc:
        where = f" (dataframe row {exc.row})" if exc.row is not None else ""
        raise OMLError(
            f"cannot read image {exc.path!r}{where}: {exc.reason}. Fix or remove the file, or pass --skip-unreadable to "
            f"leave unreadable images out (with a warning that counts them)"
        ) from None


def _embed_from_options(args: argparse.Namespace, host: Host) -> int:
    data, source = _embed_config_data(args, host)
    config = host.registries.structure(data, EmbedConfig, source=source)
    if config.out.suffix not in {".safetensors", ".pt", ".npy"}:
        raise OMLError(f"oml embed: out must end with .safetensors, .pt or .npy, got {config.out}")
    extractor = host.registries.extractors.create(config.extractor)
    transforms = _embed_transforms(config, host)
    from oml_core.data import DatasetWithLabels, read_dataframe
    from oml_core.inference import inference

    df = read_dataframe(config.dataframe)
    root = config.images_root
    dataset = DatasetWithLabels(df, dataset_root=root, transform=transforms, skip_unreadable=config.skip_unreadable)
    embeddings = inference(
        extractor, dataset, config.batch_size, config.num_workers, device=config.device, progress=not args.no_progress
    )
    _write_embeddings(embeddings, config, list(dataset.df["path"]))
    print(f"wrote {tuple(embeddings.shape)} embeddings of {config.dataframe} to {config.out}")
    return 0


def _embed_run(args: argparse.Namespace, host: Host) -> int:
    """``oml embed DF --run RUN``: the run's extractor with its best weights and its preprocessing."""
    from oml_core.builtin.model_options import model_flags_given
    from oml_core.data import DatasetWithLabels, read_dataframe
    from oml_core.inference import inference
    from oml_core.runs import load_run

    source = Path(args.source)
    if source.suffix not in {".csv", ".parquet", ".tsv"}:
        raise OMLError(f"oml embed --run takes a dataframe (.csv, .parquet), got {source}")
    if model_flags_given(args):
        raise OMLError("--run takes the model from the run; leave out --extractor, --weights, --arch, --im-size and --set")
    run = load_run(args.run, host=host)
    if run.modality is not None:
        raise OMLError(
            f"oml embed reads images, but the run {args.run} was trained on rows of the {run.modality.type!r} modality "
            f"(its data.modality); embed them with `oml predict --run {args.run}`, or index them with "
            f"`oml index DATA --run {args.run} --store URL`"
        )
    df = read_dataframe(source)
    root = Path(args.dataset_root) if args.dataset_root is not None else source.resolve().parent
    dataset = DatasetWithLabels(df, dataset_root=root, transform=run.transform, skip_unreadable=args.skip_unreadable)
    embeddings = inference(
        run.extractor, dataset, args.batch_size or 128, args.num_workers or 0, device=args.device, progress=not args.no_progress
    )
    config = EmbedConfig(dataframe=source, extractor=ExtractorChoice(str(run.extractor_config.get("type"))),
                         out=Path(args.out or "embeddings.safetensors"))
    if config.out.suffix not in {".safetensors", ".pt", ".npy"}:
        raise OMLError(f"oml embed: out must end with .safetensors, .pt or .npy, got {config.out}")
    _write_embeddings(embeddings, config, list(dataset.df["path"]))
    print(f"wrote {tuple(embeddings.shape)} embeddings of {source} (run {run.run_dir}) to {config.out}")
    return 0


def _embed_transforms(config: EmbedConfig, host: Host) -> Any:
    from oml_core.data.transforms import build_transforms, get_normalisation_resize_torch

    if config.transforms:
        return build_transforms(host, config.transforms)
    options = config.extractor.config
    weights = getattr(options, "weights", None)
    if isinstance(weights, str) and weights in host.weights and host.weights.get(weights).transforms:
        from oml_core.weights import get_transforms_for_pretrained

        return get_transforms_for_pretrained(weights, host=host)[0]
    return get_normalisation_resize_torch(config.im_size)


def _write_embeddings(embeddings: torch.Tensor, config: EmbedConfig, paths: list[str]) -> None:
    import json

    import numpy as np
    import torch

    out = config.out
    out.parent.mkdir(parents=True, exist_ok=True)
    meta: Mapping[str, str] = {"dataframe": str(config.dataframe), "extractor": config.extractor.type, "rows": str(len(paths))}
    if out.suffix == ".safetensors":
        from oml_core.weights import save_safetensors

        save_safetensors({"embeddings": embeddings}, out, {**meta, "paths": json.dumps(paths)})
    elif out.suffix == ".pt":
        torch.save({"embeddings": embeddings, "paths": paths, **meta}, out)
    else:
        np.save(out, embeddings.numpy())


@hookimpl
def oml_register_cli_commands(commands: CommandRegistry) -> None:
    commands.add(
        "export",
        help="export a run, a weights name or a checkpoint as ONNX, TorchScript or safetensors, with a model card",
        configure=_configure_export,
        run=_export,
    )
    commands.add(
        "embed",
        help="embed every image of a dataframe with an extractor (config file or CSV plus options)",
        configure=_configure_embed,
        run=_embed,
    )
