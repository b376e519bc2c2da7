"""Stream.from_file: a data file read in parts, encoded part by part (files/table_stream.py).

Oracles: pandas' own mean and population standard deviation of the whole table, pandas'
sorted labels, the file's rows themselves; a real subprocess's peak RSS for the memory bound
(a bound derived from the data's size, never a time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import betaprop as bp
from betaprop.files.errors import DataError
from betaprop.files.table_stream import Moments

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")


def table(n: int, seed: int = 0, classes: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 4)) * [1, 10, 100, 1e-3] + [0, 5, 1e4, 0]
    frame = pd.DataFrame(values, columns=list("abcd"))
    frame["label"] = rng.integers(0, classes, n) * 10  # labels 0, 10, 20: ordered by value
    return frame


def write(frame: pd.DataFrame, path: str, kind: str) -> str:
    if kind == "parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind,part_bytes", [("parquet", 1), ("parquet", 10**9), ("csv", 20000)])
def test_parts_encode_as_the_whole_table(tmp_path, kind, part_bytes):
    """Means and scales of all parts combined (Chan's update) equal pandas' over the whole
    table; the classes are its sorted labels; the parts, put end to end, are the table's
    rows standardised and one-hot encoded."""
    frame = table(5000)
    path = write(frame, str(tmp_path / f"t.{kind}"), kind)
    stream = bp.Stream.from_file(path, part_bytes=part_bytes, dtype="float64")
    if part_bytes < 10**6:
        assert len(stream.parts) > 1
    prep = stream.preprocessing
    features = frame[list("abcd")]
    np.testing.assert_allclose(prep.mean, features.mean(), rtol=1e-12)
    np.testing.assert_allclose(prep.scale, features.std(ddof=0), rtol=1e-12)
    assert prep.classes == ["0", "10", "20"]
    assert stream.n_rows == 5000 and sum(stream.rows) == 5000
    X = np.concatenate([stream.read(part)[0] for part in stream.parts])
    D = np.concatenate([stream.read(part)[1] for part in stream.parts])
    expected = (features - features.mean()) / features.std(ddof=0)
    np.testing.assert_allclose(X, expected.to_numpy(), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(D.argmax(axis=1), frame["label"].to_numpy() // 10)


def test_regression_target_scaled_over_all_parts(tmp_path):
    frame = table(3000)
    frame["label"] = frame["a"] * 3.5 + 100.0 + np.linspace(0, 1, 3000)
    path = write(frame, str(tmp_path / "t.parquet"), "parquet")
    stream = bp.Stream.from_file(path, part_bytes=1, dtype="float64")
    prep = stream.preprocessing
    assert prep.task == "regression"
    assert prep.target_mean == pytest.approx(frame["label"].mean(), rel=1e-12)
    assert prep.target_scale == pytest.approx(frame["label"].std(ddof=0), rel=1e-12)


def test_moments_combine_as_one_pass():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1001, 3)) * 1e3 + 1e6  # large mean: sums of squares would cancel
    moments = Moments(3)
    for start, stop in [(0, 1), (1, 500), (500, 500), (500, 1001)]:
        moments.add(X[start:stop], ["a", "b", "c"])
    np.testing.assert_allclose(moments.mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(moments.std, X.std(axis=0), rtol=1e-10)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_categories_and_gaps_encode_as_the_whole_table(tmp_path, kind):
    """A text column whose levels differ between parts and numeric gaps (median imputation
    with indicators): the stream's Preprocessing is Preprocessing.fit's on the whole table
    (scikit-learn's SimpleImputer and OneHotEncoder underneath), and its parts, put end to
    end, are that preprocessing's transform of the whole table."""
    from betaprop.files.preprocessing import Preprocessing

    frame = table(3000)
    frame.insert(2, "city", np.where(np.arange(3000) < 1500, "Paris", "Oslo"))
    frame.loc[2900:, "city"] = "Lima"  # a level of the last part only
    frame.loc[::7, "a"] = np.nan
    path = write(frame, str(tmp_path / f"t.{kind}"), kind)
    stream = bp.Stream.from_file(path, part_bytes=1 if kind == "parquet" else 9000,
                                 dtype="float64", impute="median", indicator=True)  # fmt: skip
    assert len(stream.parts) > 3
    whole = Preprocessing.fit(frame, impute="median", indicator=True)
    prep = stream.preprocessing
    assert prep.feature_names == whole.feature_names and prep.categories == whole.categories
    assert prep.fill == whole.fill and prep.classes == whole.classes
    np.testing.assert_allclose(prep.mean, whole.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(prep.scale, whole.scale, rtol=1e-12)
    X = np.concatenate([stream.read(part)[0] for part in stream.parts])
    expected = whole.transform(frame.drop(columns="label"), "float64")
    np.testing.assert_allclose(X, expected, rtol=0, atol=1e-10)


def test_streamed_file_trains_like_the_table_in_memory(tmp_path):
    """A Parquet table in 15 parts: test accuracy of streamed training within noise of the
    same network trained in memory on the same encoding (3 seeds)."""
    rng = np.random.default_rng(3)
    n = 6000
    values = rng.normal(size=(n, 6))
    label = (values[:, 0] + values[:, 1] * values[:, 2] > 0).astype(int)
    frame = pd.DataFrame(values, columns=[f"f{j}" for j in range(6)]).assign(y=label)
    train, test = frame.iloc[:4500], frame.iloc[4500:]
    pq.write_table(pa.Table.from_pandas(train, preserve_index=False), tmp_path / "t.parquet",
                   row_group_size=300)  # fmt: skip
    stream = bp.Stream.from_file(str(tmp_path / "t.parquet"), part_bytes=1, shuffle_buffer=500)
    prep = stream.preprocessing
    X = prep.transform(train.iloc[:, :6].to_numpy(), "float32")
    D = prep.encode(train["y"].to_numpy(), 2, "float32")
    Xt = prep.transform(test.iloc[:, :6].to_numpy(), "float32")
    scores: dict[str, list[float]] = {"memory": [], "stream": []}
    for seed in range(3):
        for how, data in (("memory", (X, D)), ("stream", (stream,))):
            net = bp.Network([6, 32, 2], loss="cross_entropy", seed=seed)
            bp.fit(net, *data, epochs=12, batch_size=64, seed=seed)
            scores[how].append(np.mean(net.predict(Xt).argmax(axis=1) == test["y"].to_numpy()))
    assert np.mean(scores["memory"]) > 0.9
    # one accuracy's binomial noise on 1 500 rows: sqrt(0.95 * 0.05 / 1500) ~ 0.006
    assert abs(np.mean(scores["memory"]) - np.mean(scores["stream"])) < 0.02, scores


PROBE = """
import json, sys
import numpy, pandas, pyarrow.parquet
import betaprop as bp
path, warm = sys.argv[1], sys.argv[2]
options = dict(shuffle_buffer=8192, part_bytes=4 * 2**20)
def run(file):
    net = bp.Network([40, 32, 2], loss="cross_entropy", seed=0)
    return bp.fit(net, bp.Stream.from_file(file, **options), epochs=1, batch_size=256, seed=0)
run(warm)  # the readers' and BLAS's code and buffers in memory before the baseline
with open("/proc/self/statm") as handle:
    base = int(handle.read().split()[1]) * 4096
history = run(path)
# VmHWM: this process's peak RSS (ru_maxrss would carry the parent's over fork and exec)
with open("/proc/self/status") as handle:
    peak = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))
print(json.dumps({"base": base, "peak": peak, "loss": history.loss[-1]}))
"""


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory):
    """600 000 x 40 float32 features (a 91.6 MiB matrix) and a 0/1 label, row groups of
    25 000 rows; and its first 1 000 rows (the warm-up file)."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600_000, 40)).astype(np.float32)
    label = (X[:, :5].sum(axis=1) > 0).astype(np.int64)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(40)]).assign(y=label)
    whole = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(whole, folder / "big.parquet", row_group_size=25_000)
    pq.write_table(whole.slice(0, 1000), folder / "warm.parquet")
    return str(folder / "big.parquet"), str(folder / "warm.parquet"), X.nbytes


def probe(paths: tuple, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, paths[0], paths[1]], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, **env))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_streaming_600k_rows_holds_under_half_the_matrix(big_parquet):
    """One epoch streamed (parts of 4 MiB, a buffer of 8 192 rows): the data's part of the
    peak RSS (peak minus the RSS after imports and a warm-up run) is <= 0.5 x the float32
    matrix (45.8 MiB; a part, its frame and encoding, the buffer: about 25 MiB measured),
    with allocators that give freed memory back (pyarrow's system pool, glibc's fixed mmap
    threshold: by default both keep freed pages, which a later part reuses). Under the
    default allocators the bound is the whole matrix (in-memory training holds ~8 x)."""
    path, warm, nbytes = big_parquet
    from betaprop.cli.streaming import MMAP_THRESHOLD

    returning = {
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    }
    result = probe((path, warm), returning)
    assert result["peak"] - result["base"] <= 0.5 * nbytes, result
    assert result["loss"] < 0.6  # it trained (ln 2 = 0.69 at the start)
    default = probe((path, warm), {})
    assert default["peak"] - default["base"] <= 1.0 * nbytes, default


def test_a_part_changed_after_the_first_pass_is_checked_again(tmp_path):
    """Epoch reads take plain finite numbers as they are; a part that is not (the file was
    rewritten with a gap) goes through the reader's checks again: its one-line DataError."""
    frame = table(2100)
    path = write(frame, str(tmp_path / "t.parquet"), "parquet")
    stream = bp.Stream.from_file(path, part_bytes=1, dtype="float64")
    frame.loc[1500, "b"] = np.nan
    write(frame, path, "parquet")
    stream.read(stream.parts[0])  # rows 0-699: still plain numbers
    with pytest.raises(DataError) as error:
        stream.read(stream.parts[2])
    assert "\n" not in str(error.value) and "'b'" in str(error.value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("moved", ["all", "first", "none"])
def test_a_part_is_standardised_as_transform_does_through_one_scratch(monkeypatch, dtype, moved):
    """The epoch reads standardise a part block by block in one reused float64 scratch
    (no temporaries a block): bit for bit Preprocessing.transform, one-hot-like columns
    (mean 0, scale 1 after the last moved one) cast as they are; blocks of 5 rows here."""
    import betaprop.files.table_stream as table_stream
    from betaprop.files.preprocessing import Preprocessing

    frame = table(1003)
    prep = Preprocessing.fit(frame)
    if moved == "first":
        prep.mean, prep.scale = [prep.mean[0], 0.0, 0.0, 0.0], [prep.scale[0], 1.0, 1.0, 1.0]
    elif moved == "none":
        prep.mean, prep.scale = [0.0] * 4, [1.0] * 4
    raw = frame[list("abcd")].to_numpy(dtype="float32")
    monkeypatch.setattr(table_stream, "_SCRATCH_BYTES", 5 * 8 * 4)
    X = np.empty(raw.shape, dtype=dtype)
    table_stream._standardised(raw, prep, X)
    expected = prep.transform(raw, dtype)
    assert X.dtype == expected.dtype and np.array_equal(X, expected)
