"""Reading data where it meets the rest (issue 22): a laptop's memory, float32 training, exact
class labels, headers past any fixed head, tables that do not fit, files that are no CSV, and
pandas' nullable columns.

Real files and real ``betaprop`` subprocesses; the memory tests run the command under an
address-space limit (``RLIMIT_AS``), as ``ulimit -v`` does on a laptop.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import betaprop as bp
from betaprop.files.datasets import DataError, Dataset, class_labels, infer_task, read_csv
from betaprop.files.model import read_model
from betaprop.files.preprocessing import Preprocessing

COMMAND = [sys.executable, "-m", "betaprop"]
GiB = 1024**3


def run(*args: str | Path, cwd: Path, memory: int | None = None) -> subprocess.CompletedProcess:
    """``betaprop args`` in ``cwd``; with ``memory``, under that many bytes of address space.

    Under a limit, BLAS runs 2 threads: OpenBLAS reserves about 44 MB of address space per
    thread when NumPy is imported (measured: 325 MB with 1 thread, 369 MB with 2), so on a
    64-core machine its threads alone would take 2.8 GiB; the limit is for what betaprop
    allocates, as on a laptop's few cores."""

    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = dict(os.environ)
    if memory is not None:
        env.update(OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
        env=env,
    )


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """The command failed with exit code 2 and one line on stderr holding ``words``."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    return result.stdout


def mixed_table(n: int = 120) -> str:
    """Numbers, a text category, a boolean and gaps: the general reader's table."""
    rng = np.random.default_rng(0)
    lines = ["x,size,city,member,label"]
    for i in range(n):
        x = "" if i % 13 == 4 else f"{rng.normal():.4f}"
        city = ["Paris", "Lyon", "Nice"][i % 3]
        member = ["true", "false"][rng.integers(0, 2)]
        label = "yes" if (i % 3 == 0) ^ (rng.random() < 0.2) else "no"
        lines.append(f"{x},{rng.uniform(1, 9):.2f},{city},{member},{label}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- 1. a laptop's memory
@pytest.mark.parametrize("name", ["small.csv", "small.csv.gz"])
def test_every_command_reads_a_table_with_text_and_gaps_in_2_GiB_of_address_space(
    tmp_path: Path, name: str
) -> None:
    """``read(16 GiB)`` allocated 16 GiB up front: every table with text or a gap failed under
    ``ulimit -v`` of a laptop's memory. Every command that reads a table must fit in 2 GiB."""
    text = mixed_table()
    data = tmp_path / name
    data.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    limit = 2 * GiB
    ok(run("train", "--data", data, "--impute", "median", "--epochs", "2", "--out", "run",
           cwd=tmp_path, memory=limit))  # fmt: skip
    model = tmp_path / "run" / "model.safetensors"
    predicted = ok(run("predict", model, data, cwd=tmp_path, memory=limit)).split()
    assert predicted[0] == "prediction" and set(predicted[1:]) <= {"yes", "no"}
    assert len(predicted) == 1 + text.count("\n") - 1
    assert "accuracy" in ok(run("evaluate", model, data, cwd=tmp_path, memory=limit))
    assert "city" in ok(run("info", model, cwd=tmp_path, memory=limit))
    traced = ok(run("trace", "--model", model, "--data", data, "--example", "4",
                    cwd=tmp_path, memory=limit))  # fmt: skip
    assert "beta" in traced
    ok(run("export", model, "--onnx", tmp_path / "model.onnx", cwd=tmp_path, memory=limit))
    assert (tmp_path / "model.onnx").stat().st_size > 0


# ---------------------------------------------------------------- 2. float32 statistics
def _numbers_with_1e20(path: Path, n: int = 100) -> np.ndarray:
    rng = np.random.default_rng(1)
    a = rng.random(n)
    a[5::10] = 1e20
    b = rng.random(n)
    labels = np.where(b > 0.5, "p", "q")
    lines = ["a,b,label"] + [f"{a[i]:.17g},{b[i]:.3f},{labels[i]}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return a


def test_a_float32_table_with_1e20_trains_and_writes_its_model(tmp_path: Path) -> None:
    """1e20 is within the documented 1e150, but its square overflows float32: the scale was
    infinite and the model could not be written after training. Statistics are float64."""
    a = _numbers_with_1e20(tmp_path / "big.csv")
    ok(run("train", "--data", "big.csv", "--dtype", "float32", "--epochs", "2", "--out", "run",
           cwd=tmp_path))  # fmt: skip
    model = read_model(tmp_path / "run" / "model.safetensors")
    prep = model.metadata["preprocessing"]
    assert all(np.isfinite(prep["mean"])) and all(np.isfinite(prep["scale"]))
    assert 1e18 < prep["scale"][0] <= a.max() and 1e18 < prep["mean"][0] <= a.max()
    assert "prediction" in ok(run("predict", "run/model.safetensors", "big.csv", cwd=tmp_path))


def test_preprocessing_statistics_are_float64_and_finite_or_one_clear_error() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1000, 3)) * [1.0, 1e20, 1e-3] + [0.0, 3e20, 5.0]
    target = np.array(["a", "b"] * 500, dtype=object)
    narrow = Preprocessing.fit(Dataset(X.astype(np.float32), target, ["u", "v", "w"], "t", "x"))
    wide = X.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(narrow.mean, wide.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(narrow.scale, wide.std(axis=0), rtol=1e-12)
    json.dumps(narrow.to_dict(), allow_nan=False)  # what the model file holds
    X[7, 1] = 1e300  # a Dataset built by hand, past what a file may hold: its square overflows
    with pytest.raises(DataError, match=r"column 'v': its mean and standard deviation must be "
                       r"finite, got .* \(values up to 1e\+300"):  # fmt: skip
        Preprocessing.fit(Dataset(X, target, ["u", "v", "w"], "t", "x"))


# ---------------------------------------------------------------- 3. exact class labels
BIG_LABELS = [str(2**63), str(2**63 + 1), str(2**63 + 4096)]


def test_class_labels_beyond_int64_and_float64_stay_as_written_through_the_cli(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    lines = ["a,b,label"]
    for i in range(90):
        lines.append(f"{i % 3 + 0.1 * rng.random():.3f},{rng.random():.3f},{BIG_LABELS[i % 3]}")
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    ok(run("train", "--data", "big.csv", "--epochs", "30", "--out", "run", cwd=tmp_path))
    model = read_model(tmp_path / "run" / "model.safetensors")
    assert model.metadata["preprocessing"]["classes"] == BIG_LABELS
    predicted = ok(run("predict", "run/model.safetensors", "big.csv", cwd=tmp_path)).split()
    assert set(predicted[1:]) <= set(BIG_LABELS) and len(set(predicted[1:])) >= 2
    assert "accuracy" in ok(run("evaluate", "run/model.safetensors", "big.csv", cwd=tmp_path))


@pytest.mark.parametrize(
    "labels",
    [
        BIG_LABELS,  # uint64 as parsed
        [str(2**53), str(2**53 + 1), "7"],  # int64 beyond float64's integers
        [str(2**64 + 1), str(2**64 + 2), "2"],  # beyond uint64: Python ints
        [str(2**63), str(2**63 + 1), "-1"],  # uint64 and negative: text
    ],
)
def test_class_labels_are_kept_exactly_by_read_csv_and_preprocessing(
    tmp_path: Path, labels: list[str]
) -> None:
    column = labels * 10
    frame = pd.DataFrame({"a": np.arange(30.0), "label": column})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    data = read_csv(str(path))
    assert class_labels(data.target) == column
    assert infer_task(data) == "classification"
    prep = Preprocessing.fit(data)
    assert sorted(prep.classes or [], key=int) == sorted(labels, key=int)
    assert prep.classes == sorted(labels, key=int)  # in the order of their values
    parsed = pd.read_csv(path)  # the DataFrame API: pandas' own parse of the same file
    assert bp.Preprocessing.fit(parsed, target="label").classes == prep.classes


# ---------------------------------------------------------------- 4. one line, not a traceback
def test_a_header_name_holding_a_line_break_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text('"a\nb",c,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n')
    one_line_error(run("train", "--data", "t.csv", "--out", "run", cwd=tmp_path),
                   "t.csv line 1", "line break", "'a\\nb'")  # fmt: skip


def test_a_header_longer_than_64_KiB_is_read_whole(tmp_path: Path) -> None:
    """A header cut at 64 KiB gave false 'appears twice' / 'has no name' refusals."""
    p = 12_000  # 14 bytes a name: a 168 KB header
    names = [f"feature_{j:05d}" for j in range(p)]
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 10, size=(40, p))
    lines = [",".join(names) + ",label"]
    lines += [",".join(map(str, row)) + f",{'ab'[i % 2]}" for i, row in enumerate(rows)]
    (tmp_path / "wide.csv").write_text("\n".join(lines) + "\n")
    assert len(lines[0]) > 65536
    ok(run("train", "--data", "wide.csv", "--hidden", "4", "--epochs", "1", "--out", "run",
           cwd=tmp_path))  # fmt: skip
    model = read_model(tmp_path / "run" / "model.safetensors")
    assert model.metadata["preprocessing"]["feature_names"] == names
    predicted = ok(run("predict", "run/model.safetensors", "wide.csv", cwd=tmp_path)).split()
    assert len(predicted) == 41
    data = read_csv(str(tmp_path / "wide.csv"))  # the API, and a header cut in a name
    assert data.feature_names == names and data.X.shape == (40, p)


def test_a_compressed_table_that_does_not_fit_is_one_line_with_the_estimate(
    tmp_path: Path,
) -> None:
    """10 million rows of 20 numbers (400 MB of text, 1.5 GiB as float64) in a 3 MB gzip
    file, read with 1 GiB of address space: MemoryError was a 68-line traceback."""
    rows, block = 10_000_000, b"1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,1\n" * 100_000
    with gzip.open(tmp_path / "huge.csv.gz", "wb", compresslevel=1) as handle:
        handle.write(b",".join(b"c%d" % j for j in range(20)) + b"\n")
        for _ in range(rows // 100_000):
            handle.write(block)
    result = run("train", "--data", "huge.csv.gz", "--dtype", "float64", "--out", "run",
                 cwd=tmp_path, memory=GiB)  # fmt: skip
    line = one_line_error(result, "huge.csv.gz", "does not fit in memory", "10,000,000 rows",
                          "20 columns", "8-byte")  # fmt: skip
    assert f"{rows * 20 * 8 / GiB:.2f} GiB" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


# ---------------------------------------------------------------- 5. messages
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("data.json", '[{"a": 1, "label": 0},\n {"a": 2, "label": 1}]\n'),
        ("data.json", '{"a": [1, 2, 3], "label": [0, 1, 0]}'),
        ("data.jsonl", '{"a": 1, "label": 0}\n{"a": 2, "label": 1}\n'),
        ("data.csv", '[{"a": 1, "label": 0},\n {"a": 2, "label": 1}]\n'),  # by its content
    ],
)
def test_json_is_named_with_the_supported_formats(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    one_line_error(run("train", "--data", name, "--out", "run", cwd=tmp_path),
                   "JSON is not a table format", "CSV", "Parquet", "gzip")  # fmt: skip


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_named_with_how_to_save_it(tmp_path: Path, encoding: str) -> None:
    (tmp_path / "t.csv").write_bytes("a,b,label\n1,2,x\n3,4,y\n5,6,x\n".encode(encoding))
    one_line_error(run("train", "--data", "t.csv", "--out", "run", cwd=tmp_path),
                   "UTF-16", "save it as UTF-8")  # fmt: skip


def _nullable(gap: bool) -> pd.DataFrame:
    n = 40
    a = pd.array([1, 2, 3, 4] * (n // 4), dtype="Int64")
    if gap:
        a[2] = pd.NA
    b = pd.array([True, False, False, True] * (n // 4), dtype="boolean")
    c = pd.array([0.5, 1.5, 2.5, 3.5] * (n // 4), dtype="Float64")
    return pd.DataFrame({"a": a, "b": b, "c": c})


def test_fit_takes_nullable_int_boolean_and_float_columns() -> None:
    X = _nullable(gap=False)
    D = np.eye(2)[np.arange(len(X)) % 2]
    nets = [bp.Network([3, 4, 2], loss="cross_entropy", seed=0) for _ in range(2)]
    bp.fit(nets[0], X, D, epochs=2, seed=0)
    bp.fit(nets[1], X.to_numpy(dtype=np.float64), D, epochs=2, seed=0)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    np.testing.assert_array_equal(nets[0].predict(X), nets[1].predict(X.to_numpy(np.float64)))


def test_fit_names_the_row_and_column_of_a_nullable_gap() -> None:
    net = bp.Network([3, 4, 2], loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match=r"X must be finite, got a missing value \(pd.NA\) at "
                       r"row 2, column 'a'"):  # fmt: skip
        bp.fit(net, _nullable(gap=True), np.eye(2)[np.arange(40) % 2], epochs=1)


def test_preprocessing_names_a_nullable_gap_and_imputes_it_when_asked() -> None:
    frame = _nullable(gap=True)
    frame["label"] = ["u", "v"] * 20
    with pytest.raises(DataError, match=r"row 2, column 'a': missing value"):
        bp.Preprocessing.fit(frame)
    prep = bp.Preprocessing.fit(frame, impute="median")
    assert prep.fill["a"] == 2.0
    Z = prep.transform(frame.drop(columns="label"))
    assert Z.shape[0] == 40 and np.isfinite(Z).all()


def test_fit_takes_a_frame_of_floats_and_numpy_booleans_and_names_a_gap_by_its_index() -> None:
    """A float column beside a NumPy bool column (object dtype through NumPy) trains as the
    float64 matrix does; a pd.NA gap under a non-default index is named by position and label."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "b": rng.random(40) > 0.5})
    D = np.eye(2)[rng.integers(0, 2, 40)]
    nets = [bp.Network([2, 4, 2], output="softmax", loss="cross_entropy", seed=0) for _ in "ab"]
    bp.fit(nets[0], frame, D, epochs=2, seed=0)
    bp.fit(nets[1], frame.to_numpy(dtype=np.float64), D, epochs=2, seed=0)
    np.testing.assert_array_equal(nets[0].params, nets[1].params)
    gap = pd.DataFrame(
        {"x": pd.array([1.0, None, 2.0], dtype="Float64"), "b": [True, False, True]},
        index=[100, 101, 102],
    )
    with pytest.raises(ValueError, match=r"at row 1 \(index 101\), column 'x'"):
        bp.fit(nets[0], gap, D[:3], epochs=1)


@pytest.mark.parametrize("rows", ["1,2,3,4\n4,5,6,7\n7,8,9,1\n", "1,x,3,4\n4,y,6,7\n7,x,9,1\n"],
                         ids=["numbers", "text"])  # fmt: skip
def test_rows_with_one_field_more_than_the_header_are_refused_never_read_shifted(
    tmp_path: Path, rows: str
) -> None:
    # pandas silently takes the first column as the index when the first row has one field
    # more than the header: every column would hold its neighbour's values
    path = tmp_path / "extra.csv"
    path.write_text("a,b,c\n" + rows)
    with pytest.raises(DataError, match="line 2 has 4 fields, but the header has 3"):
        read_csv(str(path))
    done = run("train", "--data", path, "--epochs", "1", "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"betaprop: error: {path} line 2 has 4 fields, but the header has 3"
    ]
    assert not (tmp_path / "run").exists()
