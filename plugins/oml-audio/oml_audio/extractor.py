"""``ECAPATDNNExtractor``: OML 4.0's speaker embedder with safe, verified weight loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
from torch import Tensor, nn

from oml_audio.ecapa import ECAPATDNN
from oml_core.errors import OMLError
from oml_core.models import normalise
from oml_core.weights import WeightsZoo, default_zoo, find_zoo, load_checkpoint, load_weights_into, plugin_zoo, resolve_weights

ARCHS: dict[str, dict[str, int]] = {"ecapa_tdnn_taoruijie": {"channels": 1024, "embedding_size": 192}}
ECAPAArchName = Literal["ecapa_tdnn_taoruijie"]


class ECAPATDNNExtractor(nn.Module):
    """Waveforms at 16 kHz, ``(B, samples)`` or ``(B, 1, samples)`` -> 192-d speaker embeddings.

    Args:
        weights: ``"ecapa_tdnn_taoruijie"`` (the zoo entry), a path to a checkpoint in the published layout
            (``speaker_encoder.*`` keys and the ``speaker_loss`` head are handled; loaded strictly, with
            ``torch.load(weights_only=True)``), or ``None`` for a random initialisation.
        arch: ``ecapa_tdnn_taoruijie``.
        normalise_features: L2-normalise the output.

    Example:
        >>> extractor = ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").eval()
        >>> extractor(torch.zeros(2, 8000)).shape   # doctest: +SKIP
        torch.Size([2, 192])
    """

    pretrained_models: dict[str, dict[str, Any]] = {
        "ecapa_tdnn_taoruijie": {"init_args": {"arch": "ecapa_tdnn_taoruijie", "normalise_features": False}}
    }

    def __init__(self, weights: str | Path | None, arch: str = "ecapa_tdnn_taoruijie", normalise_features: bool = False) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise OMLError(f"ECAPATDNNExtractor: unknown arch {arch!r}; available: {', '.join(ARCHS)}")
        self.arch = arch
        self.normalise_features = normalise_features
        self.model = ECAPATDNN(**ARCHS[arch])
        if weights is None:
            return
        path, entry = resolve_weights(weights, zoo=_zoo_for(weights))
        if entry is not None and entry.arch != arch:
            raise OMLError(f"weights {entry.name!r} are for arch {entry.arch!r}, not {arch!r}: use arch={entry.arch!r}")
        load_weights_into(self.model, load_checkpoint(path), source=f"{weights} ({path})" if entry else str(path))

    @classmethod
    def from_pretrained(cls, weights: str = "ecapa_tdnn_taoruijie", **kwargs: Any) -> ECAPATDNNExtractor:
        """The extractor for a weights name (OML 4.0's ``ECAPATDNNExtractor.from_pretrained()``).

        Example:
            >>> extractor = ECAPATDNNExtractor.from_pretrained("ecapa_tdnn_taoruijie")   # doctest: +SKIP
        """
        zoo = _zoo_for(weights) or find_zoo(weights) or default_zoo()
        entry = zoo.get(weights)
        kwargs.setdefault("arch", entry.arch)
        kwargs.setdefault("normalise_features", False)
        return cls(weights, **kwargs)

    @property
    def feat_dim(self) -> int:
        return int(self.model.fc6.weight.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3 and x.shape[1] == 1:
            x = x.squeeze(1)
        if x.ndim != 2:
            raise OMLError(
                f"ECAPATDNNExtractor expects mono waveforms (batch, samples) or (batch, 1, samples) at 16 kHz, got shape "
                f"{tuple(x.shape)}; down-mix to mono first (the audio datasets do with convert_to_mono=True)"
            )
        features = self.model(x)
        return normalise(features) if self.normalise_features else features

    def extract(self, x: Tensor) -> Tensor:
        """OML's ``IExtractor.extract``: the embeddings in eval mode without gradients."""
        import torch

        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.forward(x)
        finally:
            self.train(was_training)


def _zoo_for(weights: str | Path) -> WeightsZoo | None:
    from oml_audio.plugin import oml_register_weights

    return plugin_zoo("oml_audio", oml_register_weights, weights)


@attrs.frozen(kw_only=True)
class ECAPAConfig:
    """``ecapa_tdnn``: the ECAPA-TDNN speaker embedder (16 kHz mono waveforms). ``weights``: a weights name, a
    checkpoint path or null (random)."""

    arch: ECAPAArchName = "ecapa_tdnn_taoruijie"
    weights: str | None = None
    normalise_features: bool = False


def create_ecapa(arch: str, weights: str | None, normalise_features: bool) -> ECAPATDNNExtractor:
    return ECAPATDNNExtractor(weights, arch=arch, normalise_features=normalise_features)


__all__ = ["ARCHS", "ECAPAConfig", "ECAPATDNNExtractor", "create_ecapa"]
