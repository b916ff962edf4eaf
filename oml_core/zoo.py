"""The weights registry: named pretrained checkpoints, with what is needed to fetch, verify, build and describe
them. Plugins fill it through ``oml_register_weights(zoo)`` like every other registry; factories reach it
through the registries' context (a factory parameter named ``zoo``).

Example:
    >>> zoo = WeightsRegistry()
    >>> with zoo.registering("my_plugin"):
    ...     zoo.add("tiny", urls=["https://example.org/tiny.pth"], sha256="0" * 64, arch="vits16", extractor="vit")
    >>> zoo.get("tiny").filename, zoo.plugin_of("tiny")
    ('tiny.pth', 'my_plugin')
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from oml_core.errors import OMLError
from oml_core.registry import NamedRegistry

if TYPE_CHECKING:
    from oml_core.host import Host
    from oml_core.registry import Registries

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MD5_PREFIX_RE = re.compile(r"[0-9a-f]{6,32}")

#: How a checkpoint file is read: a (possibly wrapped) state_dict in a torch pickle or safetensors file, or
#: OpenAI's CLIP TorchScript archive (its tensors are read from the zip without running its code).
CheckpointFormat = Literal["state_dict", "clip_torchscript"]


def is_sha256(value: str | None) -> bool:
    """True for a full, lower-case hex sha256 digest.

    Example:
        >>> is_sha256("0" * 64), is_sha256("cf0f22")
        (True, False)
    """
    return bool(value) and bool(_SHA256_RE.fullmatch(str(value)))


@attrs.frozen(kw_only=True)
class WeightsEntry:
    """One named checkpoint: where to get it, how to verify it, which extractor (and arguments) it fits, its
    preprocessing, and its model card (what it is, its licence, where it comes from, what it scored)."""

    name: str
    extractor: str
    arch: str
    urls: tuple[str, ...]
    filename: str
    sha256: str | None = None
    md5: str | None = None
    format: CheckpointFormat = "state_dict"
    init_args: Mapping[str, Any] = attrs.field(factory=dict)
    transforms: Any = attrs.field(factory=dict)
    summary: str = ""
    architecture: str = ""
    embedding_size: int | None = None
    licence: str = ""
    source: str = ""
    metrics: Mapping[str, Any] = attrs.field(factory=dict)
    plugin: str = ""

    @property
    def url(self) -> str:
        """The first (preferred) URL."""
        return self.urls[0]

    @property
    def verified(self) -> bool:
        """True when the entry carries a checksum (a full sha256 or the publisher's md5 prefix)."""
        return is_sha256(self.sha256) or bool(self.md5)

    def card(self) -> dict[str, Any]:
        """The model card as a JSON-ready dict (``oml zoo show NAME``).

        Example:
            >>> WeightsEntry(name="x", extractor="vit", arch="vits16", urls=("https://e/x.pth",), filename="x.pth",
            ...              sha256="0" * 64).card()["checksum"]
            'sha256:0000000000000000000000000000000000000000000000000000000000000000'
        """
        checksum = f"sha256:{self.sha256}" if self.sha256 else f"md5 prefix:{self.md5}"
        return {
            "name": self.name,
            "summary": self.summary,
            "architecture": self.architecture or self.arch,
            "extractor": {"type": self.extractor, "arch": self.arch, **dict(self.init_args)},
            "embedding_size": self.embedding_size,
            "preprocessing": self.transforms,
            "licence": self.licence,
            "source": self.source,
            "reported_metrics": dict(self.metrics),
            "urls": list(self.urls),
            "filename": self.filename,
            "checksum": checksum,
            "plugin": self.plugin,
        }


class WeightsRegistry(NamedRegistry[WeightsEntry]):
    """Named pretrained weights, by name (``host.registries.weights``, also ``host.weights``)."""

    def __init__(self, owner: Registries | None = None) -> None:
        super().__init__("weights", owner)

    def add(
        self,
        name: str,
        *,
        arch: str,
        extractor: str,
        urls: Sequence[str] = (),
        url: str | None = None,
        sha256: str | None = None,
        md5: str | None = None,
        filename: str | None = None,
        format: CheckpointFormat = "state_dict",
        init_args: Mapping[str, Any] | None = None,
        transforms: Any = None,
        summary: str = "",
        architecture: str = "",
        embedding_size: int | None = None,
        licence: str = "",
        source: str = "",
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Register checkpoint ``name``; ``extractor`` is the registered extractor that loads it with
        ``arch=arch`` and ``init_args``. Give a full ``sha256`` where known, else the publisher's ``md5`` (a prefix
        of at least 6 hex digits): the file's sha256 is then recorded in the cache on first download."""
        plugin = self.current_plugin
        all_urls = tuple(([url] if url else []) + list(urls))
        if not all_urls:
            raise OMLError(f"plugin {plugin!r} registered weights {name!r} without a URL")
        sha = sha256.lower() if sha256 else None
        if sha is not None and not is_sha256(sha):
            raise OMLError(
                f"plugin {plugin!r} registered weights {name!r} with sha256={sha256!r}: give the full 64-hex-digit "
                f"sha256 of the file, or md5=<the publisher's md5 or its prefix> when only that is known"
            )
        md5_value = md5.lower() if md5 else None
        if md5_value is not None and not _MD5_PREFIX_RE.fullmatch(md5_value):
            raise OMLError(f"plugin {plugin!r} registered weights {name!r} with md5={md5!r}: give 6 to 32 hex digits")
        if sha is None and md5_value is None:
            raise OMLError(
                f"plugin {plugin!r} registered weights {name!r} without a checksum: give sha256= or md5= so that "
                f"a corrupted or replaced file is caught"
            )
        entry = WeightsEntry(
            name=name,
            extractor=extractor,
            arch=arch,
            urls=all_urls,
            filename=filename or _default_filename(name, all_urls[0]),
            sha256=sha,
            md5=md5_value,
            format=format,
            init_args=dict(init_args or {}),
            transforms=transforms if transforms is not None else {},
            summary=summary,
            architecture=architecture,
            embedding_size=embedding_size,
            licence=licence,
            source=source,
            metrics=dict(metrics or {}),
            plugin=plugin,
        )
        self.put(name, entry)

    def add_entry(self, entry: WeightsEntry) -> None:
        """Register a ready ``WeightsEntry`` (a plugin's weights table holds them), attributed to the current plugin."""
        self.put(entry.name, attrs.evolve(entry, plugin=self.current_plugin))

    def by_url(self, url: str) -> WeightsEntry | None:
        """The entry one of whose URLs is ``url``, or None."""
        return next((e for e in self._items.values() if url in e.urls), None)

    def entries(self) -> list[WeightsEntry]:
        return [self._items[n] for n in self.names()]

    def _explain_unknown(self, name: str) -> str:
        message = super()._explain_unknown(name)
        if not self._items:
            message += " Install a plugin with weights (oml-vit, oml-resnet, oml-clip) or pass a local file."
        return message


def _default_filename(name: str, url: str) -> str:
    base = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    return base or f"{name}.ckpt"


def entry(
    name: str,
    *,
    arch: str,
    extractor: str,
    urls: Sequence[str],
    sha256: str | None = None,
    md5: str | None = None,
    filename: str | None = None,
    **card: Any,
) -> WeightsEntry:
    """Build a ``WeightsEntry`` for a plugin's weights table (checked when the table is registered).

    Example:
        >>> entry("x", arch="vits16", extractor="vit", urls=["https://e/x.pth"], md5="cf0f22").filename
        'x.pth'
    """
    return WeightsEntry(
        name=name,
        extractor=extractor,
        arch=arch,
        urls=tuple(urls),
        filename=filename or _default_filename(name, urls[0]),
        sha256=sha256,
        md5=md5,
        **card,
    )


def register_table(zoo: WeightsRegistry, table: Sequence[WeightsEntry]) -> None:
    """Add every entry of a plugin's weights table to ``zoo``, with the same checks as ``WeightsRegistry.add``.

    Example:
        >>> zoo = WeightsRegistry()
        >>> register_table(zoo, [entry("x", arch="a", extractor="vit", urls=["https://e/x.pth"], md5="cf0f22")])
        >>> zoo.names()
        ['x']
    """
    for item in table:
        fields = attrs.asdict(item, recurse=False)
        fields.pop("plugin")
        fields["urls"] = list(fields["urls"])
        zoo.add(**fields)


def table_lookup(table: Sequence[WeightsEntry], name: str) -> WeightsEntry | None:
    """The entry called ``name`` in a plugin's weights table, or None (how an extractor built without a host
    finds its own plugin's weights)."""
    return next((item for item in table if item.name == name), None)


def create_pretrained(name: str, *, host: Host | None = None, **overrides: Any) -> Any:
    """Build the extractor of weights ``name`` as its plugin registered it (extractor, arch, OML's constructor
    arguments) and load the weights: OML's ``from_pretrained`` for any entry. Without ``host``, a host with the
    installed plugins is created for this call (nothing is kept).

    Example:
        >>> model = create_pretrained("vits16_dino")   # doctest: +SKIP
    """
    if host is None:
        from oml_core.host import Host

        host = Host(strict=False)
    item = host.weights.get(name)
    spec = host.registries.extractors.get(item.extractor)
    config: dict[str, Any] = {**item.init_args, **overrides, "weights": name}
    if "arch" in attrs.fields_dict(spec.config):
        config.setdefault("arch", item.arch)
    return host.registries.extractors.create(item.extractor, config)


__all__ = [
    "CheckpointFormat",
    "WeightsEntry",
    "WeightsRegistry",
    "create_pretrained",
    "entry",
    "is_sha256",
    "register_table",
    "table_lookup",
]
