"""Loading pretrained weights safely, the one loader every extractor uses (``load_pretrained``).

A weights name is looked up in the weights registry (``oml_core.zoo``) given by the caller (factories receive
``zoo`` from the registries' context) or in the extractor's own plugin table; the file is fetched and verified by
``oml_core.downloads``, read with ``torch.load(weights_only=True)``, safetensors, or (OpenAI's CLIP archives) by
reading the tensors of a TorchScript zip without running any of its code; wrapper prefixes are stripped and the
state_dict is loaded strictly.

Typical use in an extractor::

    entry = load_pretrained(self.model, "vits16_dino", arch="vits16", zoo=zoo, table=WEIGHTS)
"""

from __future__ import annotations

import difflib
import json
import pickle
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from oml_core.downloads import (
    ChecksumMismatchError,
    DownloadError,
    WeightsError,
    cache_dir,
    fetch,
    sha256_file,
)
from oml_core.errors import OMLError
from oml_core.zoo import WeightsEntry, WeightsRegistry, is_sha256, table_lookup

if TYPE_CHECKING:
    from oml_core.host import Host

#: Kept for plugins written against the first zoo: an entry registered with it has no checksum and is refused.
PLACEHOLDER_SHA256 = "unknown-sha256"


class UnsafeCheckpointError(WeightsError):
    """A checkpoint holds Python objects other than tensors and containers, so it was not unpickled."""


#: OML 4's ``oml.const.CKPT_SAVE_ROOT``: the folder of downloaded weights (``cache_dir() / "weights"``, fixed at import).
CKPT_SAVE_ROOT = cache_dir() / "weights"


def download(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    directory: str | Path | None = None,
    progress: bool = True,
    name: str | None = None,
) -> Path:
    """Download ``url`` (``http(s)://`` or ``file://``) into the cache, verified by its full ``sha256``.

    The file goes to ``directory`` (default ``cache_dir()/weights/<sha256[:16]>``). See ``oml_core.downloads.fetch``
    for resume, locking, offline mode and mirrors.

    Example:
        >>> path = download("https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        ...                 "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9")   # doctest: +SKIP
    """
    sha256 = sha256.lower()
    what = f"weights {name!r}" if name else url
    if not is_sha256(sha256):
        raise WeightsError(
            f"{what} has no verified sha256 (given: {sha256!r}), so OML will not download it from {url}. Download "
            f"the file yourself, check it, and pass its local path instead."
        )
    filename = filename or Path(urllib.parse.urlparse(url).path).name or "weights.bin"
    directory = Path(directory) if directory is not None else cache_dir() / "weights" / sha256[:16]
    return fetch([url], filename, sha256=sha256, directory=directory, name=name, progress=progress)


def fetch_entry(entry: WeightsEntry, *, progress: bool = True) -> Path:
    """The verified local file of zoo entry ``entry`` (downloaded on first use)."""
    return fetch(entry.urls, entry.filename, sha256=entry.sha256, md5=entry.md5, name=entry.name, progress=progress)


def _file_url_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def _is_url(value: str) -> bool:
    return urllib.parse.urlparse(value).scheme in {"http", "https", "ftp", "file"}


def find_entry(
    name: str, *, zoo: WeightsRegistry | None = None, table: Sequence[WeightsEntry] = ()
) -> WeightsEntry | None:
    """The entry for a weights name or URL: first in ``zoo`` (a host's weights registry), then in ``table`` (the
    calling plugin's own weights table), else None.

    Example:
        >>> find_entry("nothing") is None
        True
    """
    if zoo is not None:
        if name in zoo:
            return zoo.get(name)
        by_url = zoo.by_url(name)
        if by_url is not None:
            return by_url
    found = table_lookup(table, name)
    return found or next((e for e in table if name in e.urls), None)


def resolve_weights(
    weights: str | Path,
    *,
    zoo: WeightsRegistry | None = None,
    table: Sequence[WeightsEntry] = (),
    progress: bool = True,
) -> tuple[Path, WeightsEntry | None]:
    """Turn what a user passed as ``weights`` into a local file: a weights name (downloaded and verified), a URL
    registered for an entry, or a path (or ``file://`` URL) to an existing file.

    Returns the path and the zoo entry (None for a plain path).

    Example:
        >>> resolve_weights(__file__)[1] is None
        True
    """
    text = str(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return path, None
    found = find_entry(text, zoo=zoo, table=table)
    if found is not None:
        return fetch_entry(found, progress=progress), found
    if text.startswith("file://") and _file_url_path(text).is_file():
        return _file_url_path(text), None
    if _is_url(text):
        raise WeightsError(
            f"weights {text!r} is a URL that no installed plugin registered, so its checksum is unknown. Download it "
            f"with oml_core.weights.download(url, sha256=...) or by hand and pass the local path."
        )
    known = sorted({*(zoo.names() if zoo is not None else []), *(e.name for e in table)})
    hint = difflib.get_close_matches(text, known, n=1)
    raise WeightsError(
        f"weights {text!r} is neither an existing file nor a known weights name"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f". Known names: {', '.join(known) or 'none'} (`oml zoo list` shows every installed plugin's weights)."
    )


def get_transforms_for_pretrained(name: str, *, host: Host | None = None) -> tuple[Any, Callable[[str | Path], Any]]:
    """The transforms (and an image reader) that the pretrained weights ``name`` expect, as OML returns them:
    ``transforms, im_reader = get_transforms_for_pretrained("vits16_dino")``.

    Without ``host``, a host with the installed plugins is created for this call (nothing is kept).

    Example:
        >>> transforms, _ = get_transforms_for_pretrained("vits16_dino")   # doctest: +SKIP
    """
    from oml_core.data.transforms import build_transforms

    if host is None:
        from oml_core.host import Host

        host = Host(strict=False)
    entry = host.weights.get(name)
    spec = entry.transforms
    if not spec:
        raise WeightsError(f"weights {name!r} (plugin {entry.plugin!r}) registered no transforms")
    return build_transforms(host, spec if isinstance(spec, (list, tuple)) else [spec]), _read_rgb


def _read_rgb(path: str | Path) -> Any:
    from oml_core.data.images import read_image

    return read_image(path)


# ================================================================================================ loading
def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state_dict from a ``.safetensors`` file or a torch checkpoint, safely.

    Torch checkpoints are read with ``torch.load(weights_only=True)``: a pickle that would build arbitrary Python
    objects (and could run code) is refused with ``UnsafeCheckpointError``. Wrappers are unwrapped: Lightning's
    ``{"state_dict": ...}``, ``{"model": ...}`` and the like. Prefixes are kept (see ``strip_prefix``).

    Example:
        >>> state_dict = load_checkpoint("vits16.safetensors")   # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint file not found: {path}")
    if _is_safetensors(path):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"{path} is a safetensors file; install the 'safetensors' package to read it") from None
        check_safetensors_layout(path)
        device = str(map_location) if not isinstance(map_location, torch.device) else str(map_location)
        try:
            return dict(load_file(str(path), device=device))
        except Exception as exc:  # noqa: BLE001 - safetensors' own error type is not importable on every version
            raise WeightsError(f"could not read the safetensors file {path}: {exc}") from None
    check_torch_file(path)
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(
            f"refused to load {path}: it contains Python objects other than tensors and plain containers, and "
            f"unpickling them could run arbitrary code ({first_line}). OML only loads checkpoints with "
            f"torch.load(weights_only=True). If you trust the file, re-save its weights once in a trusted session: "
            f"torch.save(torch.load(path, weights_only=False)['state_dict'], 'clean.pth'), or convert it to "
            f"safetensors with `oml export`."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"could not read checkpoint {path} (damaged or truncated?): {type(exc).__name__}: {exc}") from None
    return unwrap_state_dict(loaded, source=str(path))


_SAFETENSORS_MAX_HEADER = 100 << 20


def check_safetensors_layout(path: Path) -> None:
    """Refuse a safetensors file whose header is not what the format promises, before any tensor is read.

    The first 8 bytes give the header's length; a damaged file can claim 2^40 bytes, or tensors past its end.

    Example:
        >>> check_safetensors_layout(Path("model.safetensors"))   # doctest: +SKIP
    """
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path} is not a safetensors file: it has {size} bytes, fewer than the 8 of the header length")
        length = int.from_bytes(head, "little")
        if length > min(_SAFETENSORS_MAX_HEADER, size - 8):
            raise WeightsError(
                f"{path} is a damaged safetensors file: its header claims {length:,} bytes, but the file has {size - 8:,} "
                "after the length field (truncated download?)"
            )
        try:
            header = json.loads(stream.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise WeightsError(f"{path} is a damaged safetensors file: its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path} is a damaged safetensors file: its header is not a JSON object")
    data_size = size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise WeightsError(f"{path} is a damaged safetensors file: tensor {name!r} has no valid data_offsets")
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise WeightsError(
                f"{path} is a damaged safetensors file: tensor {name!r} lies at bytes {offsets[0]}-{offsets[1]}, past the "
                f"{data_size:,} bytes of data the file holds (truncated?)"
            )


def check_torch_file(path: Path) -> None:
    """Refuse a file that is not a torch checkpoint at all (a torch file is a zip archive, or a pickle for torch
    < 1.6): a text, YAML or empty file gets one message naming it, before anything tries to unpickle it.

    Example:
        >>> check_torch_file(Path("checkpoints/last.pt"))   # doctest: +SKIP
    """
    with open(path, "rb") as stream:
        head = stream.read(16)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return
    if not head:
        raise WeightsError(f"{path} is empty: it is not a checkpoint (an interrupted download or save?)")
    looks = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "binary data"
    raise WeightsError(
        f"{path} is not a checkpoint: it is neither a torch file (zip or pickle) nor safetensors; it starts with "
        f"{looks} {head[:16]!r}. Give the .pth/.pt/.ckpt/.safetensors file of the weights."
    )


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    # A safetensors file starts with an 8-byte little-endian header length followed by a JSON object.
    with open(path, "rb") as stream:
        head = stream.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (100 << 20)


_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "params")


def unwrap_state_dict(obj: Any, *, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the state_dict inside a loaded checkpoint (Lightning ``state_dict``, ``model``...), as a plain dict.

    Example:
        >>> unwrap_state_dict({"epoch": 3, "state_dict": {"w": torch.zeros(1)}})
        {'w': tensor([0.])}
    """
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                tensors = {str(k): v for k, v in inner.items() if isinstance(v, torch.Tensor)}
                if tensors:
                    return tensors
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(f"{source} holds no state_dict (a mapping of names to tensors); found: {keys}")


def strip_prefix(state_dict: Mapping[str, torch.Tensor], expected_keys: Iterable[str]) -> tuple[dict[str, torch.Tensor], str]:
    """Remove the prefix (``model.``, ``module.``, ``module.encoder_q.``...) that wraps the keys a model expects.

    The prefix is the one under which most of ``expected_keys`` are found; keys outside it (a Lightning module's
    loss weights, MoCo's key encoder and queue) are dropped. Returns the new dict and the prefix removed.

    Example:
        >>> sd, prefix = strip_prefix({"model.w": torch.zeros(1), "criterion.w": torch.zeros(1)}, ["w"])
        >>> list(sd), prefix
        (['w'], 'model.')
    """
    expected = set(expected_keys)
    counts: dict[str, int] = {}
    for key in state_dict:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in expected:
                prefix = ".".join(parts[:i]) + ("." if i else "")
                counts[prefix] = counts.get(prefix, 0) + 1
    if not counts:
        return dict(state_dict), ""
    best = max(counts, key=lambda p: (counts[p], -len(p)))
    if best == "":
        return dict(state_dict), ""
    return {k[len(best) :]: v for k, v in state_dict.items() if k.startswith(best)}, best


def load_weights_into(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    skip: Callable[[str], bool] | None = None,
) -> None:
    """Strip wrapper prefixes, drop keys for which ``skip(key)`` is true, and load strictly into ``module``.

    A mismatch raises ``WeightsError`` naming ``source`` and listing missing, unexpected and mis-shaped keys.

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> load_weights_into(layer, {"model." + k: v for k, v in layer.state_dict().items()}, source="demo")
    """
    own = module.state_dict()
    state_dict, _ = strip_prefix(state_dict, own)
    if skip is not None:
        state_dict = {k: v for k, v in state_dict.items() if not skip(k)}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = sorted(k for k in set(own) & set(state_dict) if tuple(own[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or mis_shaped:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s), e.g. {_few(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s), e.g. {_few(unexpected)}")
        if mis_shaped:
            shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}" for k in mis_shaped[:3]]
            problems.append(f"{len(mis_shaped)} key(s) with other shapes, e.g. {'; '.join(shapes)}")
        raise WeightsError(
            f"{source} does not fit {type(module).__name__}: {'; '.join(problems)}. Check that the architecture "
            f"matches the checkpoint."
        )
    module.load_state_dict(state_dict, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (" ..." if len(keys) > n else "")


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``state_dict`` as a ``.safetensors`` file (tensors made contiguous and unshared, as the format needs).

    Example:
        >>> save_safetensors(torch.nn.Linear(2, 2).state_dict(), "linear.safetensors")   # doctest: +SKIP
    """
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise WeightsError("writing .safetensors files needs the 'safetensors' package: pip install safetensors") from None
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=dict(metadata or {}))
    return path


# ================================================================================================ the one loader
def read_state_dict(path: str | Path, entry: WeightsEntry | None = None) -> dict[str, torch.Tensor]:
    """The state_dict in ``path``: OpenAI's CLIP TorchScript archive when the entry (or the file) says so, else a
    torch checkpoint or safetensors file (``load_checkpoint``).

    Example:
        >>> read_state_dict("ViT-B-16.pt")["visual.proj"].dtype   # doctest: +SKIP
        torch.float32
    """
    path = Path(path)
    if (entry is not None and entry.format == "clip_torchscript") or _is_torchscript(path):
        from oml_core.torchscript_tensors import read_torchscript_tensors

        return read_torchscript_tensors(path)
    return load_checkpoint(path)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any(n.count("/") >= 2 and "/code/" in n for n in names)


def load_pretrained(
    module: torch.nn.Module,
    weights: str | Path,
    *,
    arch: str | None = None,
    zoo: WeightsRegistry | None = None,
    table: Sequence[WeightsEntry] = (),
    prepare: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    skip: Callable[[str], bool] | None = None,
    progress: bool = True,
) -> WeightsEntry | None:
    """Load ``weights`` (a weights name, a registered URL, or a path) into ``module`` strictly: the loader every
    extractor uses. Returns the zoo entry (None for a plain file).

    ``arch`` is checked against the entry's; ``prepare`` adapts the state_dict before loading (taking CLIP's
    ``visual.`` part, resizing position embeddings); ``skip(key)`` drops keys the module does not hold (a
    classifier removed from a ResNet). Wrapper prefixes (``model.``, ``module.encoder_q.``) are stripped.

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> torch.save(layer.state_dict(), "/tmp/linear.pth")
        >>> load_pretrained(torch.nn.Linear(2, 2), "/tmp/linear.pth") is None
        True
    """
    path, entry = resolve_weights(weights, zoo=zoo, table=table, progress=progress)
    if entry is not None and arch is not None and entry.arch != arch:
        raise OMLError(f"weights {entry.name!r} are for arch {entry.arch!r}, not {arch!r}: use arch={entry.arch!r}")
    state_dict = read_state_dict(path, entry)
    state_dict, _ = strip_prefix(state_dict, module.state_dict())
    if prepare is not None:
        state_dict = prepare(state_dict)
    source = f"{weights} ({path})" if entry is not None else str(path)
    load_weights_into(module, state_dict, source=source, skip=skip)
    return entry


__all__ = [
    "PLACEHOLDER_SHA256",
    "ChecksumMismatchError",
    "DownloadError",
    "UnsafeCheckpointError",
    "WeightsEntry",
    "WeightsError",
    "WeightsRegistry",
    "cache_dir",
    "download",
    "fetch_entry",
    "find_entry",
    "get_transforms_for_pretrained",
    "is_sha256",
    "load_checkpoint",
    "load_pretrained",
    "load_weights_into",
    "read_state_dict",
    "resolve_weights",
    "save_safetensors",
    "sha256_file",
    "strip_prefix",
    "unwrap_state_dict",
]
