"""The text datasets: items, batches, OML's accessors and clear errors naming the row."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from oml_text import (
    TextBaseDataset,
    TextLabeledDataset,
    TextQueryGalleryDataset,
    TextQueryGalleryLabeledDataset,
    get_mock_texts_dataset,
    visualize_text,
)
from torch.utils.data import DataLoader

from oml_core.data.frames import FrameDataError


def test_mock_dataset_has_oml_columns_and_splits() -> None:
    df_train, df_val = get_mock_texts_dataset()
    assert set(df_train.columns) == {"text", "label", "category", "split", "is_query", "is_gallery"}
    assert set(df_train["label"]) == {0, 1, 2, 3} and set(df_val["label"]) == {4, 5, 6}
    assert (df_train["split"] == "train").all() and (df_val["split"] == "validation").all()
    assert df_val["is_query"].all() and df_val["is_gallery"].all()
    assert df_train.groupby("label").size().min() >= 2 and df_val.groupby("label").size().min() >= 2


def test_labeled_items_and_batches(tokenizer) -> None:  # type: ignore[no-untyped-def]
    df_train, _ = get_mock_texts_dataset()
    dataset = TextLabeledDataset(df_train, tokenizer=tokenizer, max_length=48)
    item = dataset[3]
    ids, mask = item["input_tensors"]["input_ids"], item["input_tensors"]["attention_mask"]
    assert ids.shape == mask.shape == (48,)
    expected = tokenizer(df_train["text"][3])["input_ids"]
    n = int(mask.sum())
    assert ids[:n].tolist() == expected and (ids[n:] == tokenizer.pad_token_id).all() and not mask[n:].any()
    assert item["labels"] == int(df_train["label"][3]) and item["idx"] == 3 and item["categories"] == df_train["category"][3]
    assert dataset.get_labels().tolist() == df_train["label"].tolist()
    assert dataset.get_label2category() == dict(zip(df_train["label"], df_train["category"]))
    batch = next(iter(DataLoader(dataset, batch_size=5)))
    assert batch["input_tensors"]["input_ids"].shape == (5, 48) and batch["input_tensors"]["attention_mask"].dtype == torch.long
    assert batch["labels"].tolist() == df_train["label"][:5].tolist()


def test_query_gallery_datasets(tokenizer) -> None:  # type: ignore[no-untyped-def]
    _, df_val = get_mock_texts_dataset()
    df_val = df_val.copy()
    df_val.loc[::2, "is_gallery"] = False
    labeled = TextQueryGalleryLabeledDataset(df_val, tokenizer=tokenizer, extra_data={"weight": list(range(len(df_val)))})
    assert labeled.get_query_ids().tolist() == list(range(len(df_val)))
    assert labeled.get_gallery_ids().tolist() == list(range(1, len(df_val), 2))
    assert labeled[2]["is_gallery"] is False and labeled[1]["is_query"] is True and labeled[4]["weight"] == 4
    unlabeled = TextQueryGalleryDataset(df_val.drop(columns=["label"]), tokenizer=tokenizer)
    assert "labels" not in unlabeled[0]
    with pytest.raises(FrameDataError, match="no 'label' column"):
        TextQueryGalleryLabeledDataset(df_val.drop(columns=["label"]), tokenizer=tokenizer)


def test_base_dataset_takes_a_list_of_texts(tokenizer) -> None:  # type: ignore[no-untyped-def]
    dataset = TextBaseDataset(["a red chair", "a blue table"], tokenizer, max_length=8)
    assert len(dataset) == 2 and dataset.get_texts() == ["a red chair", "a blue table"]
    assert dataset[1]["input_tensors"]["input_ids"].shape == (8,) and set(dataset[1]) == {"input_tensors", "idx"}


def test_empty_and_missing_texts_are_refused_naming_the_rows(tokenizer) -> None:  # type: ignore[no-untyped-def]
    df = pd.DataFrame({"text": ["fine", "  ", None, "ok"], "label": [0, 0, 1, 1]}, index=[10, 11, 12, 13])
    with pytest.raises(FrameDataError) as error:
        TextLabeledDataset(df, tokenizer=tokenizer)
    message = str(error.value)
    assert "empty in row 11" in message and "missing or not a string in row 12" in message and "TextLabeledDataset" in message
    with pytest.raises(FrameDataError, match="no 'text' column"):
        TextLabeledDataset(df.rename(columns={"text": "txt"}), tokenizer=tokenizer)
    with pytest.raises(FrameDataError, match="'label' is not an integer in rows 1, 2"):
        TextLabeledDataset(pd.DataFrame({"text": ["a", "b", "c"], "label": [1, "x", 2.5]}), tokenizer=tokenizer)


def test_a_text_over_max_length_is_an_error_naming_the_row_or_truncated(tokenizer) -> None:  # type: ignore[no-untyped-def]
    long_text = " ".join(["chair"] * 40)
    df = pd.DataFrame({"text": ["short one", long_text], "label": [0, 1]}, index=[5, 7])
    dataset = TextLabeledDataset(df, tokenizer=tokenizer, max_length=16)
    assert dataset[0]["input_tensors"]["input_ids"].shape == (16,)
    with pytest.raises(FrameDataError, match=r"row 7 has 42 tokens, more than max_length=16.*on_long_text='truncate'"):
        dataset[1]
    with pytest.raises(FrameDataError, match="max_length=4096 is more than the tokenizer's model_max_length=128"):
        TextLabeledDataset(df, tokenizer=tokenizer, max_length=4096)
    truncated = TextLabeledDataset(df, tokenizer=tokenizer, max_length=16, on_long_text="truncate")[1]["input_tensors"]
    assert truncated["attention_mask"].all() and truncated["input_ids"][-1] == tokenizer.sep_token_id


def test_visualize_draws_the_text_in_a_coloured_frame(tokenizer) -> None:  # type: ignore[no-untyped-def]
    picture = visualize_text("ErgoComfort office chair: maximum comfort", color=(0, 200, 0))
    assert picture.shape == (256, 256, 3) and picture.dtype.name == "uint8"
    assert (picture[1, 1] == (0, 200, 0)).all() and (picture[128, 3] == (0, 200, 0)).all()
    inner = picture[10:-10, 10:-10]
    assert (inner < 100).all(axis=2).sum() > 200  # dark glyph pixels
    assert (inner == 255).all(axis=2).mean() > 0.5  # mostly white background
    blank = visualize_text("x" * 2000)  # too long for the picture: cut, still drawn
    assert blank.shape == (256, 256, 3)
    dataset = TextBaseDataset(["a red chair"], tokenizer)
    assert (dataset.visualize(0, (255, 0, 0)) == visualize_text("a red chair", (255, 0, 0))).all()
