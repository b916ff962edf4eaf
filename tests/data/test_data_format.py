"""The dataframe format: every malformed dataframe gets its own specific message, naming the rows at fault."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from oml_core.data import (
    DataFrameError,
    ValidationReport,
    assign_split,
    read_dataframe,
    split_dataframe,
    validate_dataframe,
)
from oml_core.data.dataframe import query_rows_without_match
from oml_core.errors import OMLError

Mutation = Callable[[pd.DataFrame, Path], pd.DataFrame]


def _set(column: str, row: int, value: object) -> Mutation:
    def mutate(df: pd.DataFrame, root: Path) -> pd.DataFrame:
        df[column] = df[column].astype(object)
        df.at[row, column] = value
        return df

    return mutate


def _boxes(values: list[tuple[object, object, object, object]]) -> Mutation:
    def mutate(df: pd.DataFrame, root: Path) -> pd.DataFrame:
        full = [(0, 0, 10, 10)] * len(df)
        for i, box in enumerate(values):
            full[i] = box  # type: ignore[assignment]
        for j, column in enumerate(("x_1", "y_1", "x_2", "y_2")):
            df[column] = pd.Series([b[j] for b in full], dtype=object)
        return df

    return mutate


def _corrupt_first_image(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    (root / "img" / "0.png").write_bytes(b"definitely not a png")
    return _boxes([(0, 0, 5, 5)])(df, root)


# (id, mutation, expected code, text the message must contain, rows it must name (None: no rows))
MALFORMED: list[tuple[str, Mutation, str, str, tuple[int, ...] | None]] = [
    ("no_label_column", lambda df, r: df.drop(columns="label"), "missing_column", "'label' is missing", None),
    ("label_misspelled", lambda df, r: df.rename(columns={"label": "labels"}), "missing_column", "did you mean 'labels'", None),
    ("label_capitalised", lambda df, r: df.rename(columns={"label": "Label"}), "missing_column", "did you mean 'Label'", None),
    ("no_path_column", lambda df, r: df.drop(columns="path"), "missing_column", "'path' is missing", None),
    ("no_split_column", lambda df, r: df.drop(columns="split"), "missing_column", "'split' is missing", None),
    ("no_is_query_column", lambda df, r: df.drop(columns="is_query"), "missing_column", "'is_query' is missing", None),
    ("no_is_gallery_column", lambda df, r: df.drop(columns="is_gallery"), "missing_column", "'is_gallery' is missing", None),
    ("label_empty", _set("label", 2, None), "missing_label", "label is empty", (2,)),
    ("label_text", _set("label", 3, "cat"), "non_integer_label", "'cat'", (3,)),
    ("label_fraction", _set("label", 1, 1.5), "non_integer_label", "must be integers", (1,)),
    ("label_bool", _set("label", 0, True), "non_integer_label", "must be integers", (0,)),
    ("path_empty", _set("path", 4, ""), "missing_path", "path is empty", (4,)),
    ("path_number", _set("path", 5, 123), "path_type", "must be strings", (5,)),
    ("split_val", _set("split", 6, "val"), "unknown_split", "did you mean 'validation'", (6,)),
    ("split_test", _set("split", 0, "test"), "unknown_split", "'test'", (0,)),
    ("split_empty", _set("split", 1, None), "missing_split", "split is empty", (1,)),
    ("is_query_not_bool", _set("is_query", 5, "maybe"), "is_query_not_boolean", "'maybe'", (5,)),
    ("is_gallery_empty_on_validation", _set("is_gallery", 6, None), "missing_is_gallery", "empty on validation rows", (6,)),
    (
        "neither_query_nor_gallery",
        lambda df, r: _set("is_gallery", 7, False)(_set("is_query", 7, False)(df, r), r),
        "neither_query_nor_gallery",
        "query, a gallery item or both",
        (7,),
    ),
    ("no_queries", lambda df, r: df.assign(is_query=[None] * 4 + [False] * 4), "no_queries", "no query", None),
    ("no_gallery", lambda df, r: df.assign(is_gallery=[None] * 4 + [False] * 4), "no_gallery", "no gallery item", None),
    ("duplicate_validation_rows", lambda df, r: _set("path", 5, "img/4.png")(df, r), "duplicate_rows", "more than once", (4, 5)),
    (
        "same_image_two_labels",
        lambda df, r: _set("path", 6, "img/0.png")(df, r),
        "conflicting_labels",
        "different labels",
        (0, 6),
    ),
    ("two_box_columns_only", lambda df, r: df.assign(x_1=0, y_1=0), "partial_box_columns", "without x_2, y_2", None),
    ("box_with_three_values", _boxes([(0, 0, 5, None)]), "partial_box", "all four", (0,)),
    ("box_x2_before_x1", _boxes([(0, 0, 10, 10), (8, 0, 3, 10)]), "empty_box", "x_2 > x_1", (1,)),
    ("box_y2_equals_y1", _boxes([(0, 0, 10, 10), (0, 0, 10, 10), (0, 4, 10, 4)]), "empty_box", "y_2 > y_1", (2,)),
    ("box_negative", _boxes([(-1, 0, 5, 5)]), "negative_box", ">= 0", (0,)),
    ("box_text", _boxes([("left", 0, 5, 5)]), "box_not_number", "'left'", (0,)),
    (
        "box_both_spellings",
        lambda df, r: df.assign(x1=0, y1=0, x2=5, y2=5, x_1=0, y_1=0, x_2=5, y_2=5),
        "box_column_names",
        "two ways",
        None,
    ),
    (
        "absolute_path",
        lambda df, r: _set("path", 0, str(r / "img" / "0.png"))(df, r),
        "absolute_path",
        "allow_absolute_paths=True",
        (0,),
    ),
    ("path_escapes_root", _set("path", 1, "../../etc/passwd"), "path_escapes_root", "climb out", (1,)),
    ("missing_file", _set("path", 3, "img/nope.png"), "missing_file", "img/nope.png", (3,)),
    ("box_outside_image", _boxes([(0, 0, 5, 5), (10, 2, 25, 8)]), "box_outside_image", "in 20x12", (1,)),
    ("unreadable_image", _corrupt_first_image, "unreadable_image", "0.png", (0,)),
    (
        "category_empty",
        lambda df, r: df.assign(category=["a", "a", "b", None, "c", "c", "d", "d"]),
        "missing_category",
        "category is empty",
        (3,),
    ),
    ("no_rows", lambda df, r: df.iloc[:0], "empty", "no rows", None),
    ("duplicate_column_names", lambda df, r: pd.concat([df, df[["label"]]], axis=1), "duplicate_columns", "'label'", None),
]


@pytest.mark.parametrize(("mutation", "code", "text", "rows"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_each_malformed_dataframe_gets_its_specific_error(
    good_df: pd.DataFrame, image_root: Path, mutation: Mutation, code: str, text: str, rows: tuple[int, ...] | None
) -> None:
    df = mutation(good_df.copy(), image_root)
    report = validate_dataframe(df, dataset_root=image_root)
    matching = [p for p in report.errors if p.code == code]
    assert matching, f"expected error {code!r}, got {report}"
    assert text in matching[0].message, matching[0]
    if rows is not None:
        assert matching[0].rows == rows
        assert f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}" in str(report)
    assert "check_failed" not in report.codes(), str(report)
    with pytest.raises(DataFrameError) as info:
        report.raise_for_errors()
    assert f"[{code}]" in str(info.value) and text in str(info.value)
    assert "OML's format has one row per image" in str(info.value)
    assert isinstance(info.value, OMLError)


def test_there_are_at_least_twenty_distinct_malformations() -> None:
    assert len(MALFORMED) >= 20
    assert len({m[2] for m in MALFORMED}) >= 20


def test_a_valid_dataframe_has_no_problem(good_df: pd.DataFrame, image_root: Path) -> None:
    report = validate_dataframe(good_df, dataset_root=image_root)
    assert report.problems == []
    assert report.ok and str(report) == "dataframe: OK"


def test_all_problems_are_reported_at_once(good_df: pd.DataFrame, image_root: Path) -> None:
    df = good_df.astype(object)
    df.at[0, "label"] = "x"
    df.at[1, "split"] = "tset"
    df.at[2, "path"] = "img/missing.png"
    df.at[5, "is_query"] = "perhaps"
    df = df.assign(x_1=[0, 0, 0, 9, 0, 0, 0, 0], y_1=0, x_2=[5, 5, 5, 2, 5, 5, 5, 5], y_2=5)
    report = validate_dataframe(df, dataset_root=image_root)
    assert {"non_integer_label", "unknown_split", "missing_file", "is_query_not_boolean", "empty_box"} <= set(report.codes())
    assert len(report.errors) == 5


@pytest.mark.parametrize(
    ("mutation", "code", "rows"),
    [
        (lambda df: df.assign(is_query=[True, None, None, None, True, True, True, True]), "is_query_on_train", (0,)),
        (lambda df: df.assign(label=[0, 0, 1, 1, 2, 2, 3, 4]), "query_without_match", (6, 7)),
        (lambda df: df.assign(label=[0, 0, 1, 1, 1, 1, 3, 3]), "labels_in_both_splits", (4, 5)),
        (lambda df: df.assign(label=[0, 5, 1, 1, 2, 2, 3, 3]), "single_instance_label", (0, 1)),
        (lambda df: df.assign(category=["a", "b", "c", "c", "d", "d", "e", "e"]), "label_in_several_categories", (0, 1)),
        (lambda df: df.assign(categori="x"), "unknown_column", None),
        (lambda df: df.reset_index().rename(columns={"index": "Unnamed: 0"}), "index_column", None),
        (lambda df: df.assign(path=["img/0.png", "img/0.png"] + df["path"].tolist()[2:]), "duplicate_train_rows", (0, 1)),
        (
            lambda df: df.assign(path=df["path"].tolist()[:4] + ["img/0.png"] + df["path"].tolist()[5:]),
            "train_validation_overlap",
            (4,),
        ),
    ],
)
def test_warnings_name_their_rows(
    good_df: pd.DataFrame, mutation: Callable[[pd.DataFrame], pd.DataFrame], code: str, rows: tuple[int, ...] | None
) -> None:
    report = validate_dataframe(mutation(good_df.copy()), check_files=False)
    matching = [p for p in report.warnings if p.code == code]
    assert matching, str(report)
    if rows is not None:
        assert matching[0].rows == rows
    with pytest.warns(UserWarning, match=code):
        report.warn()


def test_a_single_query_is_a_valid_validation_set(good_df: pd.DataFrame) -> None:
    df = good_df.assign(is_query=[None] * 4 + [True, False, False, False])
    report = validate_dataframe(df)
    assert report.ok and not report.warnings, str(report)


def test_query_whose_only_match_is_in_its_sequence_is_reported(good_df: pd.DataFrame) -> None:
    df = good_df.assign(sequence=["s0", "s1", "s2", "s3", "a", "a", "b", "c"])
    report = validate_dataframe(df)
    assert [p.rows for p in report.warnings if p.code == "query_without_match"] == [(4, 5)]


def test_missing_values_without_a_root_are_not_file_checked(good_df: pd.DataFrame) -> None:
    report = validate_dataframe(good_df.assign(path=[f"nowhere/{i}.png" for i in range(8)]))
    assert report.ok  # no dataset_root: files are only checked when asked
    assert not validate_dataframe(good_df.assign(path=[f"nowhere/{i}.png" for i in range(8)]), check_files=True).ok


def test_absolute_paths_can_be_allowed(good_df: pd.DataFrame, image_root: Path) -> None:
    df = good_df.assign(path=[str(image_root / p) for p in good_df["path"]])
    assert "absolute_path" in validate_dataframe(df, dataset_root=image_root).codes()
    assert validate_dataframe(df, dataset_root=image_root, allow_absolute_paths=True).ok
    assert validate_dataframe(df, check_files=True).ok  # without a root absolute paths are the normal way


def test_rows_keep_the_dataframes_own_index(good_df: pd.DataFrame) -> None:
    df = good_df.set_axis([f"r{i}" for i in range(8)])
    df.loc["r3", "label"] = None
    report = validate_dataframe(df)
    assert [p.rows for p in report.errors] == [("r3",)]


def test_not_a_dataframe() -> None:
    report = validate_dataframe([1, 2, 3])  # type: ignore[arg-type]
    assert report.codes() == ["not_a_dataframe"]


def test_a_box_is_all_four_values_or_none(good_df: pd.DataFrame, image_root: Path) -> None:
    df = good_df.assign(x_1=[1.0, None, 0, 0, 0, 0, 0, 0], y_1=[1.0, None, 0, 0, 0, 0, 0, 0], x_2=[6.0, None, 5, 5, 5, 5, 5, 5])
    df["y_2"] = [6.0, None, 5, 5, 5, 5, 5, 5]
    assert validate_dataframe(df, dataset_root=image_root).ok


# ------------------------------------------------------------------------------------------------ reading
def test_read_csv_keeps_paths_as_strings(tmp_path: Path) -> None:
    target = tmp_path / "df.csv"
    target.write_text("label,path,split,x1,y1,x2,y2\n0,001,train,1,2,3,4\n")
    df = read_dataframe(target)
    assert df["path"].tolist() == ["001"]
    assert list(df.columns) == ["label", "path", "split", "x_1", "y_1", "x_2", "y_2"]
    assert df.attrs["source"] == str(target)


def test_read_parquet_and_tsv(tmp_path: Path, good_df: pd.DataFrame) -> None:
    good_df.to_parquet(tmp_path / "df.parquet")
    assert read_dataframe(tmp_path / "df.parquet")["label"].tolist() == good_df["label"].tolist()
    good_df.to_csv(tmp_path / "df.tsv", sep="\t", index=False)
    assert read_dataframe(tmp_path / "df.tsv")["path"].tolist() == good_df["path"].tolist()


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("missing.csv", None, "file_not_found"),
        ("df.xlsx", b"whatever", "unknown_file_type"),
        ("empty.csv", b"", "unreadable"),
        ("binary.parquet", b"\x00\x01 not parquet", "unreadable"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, content: bytes | None, code: str) -> None:
    target = tmp_path / name
    if content is not None:
        target.write_bytes(content)
    with pytest.raises(DataFrameError) as info:
        read_dataframe(target)
    assert info.value.report.codes() == [code]
    assert name in str(info.value)
    report = validate_dataframe(target)
    assert isinstance(report, ValidationReport) and report.codes() == [code]


def test_validate_a_csv_file_names_it(tmp_path: Path, good_df: pd.DataFrame) -> None:
    good_df.assign(split="tran").to_csv(tmp_path / "bad.csv", index=False)
    report = validate_dataframe(tmp_path / "bad.csv")
    assert str(tmp_path / "bad.csv") in str(report)
    assert "did you mean 'train'" in str(report)


# ------------------------------------------------------------------------------------------------ splitting
def test_split_dataframe(tmp_path: Path, good_df: pd.DataFrame) -> None:
    good_df.to_csv(tmp_path / "df.csv", index=False)
    df_train, df_val = split_dataframe(tmp_path / "df.csv")
    assert df_train["label"].tolist() == [0, 0, 1, 1]
    file_rows = good_df.index[good_df["split"] == "validation"].tolist()
    assert len(file_rows) == 4 and file_rows != [0, 1, 2, 3]  # the parts keep the file's row numbers
    assert df_val.index.tolist() == file_rows
    assert df_val["is_query"].dtype == bool and df_val["is_query"].all()


def test_assign_split_keeps_labels_disjoint() -> None:
    df = pd.DataFrame({"label": np.repeat(np.arange(10), 3), "path": [f"{i}.png" for i in range(30)]})
    out = assign_split(df, val_fraction=0.3, seed=1)
    train_labels = set(out.loc[out["split"] == "train", "label"])
    val_labels = set(out.loc[out["split"] == "validation", "label"])
    assert len(val_labels) == 3 and not train_labels & val_labels
    assert validate_dataframe(out).ok
    assert out.equals(assign_split(df, val_fraction=0.3, seed=1))
    with pytest.raises(OMLError, match="val_fraction"):
        assign_split(df, val_fraction=1.5)


# ------------------------------------------------------------------------------------------------ vectorised vs slow
def _slow_queries_without_match(
    labels: list[int], is_query: list[bool], is_gallery: list[bool], sequences: list[str] | None
) -> list[int]:
    lonely = []
    for i in range(len(labels)):
        if not is_query[i]:
            continue
        found = False
        for j in range(len(labels)):
            same_sequence = sequences is not None and sequences[i] == sequences[j]
            if j != i and is_gallery[j] and labels[j] == labels[i] and not same_sequence:
                found = True
        if not found:
            lonely.append(i)
    return lonely


@pytest.mark.parametrize(("seed", "with_sequences"), list(itertools.product(range(5), [False, True])))
def test_query_match_check_equals_a_slow_loop(seed: int, with_sequences: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    labels = rng.integers(0, 15, n).tolist()
    is_query = (rng.random(n) < 0.6).tolist()
    is_gallery = (rng.random(n) < 0.6).tolist()
    sequences = [f"s{v}" for v in rng.integers(0, 20, n)] if with_sequences else None
    expected = _slow_queries_without_match(labels, is_query, is_gallery, sequences)
    got = query_rows_without_match(
        pd.Series(labels), pd.Series(is_query), pd.Series(is_gallery), pd.Series(sequences) if sequences else None
    )
    assert got == expected


def test_box_outside_a_rotated_image_uses_its_displayed_size(tmp_path: Path) -> None:
    # a 20x10 file with EXIF orientation 6 is displayed (and read) as 10x20
    image = Image.new("RGB", (20, 10))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "r.jpg", exif=exif)
    df = pd.DataFrame({"label": [0, 0], "path": ["r.jpg", "r.jpg"], "split": "train", "x_1": [0, 0], "y_1": [0, 0]})
    df = df.assign(x_2=[10, 15], y_2=[20, 5])
    report = validate_dataframe(df, dataset_root=tmp_path)
    assert [p.rows for p in report.errors if p.code == "box_outside_image"] == [(1,)]
