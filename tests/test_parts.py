"""Reading a file in parts (files/parts.py): the parts, in order, are ``read_table``'s table.

The oracle is the whole-file reader (pandas' C parser on the whole file, pyarrow's
``read_table``, ``np.load``) on real files written here with a seeded generator: quoted
fields with separators, doubled quotes and line breaks, CRLF, a BOM, blank and
whitespace-only lines, no final line feed, tiny files with fewer lines than parts, TSV.
"""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from betaprop.files import parts as parts_module
from betaprop.files.errors import DataError
from betaprop.files.parts import owned_parts, plan_parts, read_part
from betaprop.files.reading import read_table

SIZES = (1, 2, 3, 7, 16, 50, 200, 1000, 64 * 2**20)


def _text_cell(rng: np.random.Generator, sep: str, line_end: str) -> str:
    """A text cell, quoted as csv writers quote: separators, quotes and line breaks."""
    words = ["red", "Blue", "x y", f"a{sep}b", 'say "hi"', f"two{line_end}lines", "é ü", "k"]
    word = words[rng.integers(len(words))]
    if any(c in word for c in (sep, '"', "\n", "\r")):
        return '"' + word.replace('"', '""') + '"'
    return word


def _csv_text(rng: np.random.Generator, rows: int, sep: str = ",") -> str:
    line_end = "\r\n" if rng.random() < 0.5 else "\n"
    lines = [sep.join(["num", "int", "word", "tag"])]
    for _ in range(rows):
        cells = [
            f"{rng.normal():.6g}",
            str(int(rng.integers(-50, 50))),
            _text_cell(rng, sep, line_end),
            "t" + str(int(rng.integers(3))),
        ]
        lines.append(sep.join(cells))
        if rng.random() < 0.1:
            lines.append(["", "   ", " \t "][rng.integers(3)] if sep != "\t" else "")
    text = line_end.join(lines)
    if rng.random() < 0.5:
        text += line_end  # else no final line feed
    return ("\ufeff" if rng.random() < 0.3 else "") + text


def _concat(path: str, parts, **options) -> pd.DataFrame:
    frames = []
    for part in parts:
        frame, first = read_part(path, part, **options)
        assert first == part.first_row == sum(len(f) for f in frames)
        if part.rows is not None:
            assert len(frame) == part.rows
        frames.append(frame)
    return pd.concat(frames).reset_index(drop=True)


def _same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal cells and columns; int64 and float64 of the same numbers are the same table
    (a part may hold only whole numbers of a column that has fractions elsewhere)."""
    assert list(got.columns) == list(want.columns)
    for name in want.columns:
        if want[name].dtype.kind in "if":
            assert got[name].dtype.kind in "if", name
            np.testing.assert_array_equal(got[name].to_numpy(float), want[name].to_numpy(float))
        else:
            assert got[name].tolist() == want[name].tolist(), name


@pytest.mark.parametrize("seed", range(12))
def test_csv_parts_are_the_table_for_any_part_size(tmp_path, seed):
    rng = np.random.default_rng(seed)
    sep = "\t" if seed % 4 == 3 else ","
    path = str(tmp_path / ("data.tsv" if sep == "\t" else "data.csv"))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(rng, int(rng.integers(1, 60)), sep))
    whole = read_table(path)
    for size in SIZES:
        parts = plan_parts(path, part_bytes=size)
        assert [p.index for p in parts] == list(range(len(parts)))
        assert all(p.stop is not None for p in parts), "an RFC 4180 file is split"
        _same_table(_concat(path, parts), whole)
        assert sum(p.rows for p in parts) == len(whole)
        starts = [p.start for p in parts]
        assert starts == sorted(set(starts)) and all(
            p.stop == q.start for p, q in zip(parts[:-1], parts[1:], strict=True)
        )


@pytest.mark.parametrize("scan", [1, 2, 3, 5, 64])
def test_the_plan_does_not_depend_on_how_the_bytes_are_scanned(tmp_path, monkeypatch, scan):
    """A quote, a CR LF or a record cut by the end of a scanned piece changes nothing."""
    path = str(tmp_path / "data.csv")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(np.random.default_rng(99), 40))
    expected = {size: plan_parts(path, part_bytes=size) for size in (1, 30, 200)}
    monkeypatch.setattr(parts_module, "_SCAN", scan)
    for size, parts in expected.items():
        assert plan_parts(path, part_bytes=size) == parts


def test_text_columns_and_a_locale_s_numbers_are_read_as_read_table_reads_them(tmp_path):
    path = str(tmp_path / "eu.csv")
    lines = ["code;amount;city"] + [f"0{i};{i},5;c{i % 3}" for i in range(1, 40)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    options = dict(sep=";", text=["code"], decimal=",")
    whole = read_table(path, ";", ["code"], ",")
    assert whole["code"].iloc[0] == "01" and whole["amount"].iloc[0] == 1.5
    for size in (1, 20, 100):
        parts = plan_parts(path, sep=";", part_bytes=size)
        _same_table(_concat(path, parts, **options), whole)


@pytest.mark.parametrize(
    "body",
    ['size,what\n5" pipe,1\n6,x\n', 'a,b\n1,"x" y\n2,z\n', "a,b\r1,2\r3,4\r", 'a,b\n1, "q"\n'],
    ids=["a quote inside a field", "text after a closing quote", "CR line ends", "space quote"],
)
def test_a_file_that_parity_cannot_split_is_one_part(tmp_path, body):
    path = str(tmp_path / "odd.csv")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(body)
    (part,) = plan_parts(path, part_bytes=1)
    assert part.stop is None and part.first_row == 0
    _same_table(_concat(path, [part]), read_table(path))


def test_gzip_is_one_part(tmp_path):
    path = str(tmp_path / "data.csv.gz")
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(np.random.default_rng(5), 30))
    (part,) = plan_parts(path, part_bytes=1)
    _same_table(_concat(path, [part]), read_table(path))


def test_a_tiny_file_has_as_many_parts_as_records(tmp_path):
    path = str(tmp_path / "tiny.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("a,b\n1,2")
    (part,) = plan_parts(path, part_bytes=1)
    assert (part.first_row, part.rows) == (0, 1)
    _same_table(_concat(path, [part]), read_table(path))
    assert owned_parts([part], 0, 3) == [part]
    assert owned_parts([part], 1, 3) == owned_parts([part], 2, 3) == []


@pytest.mark.parametrize("body", ["a,b\n", "a,b\n\n  \n", "a,b"])
def test_a_header_without_rows_is_refused_as_read_table_refuses_it(tmp_path, body):
    path = str(tmp_path / "empty.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(body)
    with pytest.raises(DataError, match="has a header row but no data rows"):
        read_table(path)
    with pytest.raises(DataError, match="has a header row but no data rows"):
        plan_parts(path)


def test_a_malformed_part_is_one_line_naming_its_rows(tmp_path):
    path = str(tmp_path / "bad.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("a,b\n" + "1,2\n" * 20 + "3,4,5\n" + "6,7\n" * 5)
    parts = plan_parts(path, part_bytes=16)
    with pytest.raises(DataError) as caught:
        for part in parts:
            read_part(path, part)
    assert "malformed CSV" in str(caught.value) and "\n" not in str(caught.value)


def test_a_folder_and_a_fifo_are_refused(tmp_path):
    with pytest.raises(DataError):
        plan_parts(str(tmp_path))
    fifo = str(tmp_path / "pipe.csv")
    os.mkfifo(fifo)
    with pytest.raises(DataError):
        plan_parts(fifo)  # returns: a FIFO is never opened


def test_a_part_reads_only_its_bytes(tmp_path):
    path = str(tmp_path / "big.csv")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(40_000, 8)), columns=[f"c{j}" for j in range(8)])
    frame.to_csv(path, index=False)
    size = os.path.getsize(path)
    tracemalloc.start()
    try:
        parts = plan_parts(path, part_bytes=size // 64)
        _, planned = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got, _ = read_part(path, parts[5])
        _, read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read < size / 8, (read, size)  # a 64th of the file, copied a few times
    assert planned < size / 2 or size < 2 * parts_module._SCAN
    np.testing.assert_array_equal(got.to_numpy(), pd.read_csv(path).to_numpy()[got.index])


def _parquet(tmp_path, rng: np.random.Generator, rows: int, group: int) -> str:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ints = pd.array(rng.integers(0, 9, rows), dtype="Int64")
    ints[rng.random(rows) < 0.2] = pd.NA
    words = np.array(["a", "b", "c"], dtype=object)[rng.integers(0, 3, rows)]
    words[rng.random(rows) < 0.2] = None
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.2] = np.nan
    table = pa.table({"x": x, "n": ints, "w": words, "y": rng.integers(0, 2, rows)})
    path = str(tmp_path / "data.parquet")
    pq.write_table(table, path, row_group_size=group)
    return path


@pytest.mark.parametrize("group", [1, 7, 50, 1000])
def test_parquet_parts_are_whole_row_groups_and_the_table(tmp_path, group):
    rng = np.random.default_rng(group)
    path = _parquet(tmp_path, rng, 123, group)
    whole = read_table(path)
    for size in (1, 500, 10**9):
        parts = plan_parts(path, part_bytes=size)
        assert parts[0].start == 0 and parts[-1].stop == -(-123 // group)
        assert all(p.stop == q.start for p, q in zip(parts[:-1], parts[1:], strict=True))
        got = _concat(path, parts)
        for name in whole.columns:
            want = whole[name].astype(object).where(whole[name].notna(), None).tolist()
            have = got[name].astype(object).where(got[name].notna(), None).tolist()
            assert [None if v is None else float(v) if name != "w" else v for v in have] == [
                None if v is None else float(v) if name != "w" else v for v in want
            ], name


def test_npy_parts_are_row_ranges_of_the_mapped_array(tmp_path):
    path = str(tmp_path / "X.npy")
    X = np.random.default_rng(0).normal(size=(101, 3))
    np.save(path, X)
    for size in (1, 24, 240, 10**6):
        parts = plan_parts(path, part_bytes=size)
        got = [read_part(path, p) for p in parts]
        assert [first for _, first in got] == [p.first_row for p in parts]
        np.testing.assert_array_equal(np.concatenate([a for a, _ in got]), X)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_ranks_own_contiguous_blocks_that_cover_every_part_once(tmp_path, k):
    rng = np.random.default_rng(k)
    csv_path = str(tmp_path / "data.csv")
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(rng, 80))
    files = [(csv_path, 40), (_parquet(tmp_path, rng, 200, 9), 1), (str(tmp_path / "X.npy"), 8)]
    np.save(files[2][0], rng.normal(size=(57,)))
    for path, size in files:
        parts = plan_parts(path, part_bytes=size)
        blocks = [owned_parts(parts, r, k) for r in range(k)]
        assert [p for block in blocks for p in block] == parts
        csv_bytes = parts[0].kind == "csv"
        total = parts[-1].stop - parts[0].start if csv_bytes else sum(p.rows for p in parts)
        for r, block in enumerate(blocks):
            for p in block:  # its first row (byte) in [r n / K, (r + 1) n / K)
                x = p.start - parts[0].start if csv_bytes else p.first_row
                assert r * total / k <= x < (r + 1) * total / k


def test_a_part_that_is_not_utf8_is_refused_in_one_line_as_read_table_refuses_it(tmp_path):
    path = str(tmp_path / "latin1.csv")
    body = "a,b\n" + "1,x\n" * 20_000 + "2,caf\xe9\n" + "3,y\n" * 50  # past the head
    Path(path).write_bytes(body.encode("latin-1"))
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_table(path)
    parts = plan_parts(path, part_bytes=4096)
    with pytest.raises(DataError, match="not a UTF-8 text file") as caught:
        for part in parts:
            read_part(path, part)
    assert "\n" not in str(caught.value)
    assert f"byte {Path(path).read_bytes().index(0xE9)} cannot" in str(caught.value)


def test_a_file_changed_after_its_plan_is_refused_not_misnumbered(tmp_path):
    path = str(tmp_path / "moving.csv")
    Path(path).write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(100)))
    parts = plan_parts(path, part_bytes=64)
    Path(path).write_text("a,b\n" + "".join(f"{i},{i}\n1,1\n" for i in range(100)))
    with pytest.raises(DataError, match="changed after its parts were planned"):
        read_part(path, parts[1])


def test_parquet_part_is_what_to_pandas_makes_of_its_row_groups(tmp_path):
    """``read_part`` reads a Parquet part a few columns at a time (bounded memory) and gives
    the frame pyarrow's ``to_pandas`` makes of its row groups: pandas' index left out,
    categories, nullable integers, time zones, text with gaps, names stripped; ``columns``
    reads only those; Arrow's default pool is the same afterwards."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from betaprop.files.parts import parquet_columns

    rng = np.random.default_rng(4)
    n = 300
    frame = pd.DataFrame(
        {f"x{j}": rng.normal(size=n) for j in range(11)}
        | {
            "c": pd.Categorical(rng.choice(["u", "v"], n)),
            "i": pd.array(
                np.where(rng.random(n) < 0.1, None, rng.integers(0, 5, n)), dtype="Int64"
            ),  # fmt: skip
            "t": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            " w ": np.where(rng.random(n) < 0.2, None, rng.choice(["a", "b"], n)),
            "label": rng.choice(["p", "q", "r"], n),
        },
        index=pd.Index(np.arange(n) * 3, name="id"),
    )
    path = str(tmp_path / "d.parquet")
    frame.to_parquet(path, row_group_size=40)
    pool = pa.default_memory_pool().backend_name
    assert parquet_columns(path) == [*(f"x{j}" for j in range(11)), "c", "i", "t", "w", "label"]
    for size in (1, 5000, 10**9):
        for part in plan_parts(path, part_bytes=size):
            got, first = read_part(path, part)
            want = pq.ParquetFile(path).read_row_groups(range(part.start, part.stop)).to_pandas()
            want.columns = [str(c).strip() for c in want.columns]
            want.index = range(first, first + len(want))
            pd.testing.assert_frame_equal(got, want)
            only, _ = read_part(path, part, columns=["label", "x3"])
            pd.testing.assert_frame_equal(only, want[["x3", "label"]])
    assert pa.default_memory_pool().backend_name == pool
