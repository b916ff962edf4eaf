"""Read the tensors of a TorchScript archive (OpenAI's CLIP ``.pt`` files) without running anything from it.

``torch.jit.load`` would compile and run the archive's code, and ``torch.load`` refuses it; this reader parses the
archive's ``data.pkl`` with an unpickler that only builds tensors, their storages (read from ``data/<key>`` in the
zip), ordered dicts and inert placeholders for the scripted modules, and refuses any other global. The module tree
is then flattened into a state_dict (``visual.conv1.weight``...).

Example:
    >>> state_dict = read_torchscript_tensors("ViT-B-16.pt")   # doctest: +SKIP
    >>> state_dict["visual.proj"].shape                         # doctest: +SKIP
    torch.Size([768, 512])
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from oml_core.downloads import WeightsError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class ScriptObject:
    """An inert stand-in for a scripted module: it only keeps the attributes the archive gives it."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_oml_state"] = state if isinstance(state, dict) else {}


def _rebuild_tensor(flat: torch.Tensor, offset: int, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    return flat.as_strided(tuple(size), tuple(stride), int(offset))


class _TensorsOnlyUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module.startswith("__torch__"):
            return type(name, (ScriptObject,), {})
        raise WeightsError(
            f"refused to read {self._source}: its data.pkl asks for the Python global {module}.{name}, which a "
            f"TorchScript archive of plain modules does not need (only tensors, storages and scripted modules are read)"
        )

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise WeightsError(f"{self._source}: unexpected persistent id {pid!r} in data.pkl")
        dtype, key = pid[1], str(pid[2])
        if key not in self._storages:
            if not isinstance(dtype, torch.dtype):
                raise WeightsError(f"{self._source}: storage {key} has an unknown type {dtype!r}")
            raw = bytearray(self._archive.read(f"{self._prefix}data/{key}"))
            self._storages[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self._storages[key]


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    state = obj.__dict__.get("_oml_state", {}) if isinstance(obj, ScriptObject) else {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[f"{prefix}{key}"] = value
        elif isinstance(value, ScriptObject):
            _flatten(value, f"{prefix}{key}.", out, seen)


def read_torchscript_tensors(path: str | Path, *, to_float32: bool = True) -> dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive as a flat state_dict, read without executing it.

    Half-precision tensors become float32 when ``to_float32`` (OpenAI's CLIP files are stored in fp16).
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path} is not a TorchScript archive (a zip file): {exc}") from None
    with archive:
        candidates = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not candidates:
            raise WeightsError(f"{path} has no <name>/data.pkl: it is not a TorchScript archive")
        name = candidates[0]
        prefix = name[: -len("data.pkl")]
        root = _TensorsOnlyUnpickler(archive.read(name), archive, prefix, str(path)).load()
    out: dict[str, torch.Tensor] = {}
    _flatten(root, "", out, set())
    if not out:
        raise WeightsError(f"{path}: found no tensors in the archive's module tree")
    converted = {}
    for key, tensor in out.items():
        tensor = tensor.clone()  # own memory, detached from the archive's byte buffers
        converted[key] = tensor.float() if to_float32 and tensor.dtype == torch.float16 else tensor
    return converted


__all__ = ["ScriptObject", "read_torchscript_tensors"]
