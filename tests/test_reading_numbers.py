"""The chunked reader of all-numeric tables (files/numbers.py) against NumPy's reader and
betaprop's general reader (pandas frame + from_frame): the same numbers, names and target;
every file it cannot take goes to the general reader, with the general reader's messages."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pandas as pd
import pytest

import betaprop.files.datasets as datasets
import betaprop.files.numbers as numbers
from betaprop.files.datasets import DataError, from_frame, read_csv
from betaprop.files.reading import read_table


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Chunks of 7 rows: every file below spans several, and the matrix has to grow."""
    monkeypatch.setattr(numbers, "CHUNK_ROWS", 7)


def _general(path, **options):
    """The general reader alone: pandas' whole frame, then from_frame."""
    sep = options.pop("sep", None)
    return from_frame(read_table(path, sep), source=path, sep=sep, **options)


def _no_general_reader(monkeypatch):
    """Make the general reader fail, so a test proves the chunked reader did the work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the general reader was used")

    monkeypatch.setattr(datasets, "read_table", refuse)


def _refused_alike(path):
    """The general reader's Dataset of ``path``; or None when it refuses the file, after
    checking that read_csv refuses it with the same message."""
    try:
        return _general(path)
    except DataError as error:
        with pytest.raises(DataError) as raised:
            read_csv(path)
        assert str(raised.value) == str(error)
        return None


def _set_cells(path, column, cells):
    """Rewrite the cells of ``column`` (index) in the data rows: {row: text}."""
    lines = open(path).read().splitlines()
    for row, cell in cells.items():
        values = lines[1 + row].split(",")
        values[column] = cell
        lines[1 + row] = ",".join(values)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _table(tmp_path, rows=50, name="t.csv", sep=",", target=lambda i: str(i % 3)):
    rng = np.random.default_rng(rows)
    X = rng.normal(size=(rows, 4)) * 10.0 ** rng.integers(-5, 5, size=(rows, 4))
    X[:, 1] = rng.integers(-100, 100, size=rows)  # a column of whole numbers
    lines = [sep.join(["a", "b", "c", "d", "label"])]
    lines += [sep.join([repr(float(v)) for v in row] + [target(i)]) for i, row in enumerate(X)]
    text = "\n".join(lines) + "\n"
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return str(path), X


@pytest.mark.parametrize(
    "name, sep",
    [("t.csv", ","), ("t.tsv", "\t"), ("t.csv.gz", ",")],
)
def test_numbers_equal_numpys_and_the_general_readers(tmp_path, monkeypatch, name, sep):
    path, X = _table(tmp_path, name=name, sep=sep)
    general = _general(path)
    _no_general_reader(monkeypatch)
    data = read_csv(path)
    np.testing.assert_array_equal(data.X, X)  # repr() round-trips float64 exactly
    np.testing.assert_array_equal(data.X, general.X)
    assert data.feature_names == general.feature_names == ["a", "b", "c", "d"]
    assert data.target_name == general.target_name == "label"
    assert data.target.dtype == general.target.dtype == np.int64
    assert list(data.target) == list(general.target) == [i % 3 for i in range(50)]


def test_a_matrix_allocated_too_small_grows_without_losing_rows(tmp_path, monkeypatch):
    path, X = _table(tmp_path, rows=123)
    monkeypatch.setattr(numbers, "_estimated_rows", lambda stream, path, fields: 1)
    _no_general_reader(monkeypatch)
    np.testing.assert_array_equal(read_csv(path).X, X)


def test_float32_is_the_float64_reading_rounded(tmp_path):
    path, X = _table(tmp_path)
    data = read_csv(path, dtype="float32")
    assert data.X.dtype == np.float32
    np.testing.assert_array_equal(data.X, X.astype(np.float32))


def test_text_and_float_targets_target_choice_features_and_drop(tmp_path, monkeypatch):
    path, X = _table(tmp_path, target=lambda i: f" {'ab'[i % 2]} ")
    general = _general(path)
    chosen = _general(path, target="b", features=["d", "a"], require_target=True)
    dropped = _general(path, drop=["c"])
    unlabeled = _general(path, target="label", features=["c", "a"], require_target=False)
    floats, _ = _table(tmp_path, name="f.csv", target=lambda i: f"{i / 4}")
    _no_general_reader(monkeypatch)
    data = read_csv(path)
    assert list(data.target) == list(general.target) == [" ab"[1 + i % 2] for i in range(50)]
    other = read_csv(path, target="b", features=["d", "a"])
    np.testing.assert_array_equal(other.X, X[:, [3, 0]])
    np.testing.assert_array_equal(other.X, chosen.X)
    assert other.target.dtype == np.float64  # b was written as floats
    np.testing.assert_array_equal(other.target, chosen.target)
    np.testing.assert_array_equal(read_csv(path, drop=["c"]).X, dropped.X)
    features_only = read_csv(path, target="label", features=["c", "a"], require_target=False)
    np.testing.assert_array_equal(features_only.X, unlabeled.X)
    assert list(features_only.target) == list(unlabeled.target)
    assert read_csv(floats).target.tolist() == [i / 4 for i in range(50)]


@pytest.mark.parametrize(
    "row, cell",
    [
        (40, "Paris"),  # text in a late chunk: a categorical column after all
        (40, "True"),  # a boolean cell
        (45, ""),  # a gap: refused (or imputed) by the general reader
        (45, "NA"),
        (33, "1e999"),  # infinite once parsed
        (33, "1_000"),  # Python's float() takes it; a CSV file should not
    ],
)
def test_a_late_cell_that_is_no_number_goes_to_the_general_reader(tmp_path, row, cell):
    path, _ = _table(tmp_path)
    _set_cells(path, 2, {row: cell})
    expected = _refused_alike(path)
    if expected is None:
        with pytest.raises(DataError, match=f"line {row + 2}, column 'c'"):
            read_csv(path)
        return
    data = read_csv(path)
    assert data.categorical == expected.categorical == ["c"]
    np.testing.assert_array_equal(data.X, expected.X)


@pytest.mark.parametrize(
    "target, message",
    [
        # a late gap in the target: that row left out, with a note (both readers)
        (lambda i: "" if i == 44 else str(i % 3), "1 of .* rows have no value in the target"),
        # a text target with a number beyond the limit: refused in either reader
        (lambda i: "1e200" if i == 44 else "ab"[i % 2], "line 46, column 'label': '1e200' is too"),
        (lambda i: "x" if i > 20 else str(i % 3), None),  # numbers, then text: text labels
    ],
)
def test_late_target_cells_take_the_general_readers_way(tmp_path, target, message):
    path, _ = _table(tmp_path, target=target)
    if message is not None and "no value" in message:
        data = read_csv(path)
        assert re.match(message, data.notes[0]) and data.notes == _general(path).notes
        assert len(data.target) == len(_general(path).target) == len(data.X)
        assert "" not in list(data.target)
        return
    if message is not None:
        with pytest.raises(DataError, match=message):
            read_csv(path)
        return
    data = read_csv(path)
    assert data.target.dtype == object
    assert list(data.target) == list(_general(path).target)
    assert list(data.target[:21]) == [str(i % 3) for i in range(21)]


def test_malformed_rows_keep_their_messages(tmp_path):
    path, _ = _table(tmp_path)
    lines = open(path).read().splitlines()
    lines[30] += ",7"  # one field too many, in the fifth chunk
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 31 has 6 fields, but the header has 5"):
        read_csv(path)


def test_a_file_beyond_the_head_is_estimated_from_its_size(tmp_path, monkeypatch):
    path, X = _table(tmp_path, rows=3000)  # about 250 KB: rows estimated from size and head
    estimates = []
    estimate = numbers._estimated_rows

    def recorded(stream, path, fields):
        estimates.append(estimate(stream, path, fields))
        return estimates[-1]

    monkeypatch.setattr(numbers, "_estimated_rows", recorded)
    monkeypatch.setattr(numbers, "CHUNK_ROWS", 256)
    _no_general_reader(monkeypatch)
    np.testing.assert_array_equal(read_csv(path).X, X)
    assert 3000 <= estimates[0] <= 3000 * 1.1  # one allocation, a few percent to spare


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": [1.5, 2.5] * 20, "b": ["x", "y"] * 20, "label": [0, 1] * 20}),
        pd.DataFrame({"a": [1.5, None] * 20, "label": [0, 1] * 20}),  # a gap
        pd.DataFrame({"a": [1.5, 2.5] * 20, "label": [0, 1] * 20}, index=range(5, 45)),
    ],
)
def test_parquet_that_is_not_all_numbers_reads_as_the_general_reader_does(tmp_path, frame):
    path = str(tmp_path / "t.parquet")
    frame.to_parquet(path)
    expected = _refused_alike(path)
    if expected is None:
        return
    data = read_csv(path)
    assert data.feature_names == expected.feature_names
    assert data.categorical == expected.categorical
    np.testing.assert_array_equal(data.X, expected.X)
    assert list(data.target) == list(expected.target)


@pytest.mark.parametrize(
    "column, wide",
    [
        (lambda i: 1.7e9 + 1000.0 * i, True),  # timestamps: float32 would round them to 128 s
        (lambda i: 1e100 if i == 44 else float(i), True),  # beyond float32's range
        (lambda i: 1e-45 * (i + 1), True),  # below float32's normal numbers
        (lambda i: 0.1 * i - 2.0, False),  # ordinary numbers: float32 keeps them
    ],
)
def test_float32_only_where_it_keeps_the_numbers(tmp_path, column, wide):
    path, X = _table(tmp_path)
    values = [column(i) for i in range(50)]
    _set_cells(path, 3, {i: repr(value) for i, value in enumerate(values)})
    general = _general(path, dtype="float32")
    data = read_csv(path, dtype="float32")
    assert data.X.dtype == general.X.dtype == (np.float64 if wide else np.float32)
    expected = np.asarray(values) if wide else np.asarray(values, dtype=np.float32)
    np.testing.assert_array_equal(data.X[:, 3], expected)
    np.testing.assert_array_equal(general.X, data.X)


@pytest.mark.parametrize("gap", [False, True])
def test_a_declared_category_is_read_as_written_with_or_without_a_gap(tmp_path, gap):
    cells = ["007", "1.50", "7", "007", " 42 ", "1.50"] + ([""] if gap else ["7"])
    lines = ["x,zip,label"] + [f"{i}.5,{cell},{i % 2}" for i, cell in enumerate(cells)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    data = read_csv(str(path), categorical=["zip"], allow_missing=True)
    assert data.categorical == ["zip"]
    read = [None if pd.isna(cell) else cell for cell in data.frame["zip"]]
    assert read == [cell.strip() or None for cell in cells]  # "007" and "7": two categories
    np.testing.assert_array_equal(data.X[:, 0], [i + 0.5 for i in range(len(cells))])
