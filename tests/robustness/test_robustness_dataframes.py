"""Bad dataframes given to ``oml train``: each is refused before training, naming the file, the field and the rows."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .conftest import Workspace, assert_refused

Mutation = Callable[[pd.DataFrame, Workspace], pd.DataFrame]


def _first(df: pd.DataFrame, split: str, n: int = 1) -> list[int]:
    return df.index[df["split"] == split][:n].tolist()


def _set(column: str, value: object, split: str = "train", n: int = 1) -> Mutation:
    def mutate(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
        df[column] = df[column].astype(object)
        df.loc[_first(df, split, n), column] = value
        return df

    return mutate


def _drop(column: str) -> Mutation:
    return lambda df, ws: df.drop(columns=[column])


def _link_out(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    outside = ws.root / "outside.png"
    Image.new("RGB", (32, 32)).save(outside)
    os.symlink(outside, ws.data / "images" / "link.png")
    df.loc[_first(df, "train"), "path"] = "images/link.png"
    return df


def _folder_link_out(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    outside = ws.root / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (32, 32)).save(outside / "a.png")
    os.symlink(outside, ws.data / "images" / "linked_folder")
    df.loc[_first(df, "validation"), "path"] = "images/linked_folder/a.png"
    return df


def _file_content(content: bytes, name: str = "images/bad.png", split: str = "train") -> Mutation:
    def mutate(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
        (ws.data / name).write_bytes(content)
        df.loc[_first(df, split), "path"] = name
        return df

    return mutate


def _truncated_png(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    good = ws.data / df.loc[_first(df, "train")[0], "path"]
    return _file_content(good.read_bytes()[:60])(df, ws)


def _huge_png(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    # 30000 x 30000: a few hundred kilobytes on disk, 2.7 GB decoded
    Image.new("1", (30000, 30000)).save(ws.data / "images" / "bomb.png", optimize=True)
    df.loc[_first(df, "train"), "path"] = "images/bomb.png"
    return df


def _box(values: tuple[object, object, object, object], split: str = "validation") -> Mutation:
    def mutate(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
        for column in ("x_1", "y_1", "x_2", "y_2"):
            df[column] = np.nan
            df[column] = df[column].astype(object)
        df.loc[_first(df, split), ["x_1", "y_1", "x_2", "y_2"]] = list(values)
        return df

    return mutate


def _no_queries(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    df.loc[df["split"] == "validation", "is_query"] = False
    return df


def _no_gallery(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    df.loc[df["split"] == "validation", "is_gallery"] = False
    return df


def _neither(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    rows = _first(df, "validation")
    df.loc[rows, "is_query"] = False
    df.loc[rows, "is_gallery"] = False
    return df


def _conflicting_labels(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    a = _first(df, "train")[0]
    b = df.index[(df["split"] == "train") & (df["label"] != df.loc[a, "label"])][0]
    df.loc[b, "path"] = df.loc[a, "path"]
    return df


def _query_without_match(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    val = df[df["split"] == "validation"]
    label = val["label"].iloc[0]
    keep_first = val.index[val["label"] == label][0]
    df = df.drop(index=val.index[(val["label"] == label)][1:])
    df.loc[keep_first, ["is_query", "is_gallery"]] = [True, False]
    return df


def _categories(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    df["category"] = "all"
    df.loc[_first(df, "train"), "category"] = None
    return df


def _huge_cell(df: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    df["path"] = df["path"].astype(object)
    df.loc[_first(df, "train"), "path"] = "x" * 3_000_000
    return df


CASES: dict[str, tuple[Mutation, tuple[str, ...]]] = {
    "missing label column": (_drop("label"), ("'label'", "missing")),
    "missing path column": (_drop("path"), ("'path'", "missing")),
    "missing split column": (_drop("split"), ("'split'",)),
    "missing is_query column": (_drop("is_query"), ("is_query",)),
    "missing is_gallery column": (_drop("is_gallery"), ("is_gallery",)),
    "text label": (_set("label", "cat"), ("labels must be integers", "'cat'", "row 0")),
    "fractional label": (_set("label", 1.5), ("labels must be integers", "row 0")),
    "empty label": (_set("label", None), ("label is empty", "row 0")),
    "empty path": (_set("path", None), ("path is empty", "row 0")),
    "absolute path": (_set("path", "/etc/passwd"), ("absolute paths are refused", "/etc/passwd")),
    "path climbing out": (_set("path", "../../etc/passwd"), ("inside dataset_root", "../../etc/passwd")),
    "symlinked file out of the root": (_link_out, ("symbolic link", "images/link.png")),
    "symlinked folder out of the root": (_folder_link_out, ("symbolic link", "images/linked_folder/a.png")),
    "misspelled split": (_set("split", "tran"), ("split 'tran'", "row 0", "did you mean 'train'")),
    "abbreviated split": (_set("split", "val", "validation"), ("split 'val'", "did you mean 'validation'")),
    "empty split": (_set("split", None), ("split is empty", "row 0")),
    "is_query not boolean": (_set("is_query", "maybe", "validation"), ("is_query", "'maybe'")),
    "is_gallery not boolean": (_set("is_gallery", "perhaps", "validation"), ("is_gallery", "'perhaps'")),
    "is_query empty on validation": (_set("is_query", None, "validation"), ("is_query is empty",)),
    "neither query nor gallery": (_neither, ("must be a query, a gallery item or both",)),
    "no queries": (_no_queries, ("no query",)),
    "no gallery": (_no_gallery, ("no gallery",)),
    "partial box": (_box((1, 2, None, None)), ("all four",)),
    "negative box": (_box((-1, 0, 10, 10)), (">= 0",)),
    "empty box": (_box((10, 10, 5, 20)), ("x_2 > x_1",)),
    "box not a number": (_box(("a", 0, 10, 10)), ("must be numbers", "'a'")),
    "empty category": (_categories, ("category is empty",)),
    "same image, two labels": (_conflicting_labels, ("different labels",)),
}


# Found by opening the files: `oml train --check-images` does that before training, for every row at once.
FILE_CASES: dict[str, tuple[Mutation, tuple[str, ...]]] = {
    "missing image file": (_set("path", "images/nope.png"), ("images/nope.png",)),
    "image is a folder": (_set("path", "images"), ("images",)),
    "corrupt image": (_file_content(b"\x89PNG\r\n\x1a\n garbage"), ("bad.png",)),
    "text file as image": (_file_content(b"hello, I am text"), ("bad.png",)),
    "zero-byte image": (_file_content(b""), ("bad.png",)),
    "truncated image": (_truncated_png, ("bad.png",)),
    "decompression bomb": (_huge_png, ("bomb.png", "OML_MAX_IMAGE_PIXELS")),
    "30 MB path field": (_huge_cell, ("characters",)),
    "box beyond the image": (_box((0, 0, 500, 500)), ("beyond their image", "500")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataframe_is_refused_by_train(workspace: Workspace, oml, case: str) -> None:
    mutate, culprits = CASES[case]
    workspace.write_df(mutate(workspace.df(), workspace))
    before = workspace.df_path.read_bytes()
    outcome = oml("train", workspace.write_config(workspace.config()))
    assert_refused(outcome, "df.csv", *culprits)
    assert len(outcome.err) < 20_000, "the message must stay readable"
    assert workspace.df_path.read_bytes() == before


def test_rows_of_a_test_split_are_counted_in_one_warning(workspace: Workspace, oml) -> None:
    df = workspace.df()
    df.loc[df.index[df["split"] == "validation"][:3], "split"] = "test"
    workspace.write_df(df)
    outcome = oml("train", workspace.write_config(workspace.config()))
    assert outcome.status == 0, outcome.text
    warnings = [line for line in outcome.err.splitlines() if "'test'" in line]
    assert len(warnings) == 1 and "3 row(s)" in warnings[0] and "df.csv" in warnings[0]


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_unreadable_image_is_found_before_training(workspace: Workspace, oml, case: str) -> None:
    mutate, culprits = FILE_CASES[case]
    workspace.write_df(mutate(workspace.df(), workspace))
    outcome = oml("train", "--check-images", workspace.write_config(workspace.config()))
    assert_refused(outcome, "df.csv", *culprits)
    assert len(outcome.err) < 20_000, "the message must stay readable"
    assert workspace.run_dirs() == [], "a run that fails its pre-flight checks leaves no run directory"


def test_all_unreadable_images_are_reported_at_once(workspace: Workspace, oml) -> None:
    df = workspace.df()
    rows = df.index[df["split"] == "train"][:3].tolist()
    for row in rows:
        (workspace.data / df.loc[row, "path"]).write_bytes(b"not an image")
    outcome = oml("train", "--check-images", workspace.write_config(workspace.config()))
    assert_refused(outcome, "df.csv", *(df.loc[row, "path"] for row in rows))


RAW_FILES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "empty file": (b"", ("empty",)),
    "header only": (b"label,path,split,is_query,is_gallery\n", ("empty",)),
    "not UTF-8": ("label,path,split\n0,caf\u00e9.png,train\n".encode("latin-1"), ("utf-8",)),
    "binary garbage": (bytes(range(256)) * 8, ("df.csv",)),
    "unbalanced quote": (b'label,path,split\n0,"images/a.png,train\n', ("df.csv",)),
    "ragged rows": (b"label,path,split\n0,a.png,train,extra,more\n", ("df.csv",)),
    "duplicate column names": (b"label,label,path,split\n0,0,a.png,train\n", ("label",)),
}


@pytest.mark.parametrize("case", list(RAW_FILES))
def test_unreadable_dataframe_file_is_refused(workspace: Workspace, oml, case: str) -> None:
    content, culprits = RAW_FILES[case]
    workspace.df_path.write_bytes(content)
    outcome = oml("train", workspace.write_config(workspace.config()))
    assert_refused(outcome, "df.csv", *culprits)


def test_dataframe_that_is_a_folder(workspace: Workspace, oml) -> None:
    outcome = oml("train", workspace.write_config(workspace.config(data__dataframe=str(workspace.data))))
    assert_refused(outcome, str(workspace.data))


def test_missing_dataframe(workspace: Workspace, oml) -> None:
    outcome = oml("train", workspace.write_config(workspace.config(data__dataframe=str(workspace.data / "nope.csv"))))
    assert_refused(outcome, "nope.csv")


def test_errors_in_validation_rows_name_the_files_rows(workspace: Workspace, oml) -> None:
    df = workspace.df()
    last_two = df.index[df["split"] == "validation"][-2:].tolist()
    assert min(last_two) > 2  # far from the first rows of the validation part
    df["is_query"] = df["is_query"].astype(object)
    df.loc[last_two, "is_query"] = "maybe"
    workspace.write_df(df)
    outcome = oml("train", workspace.write_config(workspace.config()))
    assert_refused(outcome, "df.csv", f"rows {last_two[0]}, {last_two[1]}")


def test_one_bad_label_names_one_row(workspace: Workspace, oml) -> None:
    df = workspace.df()
    df["label"] = df["label"].astype(object)
    df.loc[5, "label"] = "x"
    workspace.write_df(df)
    outcome = oml("train", workspace.write_config(workspace.config()))
    assert_refused(outcome, "row 5")
    assert "rows " not in outcome.err.split("labels must be integers")[1].split("\n")[0]


def test_outside_root_is_allowed_when_asked(workspace: Workspace, oml, tmp_path: Path) -> None:
    _link_out(workspace.df(), workspace)  # makes the link
    df = workspace.df()
    df.loc[_first(df, "train"), "path"] = "images/link.png"
    workspace.write_df(df)
    from oml_core.data import validate_dataframe

    assert "path_outside_root" in validate_dataframe(df, dataset_root=workspace.data).codes()
    assert "path_outside_root" not in validate_dataframe(df, dataset_root=workspace.data, allow_absolute_paths=True).codes()
