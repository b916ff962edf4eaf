"""``ECAPATDNNExtractor``: OML 4.0's speaker embedder with safe, verified weight loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
from torch import Tensor, nn

from oml_audio import pretrained
from oml_audio.ecapa import ECAPATDNN
from oml_core.distances import normalise
from oml_core.errors import OMLError
from oml_core.weights import find_entry, load_pretrained
from oml_core.zoo import WeightsRegistry

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
        zoo: the weights registry to look names up in (a host's); this plugin's table comes after it.

    Example:
        >>> extractor = ECAPATDNNExtractor(None, arch="ecapa_tdnn_taoruijie").eval()
        >>> extractor(torch.zeros(2, 8000)).shape   # doctest: +SKIP
        torch.Size([2, 192])
    """

    #: OML's ``ECAPATDNNExtractor.pretrained_models``: the zoo's weights for this extractor, by name
    pretrained_models = {entry.name: entry for entry in pretrained.WEIGHTS if entry.extractor == "ecapa_tdnn"}

    def __init__(
        self,
        weights: str | Path | None,
        arch: str = "ecapa_tdnn_taoruijie",
        normalise_features: bool = False,
        *,
        zoo: WeightsRegistry | None = None,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise OMLError(f"ECAPATDNNExtractor: unknown arch {arch!r}; available: {', '.join(ARCHS)}")
        self.arch = arch
        self.normalise_features = normalise_features
        self.model = ECAPATDNN(**ARCHS[arch])
        if weights is None:
            return
        load_pretrained(self.model, weights, arch=arch, zoo=zoo, table=pretrained.WEIGHTS)

    @classmethod
    def from_pretrained(
        cls, weights: str = "ecapa_tdnn_taoruijie", *, zoo: WeightsRegistry | None = None, **kwargs: Any
    ) -> ECAPATDNNExtractor:
        """The extractor for a weights name (OML 4.0's ``ECAPATDNNExtractor.from_pretrained()``).

        Example:
            >>> extractor = ECAPATDNNExtractor.from_pretrained("ecapa_tdnn_taoruijie")   # doctest: +SKIP
        """
        entry = find_entry(weights, zoo=zoo, table=pretrained.WEIGHTS)
        if entry is None or entry.extractor != "ecapa_tdnn":
            known = ", ".join(e.name for e in pretrained.WEIGHTS)
            raise OMLError(f"ECAPATDNNExtractor.from_pretrained: {weights!r} is not an ECAPA weights name; known: {known}")
        for key, value in {"arch": entry.arch, **entry.init_args}.items():
            kwargs.setdefault(key, value)
        return cls(weights, zoo=zoo, **kwargs)

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


@attrs.frozen(kw_only=True)
class ECAPAConfig:
    """``ecapa_tdnn``: the ECAPA-TDNN speaker embedder (16 kHz mono waveforms). ``weights``: a weights name, a
    checkpoint path or null (random)."""

    arch: ECAPAArchName = "ecapa_tdnn_taoruijie"
    weights: str | None = None
    normalise_features: bool = False


def create_ecapa(
    arch: str, weights: str | None, normalise_features: bool, zoo: WeightsRegistry | None = None
) -> ECAPATDNNExtractor:
    return ECAPATDNNExtractor(weights, arch=arch, normalise_features=normalise_features, zoo=zoo)


__all__ = ["ARCHS", "ECAPAConfig", "ECAPATDNNExtractor", "create_ecapa"]
