"""Reading in memory bounded by the data (issue 24): a Parquet file of plain numbers is read
in batches into one matrix, as a CSV file of numbers is, and gives the general reader's
numbers; the peak a reading adds is measured in a fresh process from Linux's own count
(``VmHWM`` after ``/proc/self/clear_refs``), against the size of the matrix it returns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import betaprop.files.datasets as datasets
import betaprop.files.numbers as numbers
from betaprop.files.datasets import from_frame, read_csv
from betaprop.files.reading import read_table

PEAK = r"""
import sys
import numpy as np
from betaprop.files.datasets import read_csv

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

read_csv(sys.argv[1], dtype="float32")  # every import and first-use buffer, on a small file
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident set starts again from the resident set now
X = read_csv(sys.argv[2], dtype="float32").X
print(status("VmHWM:") - before, X.nbytes)
"""


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 30)), columns=[f"x{i}" for i in range(30)])
    frame["count"] = rng.integers(-5, 5, rows)  # integers among the floats
    frame["label"] = rng.choice(["yes", "no"], rows)
    return frame


def _general(path: str):
    return from_frame(read_table(path), source=path)


@pytest.mark.parametrize("groups", [1, 3])
def test_parquet_numbers_equal_the_general_readers_without_it(tmp_path, monkeypatch, groups):
    monkeypatch.setattr(numbers, "CHUNK_ROWS", 7)  # many batches, within and across groups
    frame = _frame(100)
    path = str(tmp_path / "t.parquet")
    frame.to_parquet(path, row_group_size=-(-len(frame) // groups))
    expected = _general(path)

    def refuse(*args, **kwargs):
        raise AssertionError("the general reader was used")

    monkeypatch.setattr(datasets, "read_table", refuse)
    data = read_csv(path)
    np.testing.assert_array_equal(data.X, frame.iloc[:, :-1].to_numpy(np.float64))
    np.testing.assert_array_equal(data.X, expected.X)
    assert data.feature_names == expected.feature_names
    assert list(data.target) == list(expected.target) == frame["label"].tolist()
    float32 = read_csv(path, dtype="float32")
    np.testing.assert_array_equal(float32.X, expected.X.astype(np.float32))


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.set_axis([f"r{i}" for i in range(len(f))]),  # an index kept as a column
        lambda f: f.assign(flag=f["x0"] > 0),  # booleans: categories
        lambda f: f.assign(x1=f["x1"].where(f["x0"] > 1.5)),  # NaN: gaps
        lambda f: f.assign(count=f["count"].astype("Int64").where(f["x0"] < 1.5)),  # nulls
        lambda f: f.assign(x2=f["x2"].where(f["x0"] < 2.0, np.inf)),  # not finite
    ],
)
def test_parquet_that_is_not_plain_numbers_is_the_general_readers(tmp_path, change):
    frame = change(_frame(200))
    path = str(tmp_path / "t.parquet")
    frame.to_parquet(path)
    try:
        expected = _general(path)
    except datasets.DataError as error:
        with pytest.raises(datasets.DataError) as raised:
            read_csv(path)
        assert str(raised.value) == str(error)
        return
    data = read_csv(path, allow_missing=expected.frame is not None)
    assert data.feature_names == expected.feature_names
    np.testing.assert_array_equal(data.X, expected.X)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_reading_numbers_grows_by_at_most_twice_the_matrix(tmp_path: Path, suffix: str) -> None:
    """What a reading adds at its peak grows with the table by at most twice the matrix it
    returns (float32): 50 000 then 200 000 rows of 31 numbers (the general reader, which
    Parquet files went to, took 7.4 times). The difference of two sizes leaves out what
    does not grow with the data (a chunk's buffers)."""
    frame = _frame(200_000)
    peaks, matrices = [], []
    for rows in (100, 50_000, 200_000):
        path = tmp_path / f"t{rows}.{suffix}"
        if suffix == "csv":
            frame.iloc[:rows].to_csv(path, index=False)
        else:
            frame.iloc[:rows].to_parquet(path)
        if rows == 100:  # the warm-up: a reading of the same kind, not of the same file
            continue  # (which would leave pyarrow's pool as large as its peak)
        small = tmp_path / f"t100.{suffix}"
        result = subprocess.run([sys.executable, "-c", PEAK, str(small), str(path)],
                                capture_output=True, text=True, timeout=300,
                                check=True)  # fmt: skip
        peak, matrix = map(int, result.stdout.split())
        assert matrix == rows * 31 * 4
        peaks.append(peak)
        matrices.append(matrix)
    growth = (peaks[1] - peaks[0]) / (matrices[1] - matrices[0])
    assert growth <= 2.0, (growth, peaks, suffix)
