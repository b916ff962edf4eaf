"""A tiny BERT with a WordPiece tokenizer trained here, on a corpus this file writes: no download."""

from __future__ import annotations

from pathlib import Path

import pytest
from oml_text import get_mock_texts_dataset
from oml_text.testing import build_tiny_text_model

EXTRA_CORPUS = (
    "the quick brown fox jumps over the lazy dog",
    "metric learning maps similar items close together",
    "a red chair, a blue table and a green lamp",
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_bert")
    df_train, df_val = get_mock_texts_dataset()
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join([*df_train["text"], *df_val["text"], *EXTRA_CORPUS]) + "\n", encoding="utf-8")
    return build_tiny_text_model(folder / "model", corpus.read_text(encoding="utf-8").splitlines(), hidden_size=32)


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def bert(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model_dir)
