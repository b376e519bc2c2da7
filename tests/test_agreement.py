"""Statistics agreed by reduction (files/agreement.py, Preprocessing.fit_parts).

Oracles: ``Preprocessing.fit`` on all rows (scikit-learn's SimpleImputer and OneHotEncoder
underneath), NumPy's mean, std and median, scikit-learn's SimpleImputer on the whole column.
Parts are read from real files by ``files.parts``; ranks are real ``mpiexec`` processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from betaprop.files import agreement as agreement_module
from betaprop.files.agreement import (
    Agreement,
    combine_all,
    counts,
    median_of,
    merge_counts,
    middle_orders,
    moments,
    most_frequent,
    order_statistics,
)
from betaprop.files.errors import DataError
from betaprop.files.parts import plan_parts, read_part
from betaprop.files.preprocessing import Preprocessing
from betaprop.files.reading import read_table

sys.path.insert(0, str(Path(__file__).parent))
from test_distributed import ranks  # noqa: E402


def _pieces(x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    cuts = np.sort(rng.integers(0, len(x) + 1, int(rng.integers(0, 6))))
    return np.split(x, cuts)  # empty pieces too


@pytest.mark.parametrize("seed", range(10))
def test_moments_combined_pairwise_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(1, 500)), 3)) * [1.0, 1e-3, 1e8] + [0.0, 1.0, -3e9]
    X[rng.random(X.shape) < 0.1] = np.nan
    total = combine_all(moments(p) for p in _pieces(X, rng))
    for j in range(3):
        column = X[:, j][~np.isnan(X[:, j])]
        assert total.n[j] == len(column)
        np.testing.assert_allclose(total.mean[j], column.mean(), rtol=1e-12)
        np.testing.assert_allclose(total.std[j], column.std(), rtol=1e-12)


def test_sums_of_squares_would_cancel_where_the_pairwise_update_does_not():
    """A column at 1e4 with spread 1e-3: Σx²/n - mean² loses most digits of the variance;
    the pairwise update keeps them (the oracle: exact rational arithmetic)."""
    from fractions import Fraction

    x = 1e4 + np.random.default_rng(0).normal(size=1000) * 1e-3
    exact_mean = sum(Fraction(v) for v in x) / len(x)
    exact = float(sum((Fraction(v) - exact_mean) ** 2 for v in x) / len(x)) ** 0.5
    naive = np.sqrt(max(np.sum(x**2) / len(x) - np.mean(x) ** 2, 0.0))
    pairwise = combine_all(moments(p) for p in np.array_split(x, 7)).std[0]
    np.testing.assert_allclose(pairwise, exact, rtol=1e-8)
    assert abs(naive - exact) > 1e-4 * exact


@pytest.mark.parametrize("seed", range(25))
def test_the_selected_median_is_numpy_s_and_simple_imputer_s(seed, monkeypatch):
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2000))
    scale = 10.0 ** float(rng.integers(-100, 100))
    x = rng.standard_cauchy(n) * scale  # heavy tails: values over many binades
    if seed % 3 == 0:
        x = np.round(rng.normal(size=n) * 3) * scale  # many ties
    if seed % 4 == 0:
        x[: n // 2] = -0.0 if seed % 8 else 0.0
    if seed % 5 == 0:
        monkeypatch.setattr(agreement_module, "SMALL", 0)  # histogram rounds to the end
    pieces = _pieces(x, rng)
    bounds = None if seed % 2 else [(x.min(), x.max(), n)]
    middle = order_statistics(lambda: ([p] for p in pieces), [middle_orders(n)], Agreement(None),
                              bounds)  # fmt: skip
    median = median_of(middle[0], n)
    assert median == np.median(x)
    imputer = SimpleImputer(strategy="median").fit(np.append(x, np.nan)[:, None])
    assert median == imputer.statistics_[0]


def test_most_frequent_breaks_ties_as_simple_imputer(tmp_path):
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.integers(0, 6, int(rng.integers(1, 40))).astype(float)
        merged = merge_counts(counts(p) for p in _pieces(x, rng))
        want = SimpleImputer(strategy="most_frequent").fit(x[:, None]).statistics_[0]
        assert most_frequent(merged) == want
        words = np.array(["b", "a", "c", "B"], dtype=object)[x.astype(int) % 4]
        merged = merge_counts(counts(p.astype(str)) for p in _pieces(words, rng))
        want = SimpleImputer(strategy="most_frequent").fit(words[:, None]).statistics_[0]
        assert most_frequent(merged) == want


# ----------------------------------------------------------------------------- fit_parts
def _table(tmp_path: Path, seed: int, task: str) -> str:
    """A real CSV file: numbers with gaps, a text column with gaps, a boolean column, an
    integer column, and a text or numeric target; runs of rows where the text column has
    only gaps (a part may detect it as numbers)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 200))
    frame = pd.DataFrame(
        {
            "x": np.round(rng.normal(5.0, 3.0, n), 4),
            "z": np.round(rng.exponential(100.0, n), 2),
            "k": rng.integers(-3, 4, n),
            "city": np.array(["Paris", "Oslo", "New_York", "Rome"], dtype=object)[
                rng.integers(0, 4, n)
            ],
            "flag": np.array(["true", "False"], dtype=object)[rng.integers(0, 2, n)],
        }
    )
    frame.loc[rng.random(n) < 0.15, "x"] = np.nan
    frame.loc[rng.random(n) < 0.1, "z"] = np.nan
    gaps = rng.random(n) < 0.15
    gaps[: n // 5] = True  # the first rows of the text column are gaps
    frame.loc[gaps, "city"] = None
    if task == "classification":
        frame["label"] = np.array(["yes", "no", "maybe"], dtype=object)[rng.integers(0, 3, n)]
    else:
        frame["label"] = np.round(rng.normal(50.0, 10.0, n), 3)
    path = str(tmp_path / f"table{seed}.csv")
    frame.to_csv(path, index=False)
    return path


def _parts(path: str, part_bytes: int) -> list[pd.DataFrame]:
    return [read_part(path, part)[0] for part in plan_parts(path, part_bytes=part_bytes)]


def assert_same_preprocessing(got: Preprocessing, want: Preprocessing) -> None:
    """Equal fields; means, scales and mean fills to 1e-12 relative, the rest exactly."""
    a, b = got.to_dict(), want.to_dict()
    for name in ("mean", "scale"):
        np.testing.assert_allclose(a.pop(name), b.pop(name), rtol=1e-12, atol=1e-300)
    for name in ("target_mean", "target_scale"):
        np.testing.assert_allclose(a.pop(name), b.pop(name), rtol=1e-12)
    fill_a, fill_b = a.pop("fill"), b.pop("fill")
    assert list(fill_a) == list(fill_b)
    for column, value in fill_b.items():
        if isinstance(value, float) and got.impute == "mean":
            np.testing.assert_allclose(fill_a[column], value, rtol=1e-12)
        else:
            assert fill_a[column] == value, column
    assert a == b


IMPUTE = ["mean", "median", "most_frequent", "constant"]


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("impute", IMPUTE)
@pytest.mark.parametrize("indicator", [False, True])
def test_parts_in_one_process_give_fit_s_preprocessing(tmp_path, task, impute, indicator):
    seed = IMPUTE.index(impute) + 10 * indicator + 100 * (task == "regression")
    path = _table(tmp_path, seed, task)
    want = Preprocessing.fit(read_table(path), impute=impute, indicator=indicator)
    assert want.categories and want.fill, "the oracle encodes and imputes"
    assert want.task == task
    for part_bytes in (64, 500, 2000, 10**9):
        frames = _parts(path, part_bytes)
        got = Preprocessing.fit_parts(frames, impute=impute, indicator=indicator)
        assert_same_preprocessing(got, want)
    widened = _parts(path, 64)[0]  # the first rows: the text column all gaps, read as numbers
    assert widened["city"].isna().all() or (widened["city"] == "").all()


def test_numeric_tables_without_gaps_give_fit_s_preprocessing(tmp_path):
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(150, 4)) * [1, 1e3, 1e-3, 7], columns=list("abcd"))
    frame["y"] = rng.integers(0, 3, 150)
    path = str(tmp_path / "numbers.csv")
    frame.to_csv(path, index=False)
    want = Preprocessing.fit(read_table(path))
    assert want.columns is None and want.classes == ["0", "1", "2"]
    for part_bytes in (100, 3000):
        assert_same_preprocessing(Preprocessing.fit_parts(_parts(path, part_bytes)), want)
    generator = Preprocessing.fit_parts(lambda: iter(_parts(path, 100)))  # read on demand
    assert_same_preprocessing(generator, want)


def test_a_column_of_numbers_in_one_part_and_text_in_another_is_refused_as_fit_refuses(tmp_path):
    path = str(tmp_path / "mixed.csv")
    rows = [f"{i},{i % 2}" for i in range(40)] + [f"word{i},{i % 2}" for i in range(40)]
    Path(path).write_text("v,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError):
        Preprocessing.fit(read_table(path))
    with pytest.raises(DataError, match="column 'v'"):
        Preprocessing.fit_parts(_parts(path, 100))  # a part of both: refused by from_frame
    whole = read_table(path)  # parts of numbers only and of text only
    with pytest.raises(DataError, match="column 'v' holds numbers in some rows and text"):
        Preprocessing.fit_parts([whole.iloc[:40], whole.iloc[40:]])


def test_a_median_from_a_function_reads_the_parts_again_and_from_an_iterator_once(tmp_path):
    path = _table(tmp_path, 3, "classification")
    want = Preprocessing.fit(read_table(path), impute="median")
    reads = []

    def parts():
        reads.append(1)
        return iter(_parts(path, 500))

    assert_same_preprocessing(Preprocessing.fit_parts(parts, impute="median"), want)
    assert len(reads) >= 2, "the selection's rounds read the parts again"
    once = Preprocessing.fit_parts(iter(_parts(path, 500)), impute="median")
    assert_same_preprocessing(once, want)


WORKER = """
import json, sys
from mpi4py import MPI
from betaprop.files.agreement import Agreement
from betaprop.files.parts import owned_parts, plan_parts, read_part
from betaprop.files.preprocessing import Preprocessing

path, out, impute, indicator, part_bytes = sys.argv[1:6]
comm = MPI.COMM_WORLD
agreement = Agreement(comm)
plan = plan_parts(path, part_bytes=int(part_bytes), agreement=agreement)  # planned together
mine = owned_parts(plan, comm.rank, comm.size)
frames = [read_part(path, part)[0] for part in mine]
prep = Preprocessing.fit_parts(frames, agreement=agreement, impute=impute,
                               indicator=indicator == "1")
with open(f"{out}.{comm.rank}", "w") as handle:
    json.dump({"prep": prep.to_dict(), "parts": len(mine)}, handle)
"""


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("impute", ["median", "most_frequent", "mean"])
def test_k_ranks_each_with_their_parts_give_fit_s_preprocessing(tmp_path, k, impute):
    task = "regression" if impute == "mean" else "classification"
    path = _table(tmp_path, 40 + k, task)
    want = Preprocessing.fit(read_table(path), impute=impute, indicator=True)
    out = str(tmp_path / "prep")
    part_bytes = 400 if k == 2 else 10**9  # k = 3, one part: ranks without rows
    done = ranks(k, "-c", WORKER, path, out, impute, "1", str(part_bytes))
    assert done.returncode == 0, done.stderr
    results = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(k)]
    assert sum(r["parts"] for r in results) == len(plan_parts(path, part_bytes=part_bytes))
    if k == 3:
        assert [r["parts"] for r in results] == [1, 0, 0]
    for result in results:
        assert result["prep"] == results[0]["prep"], "every rank agrees to the bit"
        assert_same_preprocessing(Preprocessing.from_dict(result["prep"]), want)


@pytest.mark.parametrize("impute", ["median", "constant"])
def test_k_ranks_with_parquet_row_groups_give_fit_s_preprocessing(tmp_path, impute):
    pytest.importorskip("pyarrow")
    csv_path = _table(tmp_path, 77, "classification")
    path = str(tmp_path / "table.parquet")
    pd.read_csv(csv_path).to_parquet(path, row_group_size=17)
    want = Preprocessing.fit(read_table(path), impute=impute, indicator=True)
    out = str(tmp_path / "prep")
    done = ranks(3, "-c", WORKER, path, out, impute, "1", "1")  # a part per row group
    assert done.returncode == 0, done.stderr
    results = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(3)]
    assert all(r["parts"] > 0 for r in results)
    for result in results:
        assert result["prep"] == results[0]["prep"], "every rank agrees to the bit"
        assert_same_preprocessing(Preprocessing.from_dict(result["prep"]), want)


def test_reading_options_gaps_in_the_target_and_an_empty_column_as_fit_reads_them(tmp_path):
    """--drop, --na-values, rows without a target (a whole part of them), a column with no
    value: parts agree with ``fit`` on the Dataset that ``from_frame`` reads from all rows."""
    from betaprop.files.frames import from_frame

    rng = np.random.default_rng(11)
    n = 120
    x = np.round(rng.normal(size=n), 3).astype(object)
    x[rng.random(n) < 0.2] = -999
    label = np.array(["a", "b"], dtype=object)[rng.integers(0, 2, n)]
    label[:25] = ""  # the first part has no target at all
    frame = pd.DataFrame({"id": np.arange(n), "x": x, "nothing": [""] * n, "y": label})
    path = str(tmp_path / "gaps.csv")
    frame.to_csv(path, index=False)
    reading = {"na_values": ["-999"], "drop": ["id"]}
    whole = from_frame(read_table(path), allow_missing=True, **reading)
    assert "nothing" not in whole.feature_names and "x" in whole.feature_names
    assert (_parts(path, 100)[0]["y"] == "").all(), "a part without any target"
    for impute in ("median", "most_frequent"):
        want = Preprocessing.fit(whole, impute=impute, indicator=True)
        got = Preprocessing.fit_parts(_parts(path, 100), impute=impute, indicator=True,
                                      reading=reading)  # fmt: skip
        assert_same_preprocessing(got, want)


@pytest.mark.parametrize("impute", IMPUTE)
def test_parquet_row_groups_with_gaps_give_fit_s_preprocessing(tmp_path, impute):
    """Parquet x gaps x parts: a row group's integers with nulls are floats, one without
    stays integers; a text column with None in some groups and none in others."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(IMPUTE.index(impute))
    n = 300
    count = pd.array(rng.integers(0, 9, n), dtype="Int64")
    count[rng.random(n) < 0.1] = pd.NA
    colour = np.array(["red", "green", "blue"], dtype=object)[rng.integers(0, 3, n)]
    colour[rng.random(n) < 0.1] = None
    x = rng.normal(size=n)
    x[:40] = np.nan  # the first row groups: a column without values
    table = pa.table({"count": count, "colour": colour, "x": x,
                      "y": rng.normal(size=n).round(3)})  # fmt: skip
    path = str(tmp_path / "gaps.parquet")
    pq.write_table(table, path, row_group_size=20)
    want = Preprocessing.fit(read_table(path), impute=impute, indicator=True)
    assert want.task == "regression" and "colour" in want.categories
    for part_bytes in (1, 2000, 10**9):
        got = Preprocessing.fit_parts(_parts(path, part_bytes), impute=impute, indicator=True)
        assert_same_preprocessing(got, want)


AGREEMENT_WORKER = """
import json, sys
import numpy as np
from mpi4py import MPI
from betaprop.files.agreement import Agreement

agreement = Agreement(MPI.COMM_WORLD)
r = agreement.rank
mine = np.array([r + 1.5, -r, 10.0 * r], dtype=np.float64)
counts = np.array([r, 2**40 + r], dtype=np.int64)
result = {"sum": agreement.sum(mine).tolist(), "min": agreement.min(mine).tolist(),
          "max": agreement.max(mine).tolist(), "int": agreement.sum(counts).tolist(),
          "gather": agreement.gather({"rank": r, "text": "x" * r}), "size": agreement.size}
with open(sys.argv[1] + f".{r}", "w") as handle:
    json.dump(result, handle)
"""


def test_the_agreement_reduces_over_real_ranks(tmp_path):
    k = 3
    out = str(tmp_path / "agreed")
    done = ranks(k, "-c", AGREEMENT_WORKER, out)
    assert done.returncode == 0, done.stderr
    each = np.array([[r + 1.5, -r, 10.0 * r] for r in range(k)])
    for r in range(k):
        got = json.loads(Path(f"{out}.{r}").read_text())
        assert got["size"] == k
        assert got["sum"] == each.sum(axis=0).tolist()
        assert got["min"] == each.min(axis=0).tolist()
        assert got["max"] == each.max(axis=0).tolist()
        assert got["int"] == [sum(range(k)), k * 2**40 + sum(range(k))]
        assert got["gather"] == [{"rank": q, "text": "x" * q} for q in range(k)]
    alone = Agreement(None)
    assert alone.gather(7) == [7] and alone.sum(np.ones(2)).tolist() == [1.0, 1.0]


def test_declared_categories_read_as_written_in_parts_as_in_one_read(tmp_path):
    """--categorical code: "07" and "7" are two categories, "4.0" is "4" (read_part with
    text=, as read_table with text=); unknown="error" is kept."""
    rng = np.random.default_rng(5)
    codes = np.array(["07", "7", "4.0", "4", "12"], dtype=object)[rng.integers(0, 5, 150)]
    frame = pd.DataFrame({"code": codes, "x": rng.normal(size=150).round(3),
                          "y": rng.integers(0, 2, 150)})  # fmt: skip
    path = str(tmp_path / "codes.csv")
    frame.to_csv(path, index=False)
    options = dict(categorical=["code"], unknown="error", impute="most_frequent")
    want = Preprocessing.fit(read_table(path, text=["code"]), **options)
    assert want.categories["code"] == ["07", "12", "4", "7"]
    for part_bytes in (50, 400):
        frames = [
            read_part(path, p, text=["code"])[0] for p in plan_parts(path, part_bytes=part_bytes)
        ]
        assert_same_preprocessing(Preprocessing.fit_parts(frames, **options), want)
