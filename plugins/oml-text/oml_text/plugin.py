"""The ``oml_text`` plugin: the ``hf_text`` extractor and the ``text`` modality."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl

# components are imported inside the hooks: the host imports this module for every command, `oml --help` too


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    from oml_text.extractor import HFTextConfig, create_hf_text

    registry.add(
        "hf_text",
        config=HFTextConfig,
        factory=create_hf_text,
        summary="a Hugging Face transformers encoder (BERT, RoBERTa...) for texts: CLS or mean pooling (HFWrapper)",
        example={"model": "bert-base-uncased"},
    )


@hookimpl
def oml_register_modalities(registry: Any) -> None:
    from oml_text.modality import TextModality, TextModalityConfig

    registry.add(
        "text",
        config=TextModalityConfig,
        factory=TextModality,
        summary="dataframe rows are texts (a 'text' column), tokenized with a Hugging Face tokenizer",
        example={"tokenizer": "bert-base-uncased"},
    )
