"""Export a trained or pretrained extractor for production: ONNX (checked against PyTorch with onnxruntime),
TorchScript, or safetensors, with a dynamic batch axis, and a model card JSON written beside the file.

Example:
    >>> source = source_from_weights("vits16_dino", host)          # doctest: +SKIP
    >>> export_model(source, "vits16.onnx", "onnx")                  # doctest: +SKIP
    PosixPath('vits16.onnx')
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import torch

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from oml_core.host import Host

ExportFormat = Literal["onnx", "torchscript", "safetensors"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "safetensors")
_SUFFIXES = {
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".safetensors": "safetensors",
}
#: opset 17 has LayerNorm as one op and is read by every maintained onnxruntime
ONNX_OPSET = 17


@attrs.frozen(kw_only=True)
class ExportSource:
    """A model ready to export and what its card says about it."""

    model: torch.nn.Module
    architecture: Mapping[str, Any]
    preprocessing: Any
    image_size: int
    distance: str = "euclidean"
    threshold: float | None = None
    source: str = ""


def format_for(out: Path, explicit: str | None) -> str:
    """The export format: ``explicit`` if given, else the one of ``out``'s suffix.

    Example:
        >>> format_for(Path("m.onnx"), None)
        'onnx'
    """
    if explicit is not None:
        if explicit not in FORMATS:
            raise OMLError(f"unknown export format {explicit!r}; choose one of {', '.join(FORMATS)}")
        return explicit
    if out.suffix in _SUFFIXES:
        return _SUFFIXES[out.suffix]
    raise OMLError(
        f"cannot tell the export format from {out.name!r}: pass --format onnx|torchscript|safetensors or name the file "
        f"*.onnx, *.pt (TorchScript) or *.safetensors"
    )


def card_path(out: Path) -> Path:
    """Where the model card of ``out`` goes: ``model.onnx`` -> ``model.card.json``."""
    return out.with_name(out.stem + ".card.json")


def _frozen_for_export(model: torch.nn.Module, image_size: int) -> torch.nn.Module:
    """A copy in eval mode whose modules fixed their input size where they can (ViT position embeddings), so that the
    exported graph holds constants instead of interpolations ONNX cannot express."""
    frozen = copy.deepcopy(model).eval()
    for module in frozen.modules():
        freeze = getattr(module, "freeze_input_size", None)
        if callable(freeze):
            freeze(image_size, image_size)
    return frozen


def export_model(source: ExportSource, out: str | Path, fmt: str, *, check: bool = True) -> Path:
    """Write ``source.model`` to ``out`` as ``fmt`` (batch axis dynamic, images ``(B, 3, S, S)``) and its model card
    beside it; with ``check``, the exported model's outputs are compared with PyTorch's on a batch of another size.

    Example:
        >>> export_model(source, "model.onnx", "onnx")   # doctest: +SKIP
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = source.model.eval()
    size = source.image_size
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    probe = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    parity: float | None = None
    with torch.no_grad():
        expected = model(probe)
        if fmt == "onnx":
            _export_onnx(_frozen_for_export(model, size), example, out)
            if check:
                parity = _max_diff(expected, _run_onnx(out, probe))
        elif fmt == "torchscript":
            traced = torch.jit.trace(_frozen_for_export(model, size), example, check_trace=False)
            traced.save(str(out))
            if check:
                parity = _max_diff(expected, torch.jit.load(str(out))(probe))
        elif fmt == "safetensors":
            from oml_core.weights import save_safetensors

            save_safetensors(model.state_dict(), out, {"architecture": json.dumps(dict(source.architecture))})
        else:
            raise OMLError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if parity is not None and parity > 1e-3 * max(1.0, float(expected.abs().max())):
        raise OMLError(f"the exported {fmt} model differs from PyTorch by {parity:.2e} on the same images: not kept ({out})")
    write_card(source, out, fmt, int(expected.shape[1]), parity)
    return out


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes about constant sizes: the spatial size is fixed on purpose
        torch.onnx.export(
            model,
            (example,),
            str(out),
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_axes={"images": {0: "batch"}, "embeddings": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def _run_onnx(path: Path, images: torch.Tensor) -> torch.Tensor:
    try:
        import onnxruntime
    except ImportError:
        raise OMLError(
            "checking the ONNX export needs onnxruntime (pip install onnxruntime), or pass --no-check to skip it"
        ) from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise OMLError(f"the exported model returns shape {tuple(b.shape)}, PyTorch {tuple(a.shape)}")
    return float((a - b).abs().max())


def write_card(source: ExportSource, out: Path, fmt: str, embedding_size: int, parity: float | None) -> Path:
    """The model card beside ``out``: what the file is, how to feed it, how to compare its embeddings."""
    card = {
        "file": out.name,
        "format": fmt,
        "architecture": dict(source.architecture),
        "input": {"name": "images", "shape": ["batch", 3, source.image_size, source.image_size], "dtype": "float32"},
        "output": {"name": "embeddings", "shape": ["batch", embedding_size]},
        "preprocessing": source.preprocessing,
        "image_size": source.image_size,
        "embedding_size": embedding_size,
        "distance": source.distance,
        "threshold": source.threshold,
        "source": source.source,
        "max_abs_diff_vs_pytorch": parity,
    }
    path = card_path(out)
    path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ sources
def _image_size_of(spec: Any, default: int) -> int:
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    size = default
    for item in specs:
        if isinstance(item, Mapping):
            for key in ("crop_size", "im_size", "size"):
                if isinstance(item.get(key), int):
                    size = int(item[key])
                    break
    return size


def source_from_weights(name: str, host: Host, **overrides: Any) -> ExportSource:
    """A pretrained zoo entry, built as its plugin registered it.

    Example:
        >>> source_from_weights("vits16_dino", Host()).image_size   # doctest: +SKIP
        224
    """
    from oml_core.zoo import create_pretrained

    entry = host.weights.get(name)
    model = create_pretrained(name, host=host, **overrides)
    size = int(getattr(model, "input_size", 0)) or _image_size_of(entry.transforms, 224)
    architecture = {"type": entry.extractor, "arch": entry.arch, **dict(entry.init_args), "weights": name}
    return ExportSource(model=model, architecture=architecture, preprocessing=entry.transforms, image_size=size, source=name)


def source_from_run(run_dir: Path, host: Host) -> ExportSource:
    """A training run as ``oml_core.runs.load_run`` reads it: the weights of ``checkpoints/best.pt`` (else
    ``last.pt``), the validation preprocessing and distance, and the threshold of ``calibration.json`` if
    ``oml calibrate`` wrote one.

    Example:
        >>> source_from_run(Path("runs/mock-train-20240101-000000-000000"), Host()).threshold   # doctest: +SKIP
        0.83
    """
    from oml_core.runs import load_run

    run = load_run(run_dir, host=host)
    data = dict(run.config.get("data") or {})
    preprocessing: Any = list(data.get("transforms_val") or []) or {"type": "norm_resize_torch", "im_size": run.im_size}
    size = int(getattr(run.extractor, "input_size", 0)) or _image_size_of(preprocessing, run.im_size)
    architecture = {k: _plain(v) for k, v in run.extractor_config.items() if k != "weights"}
    return ExportSource(
        model=run.extractor,
        architecture=architecture,
        preprocessing=preprocessing,
        image_size=size,
        distance=run.distance,
        threshold=run.threshold,
        source=str(run.checkpoint),
    )


def _choice_dict(choice: Any) -> dict[str, Any]:
    options = attrs.asdict(choice.config, recurse=False) if choice.config is not None else {}
    return {"type": choice.type, **{k: _plain(v) for k, v in options.items()}}


def _plain(value: Any) -> Any:
    if attrs.has(type(value)):
        return _choice_dict(value) if hasattr(value, "type") else attrs.asdict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def source_from_checkpoint(path: Path, host: Host, extractor: str, options: Mapping[str, Any], image_size: int) -> ExportSource:
    """A checkpoint file (an engine checkpoint or any state_dict) for extractor ``extractor`` built with ``options``."""
    from oml_core.pipelines.train import load_model_weights

    model = host.registries.extractors.create(extractor, dict(options))
    load_model_weights(model, path)
    size = int(getattr(model, "input_size", 0)) or image_size
    preprocessing = {"type": "norm_resize_torch", "im_size": size}
    return ExportSource(
        model=model,
        architecture={"type": extractor, **dict(options)},
        preprocessing=preprocessing,
        image_size=size,
        source=str(path),
    )


__all__ = [
    "FORMATS",
    "ExportSource",
    "card_path",
    "export_model",
    "format_for",
    "source_from_checkpoint",
    "source_from_run",
    "source_from_weights",
    "write_card",
]
