"""Offline test models: a tiny randomly initialised BERT and a WordPiece tokenizer trained here on given texts,
saved with ``save_pretrained`` so that ``AutoModel`` / ``AutoTokenizer.from_pretrained(folder)`` load them.

Example:
    >>> folder = build_tiny_text_model(tempfile.mkdtemp(), ["a red chair", "a blue table"])   # doctest: +SKIP
    >>> AutoTokenizer.from_pretrained(folder)("a red chair")["input_ids"][:1]   # doctest: +SKIP
    [2]
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 400, model_max_length: int = 128) -> object:
    """A BERT-style WordPiece ``PreTrainedTokenizerFast`` (lower-cased, ``[CLS] text [SEP]``) trained on ``texts``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))  # noqa: S106
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS))
    tokenizer.train_from_iterator(list(texts), trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",  # noqa: S106 - special tokens, not passwords
        pad_token="[PAD]",  # noqa: S106
        cls_token="[CLS]",  # noqa: S106
        sep_token="[SEP]",  # noqa: S106
        mask_token="[MASK]",  # noqa: S106 - a token, not a password
        model_max_length=model_max_length,
    )


def build_tiny_text_model(
    folder: str | os.PathLike[str],
    texts: Iterable[str],
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    max_length: int = 128,
    seed: int = 0,
) -> Path:
    """Save a tokenizer trained on ``texts`` and a randomly initialised BERT (``hidden_size``, ``num_layers``) into
    ``folder``; returns it."""
    import torch
    from transformers import BertConfig, BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, model_max_length=max_length)
    tokenizer.save_pretrained(folder)  # type: ignore[attr-defined]
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_length,
    )
    BertModel(config).save_pretrained(folder)
    return folder


__all__ = ["build_tiny_text_model", "train_tokenizer"]
