"""``HFWrapper``: a Hugging Face ``transformers`` encoder as an OML extractor (texts -> embeddings).

The batch is what the text datasets give: ``{"input_ids": (B, L), "attention_mask": (B, L)}`` (or a tokenizer's
``BatchEncoding``). The embedding is the first token's last hidden state (``pooling="cls"``, OML 4.0's choice) or
the mean of the hidden states of the tokens the attention mask keeps (``pooling="mean"``), optionally L2-normalised.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Literal

import attrs
import torch
from torch import Tensor, nn

from oml_core.errors import OMLError

Pooling = Literal["cls", "mean"]


class HFWrapper(nn.Module):
    """Wrap a ``transformers`` model (BERT, RoBERTa, DistilBERT... anything returning ``last_hidden_state``).

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                              intermediate_size=32))
        >>> extractor = HFWrapper(model, feat_dim=16, pooling="mean")
        >>> batch = {"input_ids": torch.tensor([[2, 7, 9, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
        >>> extractor(batch).shape
        torch.Size([1, 16])
    """

    def __init__(
        self, model: nn.Module, feat_dim: int | None = None, *, pooling: Pooling = "cls", normalise_features: bool = False
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise OMLError(f"HFWrapper: pooling must be 'cls' or 'mean', got {pooling!r}")
        hidden = getattr(getattr(model, "config", None), "hidden_size", None)
        if feat_dim is None:  # OML 4.0's README also writes HFWrapper(model_hf)
            if hidden is None:
                raise OMLError("HFWrapper: give feat_dim; the model has no config.hidden_size to take it from")
            feat_dim = int(hidden)
        if hidden is not None and int(hidden) != int(feat_dim):
            warnings.warn(
                f"HFWrapper: feat_dim={feat_dim} but the model's hidden_size is {hidden}; the embeddings have {hidden} values",
                UserWarning,
                stacklevel=2,
            )
        self.model = model
        self._feat_dim = int(feat_dim)
        self.pooling = pooling
        self.normalise_features = normalise_features

    @property
    def feat_dim(self) -> int:
        return self._feat_dim

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        if not isinstance(x, Mapping) or "input_ids" not in x:
            raise OMLError(
                f"HFWrapper expects a dict with 'input_ids' and 'attention_mask' (a tokenizer's output), got {type(x).__name__}"
            )
        input_ids = x["input_ids"]
        mask = x.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(input_ids)
        if input_ids.ndim == 1:  # one text tokenized without a batch dimension
            input_ids, mask = input_ids.unsqueeze(0), mask.unsqueeze(0)
        hidden = self.model(input_ids, attention_mask=mask)["last_hidden_state"]
        if self.pooling == "cls":
            embeddings = hidden[:, 0, :]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            embeddings = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if self.normalise_features:
            embeddings = nn.functional.normalize(embeddings, p=2, dim=1)
        return embeddings

    def extract(self, x: Mapping[str, Tensor]) -> Tensor:
        """OML's ``IExtractor.extract``: the embeddings in eval mode without gradients."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.forward(x)
        finally:
            self.train(was_training)


@attrs.frozen(kw_only=True)
class HFTextConfig:
    """``extractor: {type: hf_text, model: NAME_OR_DIR}``: a ``transformers`` model by hub name or local folder
    (``save_pretrained`` output); ``random_init`` builds it from its config only (no weights);
    ``feat_dim`` defaults to the model's ``hidden_size``."""

    model: str
    """A hub name (e.g. ``bert-base-uncased``, read from the local Hugging Face cache when offline) or a folder."""
    pooling: Pooling = "cls"
    """``cls``: the first token's last hidden state (OML 4.0); ``mean``: the mean over the tokens the mask keeps."""
    normalise_features: bool = False
    """L2-normalise the embeddings."""
    feat_dim: int | None = None
    """The embedding size (``null``: the model's ``hidden_size``)."""
    random_init: bool = False
    """Build the model from its config only, with random weights."""


def create_hf_text(
    *, model: str, pooling: Pooling, normalise_features: bool, feat_dim: int | None, random_init: bool
) -> HFWrapper:
    """Build ``HFWrapper`` from a model name or folder (see :class:`HFTextConfig`).

    Example:
        >>> create_hf_text(model="bert-base-uncased", pooling="cls", normalise_features=False,
        ...                feat_dim=None, random_init=False)   # doctest: +SKIP
    """
    from transformers import AutoConfig, AutoModel

    try:
        if random_init:
            hf_model = AutoModel.from_config(AutoConfig.from_pretrained(model))
        else:
            hf_model = AutoModel.from_pretrained(model)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OMLError(
            f"hf_text: cannot load the transformers model {model!r} ({first}). Give a folder written by "
            f"save_pretrained, or a hub name that is in the local Hugging Face cache when offline."
        ) from None
    dim = feat_dim or int(hf_model.config.hidden_size)
    return HFWrapper(hf_model, dim, pooling=pooling, normalise_features=normalise_features)


__all__ = ["HFTextConfig", "HFWrapper", "Pooling", "create_hf_text"]
