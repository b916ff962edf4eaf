"""The identity of a model that fills an embedding store: what must match for two embeddings to be comparable.

A ``ModelFingerprint`` holds the sha256 of the weights (the tensors themselves, so moving or renaming a checkpoint
changes nothing, while overwriting it with other weights does), the architecture (the extractor's config without
where its weights came from), the preprocessing (the inference transform), the embedding size and the distance.
``oml index`` records it in the store; ``oml index`` / ``oml search`` with any other model are refused with one
paragraph naming both.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from oml_core.errors import OMLError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["ModelFingerprint", "ModelMismatchError", "architecture_of", "fingerprint_model_identity", "weights_sha256"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class ModelMismatchError(OMLError):
    """A store was filled by another model than the one given: its embeddings would not be comparable."""


@attrs.frozen(kw_only=True)
class ModelFingerprint:
    """What identifies the embeddings a model makes.

    Example:
        >>> a = ModelFingerprint(weights_sha256="ab" * 32, architecture='{"type": "resnet"}',
        ...                      preprocessing="Resize(64)", embedding_size=512, distance="euclidean")
        >>> a.differences(attrs.evolve(a, embedding_size=128))
        ['embedding size 512 vs 128']
    """

    weights_sha256: str
    architecture: str
    preprocessing: str
    embedding_size: int
    distance: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelFingerprint:
        try:
            return cls(
                weights_sha256=str(data["weights_sha256"]),
                architecture=str(data["architecture"]),
                preprocessing=str(data["preprocessing"]),
                embedding_size=int(data["embedding_size"]),
                distance=None if data.get("distance") is None else str(data["distance"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise OMLError(f"a recorded model fingerprint is incomplete ({exc!r}): {dict(data)}") from None

    def differences(self, other: ModelFingerprint) -> list[str]:
        """What differs, in words; the distance counts only when both name one."""
        found = []
        if self.weights_sha256 != other.weights_sha256:
            found.append(f"weights sha256 {self.weights_sha256[:12]}... vs {other.weights_sha256[:12]}...")
        if self.architecture != other.architecture:
            found.append(f"architecture {self.architecture} vs {other.architecture}")
        if self.preprocessing != other.preprocessing:
            found.append(f"preprocessing {self.preprocessing} vs {other.preprocessing}")
        if self.embedding_size != other.embedding_size:
            found.append(f"embedding size {self.embedding_size} vs {other.embedding_size}")
        if self.distance is not None and other.distance is not None and self.distance != other.distance:
            found.append(f"distance {self.distance} vs {other.distance}")
        return found

    def describe(self) -> str:
        """One line: architecture, weights hash, size, distance."""
        distance = f", {self.distance} distance" if self.distance else ""
        return f"{self.architecture} with weights sha256 {self.weights_sha256[:12]}..., {self.embedding_size}-d{distance}"

    def check_same(self, other: ModelFingerprint, *, store: str, given: str) -> None:
        """Raise ``ModelMismatchError`` (one paragraph naming both models) unless ``other`` makes the same embeddings
        as this one, the model recorded in ``store``."""
        differences = self.differences(other)
        if differences:
            raise ModelMismatchError(
                f"the store {store!r} was filled by another model than {given}: its embeddings would not be comparable. "
                f"Store: {self.describe()}. Given: {other.describe()}. Differences: {'; '.join(differences)}. Use the "
                f"model that filled the store (the same weights may live at any path), or index into a new store"
            )


def weights_sha256(model: nn.Module) -> str:
    """sha256 of a model's state_dict: every tensor's name, dtype, shape and bytes (not where they were loaded from).

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 2)
        >>> weights_sha256(layer) == weights_sha256(layer)
        True
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def architecture_of(extractor_config: Mapping[str, Any]) -> str:
    """The extractor's config without the places its weights came from (``weights`` keys, at any depth), as
    compact sorted JSON.

    Example:
        >>> architecture_of({"type": "resnet", "arch": "resnet18", "weights": "/runs/a/best.pt"})
        '{"arch":"resnet18","type":"resnet"}'
    """

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items() if k != "weights"}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(extractor_config), sort_keys=True, separators=(",", ":"), default=str)


def preprocessing_of(transform: Any) -> str:
    """A transform's description on one line (``repr`` with whitespace collapsed and object addresses removed)."""
    return _ADDRESS.sub("", " ".join(repr(transform).split()))


def fingerprint_model_identity(
    model: nn.Module,
    *,
    extractor_config: Mapping[str, Any],
    transform: Any,
    distance: str | None = None,
    modality: Mapping[str, Any] | None = None,
) -> ModelFingerprint:
    """The fingerprint of ``model`` (an extractor with ``feat_dim``) used with ``transform``; for texts, audio...
    the preprocessing is the ``modality``'s config (tokenizer, length, sample rate...) instead of ``transform``.

    Example:
        >>> from oml_core.models import SimpleCNNExtractor
        >>> fp = fingerprint_model_identity(SimpleCNNExtractor(channels=(4,)), extractor_config={"type": "simple_cnn"},
        ...                                 transform="Resize(32)", distance="cosine")
        >>> fp.embedding_size, fp.distance
        (4, 'cosine')
    """
    size = int(getattr(model, "feat_dim", 0) or 0)
    return ModelFingerprint(
        weights_sha256=weights_sha256(model),
        architecture=architecture_of(extractor_config),
        preprocessing=preprocessing_of(transform) if modality is None else f"modality {architecture_of(modality)}",
        embedding_size=size,
        distance=distance,
    )
