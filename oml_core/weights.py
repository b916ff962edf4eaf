"""The weights zoo: named pretrained checkpoints registered by plugins (``oml_register_weights``), and the safe
way to use them: download to a cache with a progress bar, verify the full sha256, load with
``torch.load(weights_only=True)`` or safetensors, strip wrapper prefixes, load strictly.

Typical use in an extractor::

    path, entry = resolve_weights("vits16_dino")          # zoo name, URL registered in the zoo, or local path
    load_weights_into(model, load_checkpoint(path), source=str(path))
"""

from __future__ import annotations

import difflib
import hashlib
import os
import pickle
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch
from tqdm.auto import tqdm

from oml_core.errors import DuplicateComponentError, OMLError, UnknownComponentError

if TYPE_CHECKING:
    from oml_core.host import Host


@attrs.frozen
class WeightsEntry:
    """One named checkpoint: where to get it, its full sha256, which architecture it fits and its transforms."""

    name: str
    url: str
    sha256: str
    arch: str
    extractor: str
    transforms: Mapping[str, Any] = attrs.field(factory=dict)
    summary: str = ""
    plugin: str = ""

    @property
    def verified(self) -> bool:
        """False while the entry carries ``PLACEHOLDER_SHA256`` (it then refuses to download)."""
        return is_sha256(self.sha256)


_LIVE_ZOOS: list[weakref.ref[WeightsZoo]] = []


class WeightsZoo:
    """Named weights, by name.

    Example:
        >>> zoo = WeightsZoo()
        >>> zoo.add("vits16_dino", url="https://example/x.pth", sha256="0" * 64, arch="vits16", extractor="vit")
        >>> zoo.get("vits16_dino").arch
        'vits16'
    """

    def __init__(self) -> None:
        self._entries: dict[str, WeightsEntry] = {}
        self._current_plugin: str | None = None
        self.raise_on_duplicate = True
        self.conflicts: list[DuplicateComponentError] = []
        # every host's zoo is findable by name lookups that are given no zoo (an extractor built by a registry)
        _LIVE_ZOOS.append(weakref.ref(self))

    @contextmanager
    def registering(self, plugin: str) -> Iterator[WeightsZoo]:
        previous, self._current_plugin = self._current_plugin, plugin
        try:
            yield self
        finally:
            self._current_plugin = previous

    def add(
        self,
        name: str,
        *,
        url: str,
        sha256: str,
        arch: str,
        extractor: str,
        transforms: Mapping[str, Any] | None = None,
        summary: str = "",
    ) -> None:
        """Register checkpoint ``name``; ``extractor`` is the registered extractor that loads it."""
        plugin = self._current_plugin or "<unknown>"
        if not (is_sha256(sha256.lower()) or sha256 == PLACEHOLDER_SHA256):
            raise OMLError(
                f"plugin {plugin!r} registered weights {name!r} with sha256={sha256!r}: give the full 64-hex-digit "
                f"sha256 of the file (a prefix or an md5 is not enough), or PLACEHOLDER_SHA256 if it is not known yet"
            )
        if name in self._entries:
            error = DuplicateComponentError("weights", name, self._entries[name].plugin, plugin)
            if self.raise_on_duplicate:
                raise error
            self.conflicts.append(error)
            return
        self._entries[name] = WeightsEntry(name, url, sha256.lower(), arch, extractor, dict(transforms or {}), summary, plugin)

    def get(self, name: str) -> WeightsEntry:
        if name not in self._entries:
            raise UnknownComponentError(f"unknown weights {name!r}; available: {', '.join(sorted(self._entries)) or 'none'}")
        return self._entries[name]

    def download(self, name: str, *, progress: bool = True) -> Path:
        """Download (or find in the cache) the file of weights ``name`` and return its verified path."""
        entry = self.get(name)
        return download(entry.url, entry.sha256, name=entry.name, progress=progress)

    def remove_plugin(self, plugin: str) -> None:
        self._entries = {n: e for n, e in self._entries.items() if e.plugin != plugin}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


# ================================================================================================ downloads
# Everything below turns a weights name, URL or path into a verified local file and a plain state_dict.

#: The sha256 of a zoo entry whose full checksum is not known yet. It never matches a file, so such an entry refuses
#: to download (with a message saying what to do) instead of trusting unverified bytes.
PLACEHOLDER_SHA256 = "unknown-sha256"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class WeightsError(OMLError):
    """A checkpoint could not be found, downloaded, verified or loaded."""


class ChecksumMismatchError(WeightsError):
    """A downloaded file does not have the sha256 it was registered with (the file has been deleted)."""


class DownloadError(WeightsError):
    """A download failed (offline machine, HTTP error, unreachable host...)."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint holds Python objects other than tensors and containers, so it was not unpickled."""


def is_sha256(value: str) -> bool:
    """True for a full, lower-case hex sha256 digest.

    Example:
        >>> is_sha256("0" * 64), is_sha256(PLACEHOLDER_SHA256)
        (True, False)
    """
    return bool(_SHA256_RE.fullmatch(value))


def cache_dir() -> Path:
    """Where OML keeps downloads: ``$OML_CACHE_DIR``, else ``$XDG_CACHE_HOME/oml``, else ``~/.cache/oml``.

    Example:
        >>> cache_dir().name in {"oml"} or "OML_CACHE_DIR" in os.environ
        True
    """
    explicit = os.environ.get("OML_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "oml"


#: OML 4's ``oml.const.CKPT_SAVE_ROOT``: the folder of downloaded weights (``cache_dir() / "weights"``, fixed at import).
CKPT_SAVE_ROOT = cache_dir() / "weights"


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in chunks.

    Example:
        >>> sha256_file(__file__) == sha256_file(__file__)
        True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_url(value: str) -> bool:
    return urllib.parse.urlparse(value).scheme in {"http", "https", "ftp", "file"}


def _file_url_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _already_verified(path: Path, sha256: str) -> bool:
    """A cached file is trusted again without re-hashing if its marker names the same hash, size and mtime."""
    marker = _verified_marker(path)
    if not (path.is_file() and marker.is_file()):
        return False
    stat = path.stat()
    return marker.read_text().split() == [sha256, str(stat.st_size), str(stat.st_mtime_ns)]


def _mark_verified(path: Path, sha256: str) -> None:
    stat = path.stat()
    _verified_marker(path).write_text(f"{sha256} {stat.st_size} {stat.st_mtime_ns}\n")


def download(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    directory: str | Path | None = None,
    progress: bool = True,
    name: str | None = None,
) -> Path:
    """Download ``url`` (``http(s)://`` or ``file://``) into the cache and return the verified local file.

    The file goes to ``directory`` (default ``cache_dir()/weights``), is written to a temporary file next to its
    final name, hashed while it streams, and renamed only if its sha256 equals ``sha256``; on a mismatch the
    temporary file is deleted and ``ChecksumMismatchError`` says so. A file already in the cache is re-used after
    checking its hash (once; a marker file remembers the check). ``name`` (the zoo name) only improves messages.

    Example:
        >>> path = download("https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        ...                 "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9")   # doctest: +SKIP
    """
    what = f"weights {name!r}" if name else url
    sha256 = sha256.lower()
    if not is_sha256(sha256):
        raise WeightsError(
            f"{what} has no verified sha256 (registered value: {sha256!r}), so OML will not download it from {url}. "
            f"Download the file yourself, check it, and pass its local path instead of the name, e.g. "
            f"ViTExtractor(weights='/path/to/file.pth', arch=...) or ResnetExtractor(weights='/path/to/file.pth', ...)."
        )
    directory = Path(directory) if directory is not None else cache_dir() / "weights"
    filename = filename or Path(urllib.parse.urlparse(url).path).name or "weights.bin"
    target = directory / sha256[:16] / filename
    if target.is_file():
        if _already_verified(target, sha256):
            return target
        actual = sha256_file(target)
        if actual == sha256:
            _mark_verified(target, sha256)
            return target
        target.unlink()  # a corrupted or tampered cache entry: fetch it again

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - scheme checked by the caller
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(
                    f"could not download {what} from {url}: {reason}. If this machine is offline or the URL is blocked, "
                    f"download the file on another machine, copy it here and pass its local path instead of the name "
                    f"(e.g. weights='/path/to/{filename}'), or put it at {target} (sha256 {sha256})."
                ) from None
            with response:
                total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                with tqdm(
                    total=int(total) if total and total.isdigit() else None,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"Downloading {filename}",
                    disable=not progress,
                    leave=False,
                ) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        actual = digest.hexdigest()
        if actual != sha256:
            tmp.unlink()
            raise ChecksumMismatchError(
                f"the file downloaded for {what} from {url} has sha256 {actual}, but {sha256} was expected; "
                f"the downloaded file was deleted. The file on the server changed or the download was corrupted: "
                f"try again, and report it to the plugin that registered {name or 'these weights'} if it persists."
            )
        os.replace(tmp, target)
        _mark_verified(target, sha256)
        return target
    finally:
        if tmp.exists():
            tmp.unlink()


def resolve_weights(
    weights: str | Path, *, zoo: WeightsZoo | None = None, progress: bool = True
) -> tuple[Path, WeightsEntry | None]:
    """Turn what a user passed as ``weights`` into a local file: a zoo name (downloaded and verified), a
    ``file://`` or ``http(s)://`` URL registered in the zoo, or a path to an existing file.

    Returns the path and the zoo entry (None for a plain path). Without ``zoo``, the zoo of the installed plugins
    (``default_zoo()``) is used.

    Example:
        >>> resolve_weights(__file__)[1] is None
        True
    """
    text = str(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return path, None
    if text.startswith("file://") and _file_url_path(text).is_file() and (zoo is None or not _entry_by_url(zoo, text)):
        return _file_url_path(text), None
    if zoo is None:
        zoo = find_zoo(text) or default_zoo()
    entry = zoo._entries.get(text) or _entry_by_url(zoo, text)
    if entry is not None:
        return download(entry.url, entry.sha256, name=entry.name, progress=progress), entry
    if _is_url(text):
        raise WeightsError(
            f"weights {text!r} is a URL that no installed plugin registered, so its checksum is unknown. Download it "
            f"with oml_core.weights.download(url, sha256=...) or by hand and pass the local path."
        )
    hint = difflib.get_close_matches(text, zoo.names(), n=1)
    raise WeightsError(
        f"weights {text!r} is neither an existing file nor a known weights name"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f". Known names: {', '.join(zoo.names()) or 'none (install oml-vit or oml-resnet)'}."
    )


_PLUGIN_ZOOS: dict[str, WeightsZoo] = {}


def plugin_zoo(plugin: str, register: Callable[[WeightsZoo], None], name: str | Path) -> WeightsZoo | None:
    """A plugin's own zoo (built once from its ``oml_register_weights``) if it knows ``name``, else None, so that a
    plugin resolves its own weight names without starting a host.

    Example:
        >>> from oml_vit.plugin import oml_register_weights   # doctest: +SKIP
        >>> plugin_zoo("oml_vit", oml_register_weights, "vits16_dino")   # doctest: +SKIP
    """
    zoo = _PLUGIN_ZOOS.get(plugin)
    if zoo is None:
        zoo = WeightsZoo()
        with zoo.registering(plugin):
            register(zoo)
        _PLUGIN_ZOOS[plugin] = zoo
    return zoo if str(name) in zoo else None


def find_zoo(name: str) -> WeightsZoo | None:
    """The most recently created zoo (of any host alive) that knows weights ``name``, or None.

    This is how ``ViTExtractor("my_weights", ...)`` finds weights that a local plugin registered in the host that
    builds the extractor, although the extractor is not given the host.
    """
    for ref in reversed(_LIVE_ZOOS):
        zoo = ref()
        if zoo is not None and name in zoo:
            return zoo
    _LIVE_ZOOS[:] = [ref for ref in _LIVE_ZOOS if ref() is not None]
    return None


def _entry_by_url(zoo: WeightsZoo, url: str) -> WeightsEntry | None:
    return next((e for e in zoo._entries.values() if e.url == url), None)


_DEFAULT_HOST: Host | None = None


def default_host() -> Host:
    """A non-strict host with the built-ins and every installed plugin, built once on first use; extractors use
    its weights zoo and transforms when they are given a weights name outside a program's own host."""
    global _DEFAULT_HOST
    if _DEFAULT_HOST is None:
        from oml_core.host import Host

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a broken plugin is reported by `oml plugins`, not here
            _DEFAULT_HOST = Host(strict=False)
    return _DEFAULT_HOST


def default_zoo() -> WeightsZoo:
    """The weights registered by the built-ins and every installed plugin (see ``default_host``).

    Example:
        >>> isinstance(default_zoo(), WeightsZoo)
        True
    """
    return default_host().weights


def get_transforms_for_pretrained(name: str, *, host: Host | None = None) -> tuple[Any, Callable[[str | Path], Any]]:
    """The transforms (and an image reader) that the pretrained weights ``name`` expect, as OML returns them:
    ``transforms, im_reader = get_transforms_for_pretrained("vits16_dino")``.

    The zoo entry holds a transforms spec (``{"type": <transforms component>, ...options}``), built with the
    transforms registry of ``host`` (default: ``default_host()``). The reader is ``oml_core.data.read_image``.

    Example:
        >>> transforms, _ = get_transforms_for_pretrained("vits16_dino")   # doctest: +SKIP
    """
    host = host if host is not None else default_host()
    entry = host.weights.get(name)
    spec = dict(entry.transforms)
    kind = spec.pop("type", None)
    if not isinstance(kind, str):
        raise WeightsError(f"weights {name!r} (plugin {entry.plugin!r}) registered no transforms")
    return host.registries.transforms.create(kind, spec), _read_rgb


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
        device = str(map_location) if not isinstance(map_location, torch.device) else str(map_location)
        return dict(load_file(str(path), device=device))
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
    except (RuntimeError, EOFError, OSError) as exc:
        raise WeightsError(f"could not read checkpoint {path}: {exc}") from None
    return unwrap_state_dict(loaded, source=str(path))


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


class PretrainedModels:
    """OML's ``<Extractor>.pretrained_models`` as a class attribute: ``{weights name: WeightsEntry}`` of the default
    zoo's weights for one extractor type, read when accessed (so plugins installed later are included).

    Example:
        >>> class MyExtractor:
        ...     pretrained_models = PretrainedModels("no_such_extractor")
        >>> MyExtractor.pretrained_models
        {}
    """

    def __init__(self, extractor: str) -> None:
        self.extractor = extractor

    def __get__(self, instance: object, owner: type | None = None) -> dict[str, WeightsEntry]:
        zoo = default_zoo()
        entries = (zoo.get(name) for name in zoo.names())
        return {entry.name: entry for entry in entries if entry.extractor == self.extractor}
