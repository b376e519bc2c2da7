"""Real tables (issue 18): text categories, booleans, dates as text, gaps, Parquet, gzip, TSV.

The encoding equals scikit-learn's ColumnTransformer(SimpleImputer + StandardScaler,
SimpleImputer + OneHotEncoder) fitted on the same rows, and ``betaprop predict`` on raw rows
(columns reordered, a category seen only at predict time) equals the saved network applied to
that transformer's output.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import betaprop as bp
from betaprop.files.datasets import DataError, class_labels, read_csv
from betaprop.files.model import read_model
from betaprop.files.preprocessing import Preprocessing

_SCRIPT = Path(sys.executable).with_name("betaprop")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "betaprop.cli"]
MISSING_TOKENS = ["", "NA", "NaN", "null"]


def _table(n: int = 240, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = ["age,city,member,joined,income,label"]
    for i in range(n):
        age, income = rng.normal(40, 10), rng.normal(3000, 500)
        city = ["Paris", "Lyon", "Nice"][rng.integers(0, 3)]
        cells = [f"{age:.3f}", city, ["true", "false"][rng.integers(0, 2)],
                 f"2024-0{rng.integers(1, 4)}-01", f"{income:.1f}",
                 "yes" if (age > 40) ^ (city == "Paris") else "no"]  # fmt: skip
        if i % 17 == 3:
            cells[0] = MISSING_TOKENS[i % 4]
        if i % 23 == 5:
            cells[1] = ""
        if i % 29 == 7:
            cells[4] = "null"
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


NEW = "joined,income,city,member,age\n2024-02-01,3100,Rome,true,33\n2024-01-01,,Paris,false,\n"


def _sklearn(frame: pd.DataFrame, rows: np.ndarray, indicator: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = ["age", "income"], ["city", "member", "joined"]
    transformer = ColumnTransformer(
        [
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", add_indicator=indicator)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            ),  # fmt: skip
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ]  # fmt: skip
    )
    return transformer.fit(frame.iloc[rows])


def _raw(text: str) -> pd.DataFrame:
    """The table as scikit-learn users read it: missing tokens as NaN, text as text."""
    import io

    frame = pd.read_csv(io.StringIO(text), na_values=MISSING_TOKENS, keep_default_na=False,
                        dtype={"member": str})  # fmt: skip
    return frame


def test_reading_text_categories_booleans_dates_and_gaps(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text(_table())
    data = read_csv(str(path), allow_missing=True)
    assert data.categorical == ["city", "member", "joined"]
    assert data.feature_names == ["age", "city", "member", "joined", "income"]
    assert np.isnan(data.X).any()
    with pytest.raises(DataError, match=r"line 5, column 'age': missing value 'null'.*--impute"):
        read_csv(str(path))


@pytest.mark.parametrize("indicator", [False, True])
def test_encoding_equals_scikit_learns_column_transformer(tmp_path, indicator):
    text = _table()
    path = tmp_path / "table.csv"
    path.write_text(text)
    data = read_csv(str(path), allow_missing=True)
    rows = np.arange(0, 240, 2)
    prep = Preprocessing.fit(data, "classification", rows, impute="median", indicator=indicator)
    frame = _raw(text).drop(columns=["label"])
    expected = _sklearn(frame, rows, indicator).transform(frame)
    got = prep.transform(prep.encode_table(data))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # from Python: bp.Preprocessing.fit(frame) / .transform(frame), columns in any order
    python = bp.Preprocessing.fit(
        _raw(text).iloc[rows], target="label", impute="median", indicator=indicator
    )
    reordered = frame[["income", "joined", "age", "member", "city"]]
    np.testing.assert_allclose(python.transform(reordered), expected, rtol=0, atol=1e-9)
    assert Preprocessing.from_dict(prep.to_dict()).to_dict() == prep.to_dict()


def test_train_then_predict_equals_the_scikit_learn_pipeline(tmp_path):
    text = _table()
    (tmp_path / "table.csv").write_text(text)
    (tmp_path / "new.csv").write_text(NEW)
    run = subprocess.run(
        [
            *COMMAND,
            "train",
            "--data",
            "table.csv",
            "--impute",
            "median",
            "--epochs",
            "3",
            "--out",
            "run",
            "--quiet",
        ],  # fmt: skip
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    model = read_model(tmp_path / "run" / "model.safetensors")
    predicted = subprocess.run(
        [*COMMAND, "predict", "run/model.safetensors", "new.csv", "--proba"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert "'city' has categories training did not see (Rome)" in predicted.stderr
    P = np.loadtxt(predicted.stdout.splitlines()[1:], delimiter=",", usecols=(1, 2))
    # the same split as train's, the same transformer, the saved network
    from betaprop.cli.settings import split_rows

    data = read_csv(str(tmp_path / "table.csv"), allow_missing=True)
    splits = split_rows(len(data.X), class_labels(data.target), 0.1, 0.2, 0)
    rows = splits["train"]
    transformer = _sklearn(_raw(text).drop(columns=["label"]), rows, False)
    expected = model.network.predict(transformer.transform(_raw(NEW)).astype(model.network.dtype))
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-6)
    refused = subprocess.run(
        [*COMMAND, "predict", "run/model.safetensors", "new.csv", "--unknown", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2
    assert "column 'city' has categories ['Rome'] that training did not see" in refused.stderr
    info = subprocess.run([*COMMAND, "info", "run/model.safetensors"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "one-hot" in info.stdout and "imputed (median)" in info.stdout


def test_gzip_tsv_sep_and_parquet_read_the_same(tmp_path):
    text = "x,kind,y\n1.5,a,0\n2.5,b,1\n3.5,a,0\n"
    plain = read_csv(str(tmp_path / "t.csv") if (tmp_path / "t.csv").write_text(text) else "")
    (tmp_path / "t.tsv").write_text(text.replace(",", "\t"))
    (tmp_path / "t.txt").write_text(text.replace(",", ";"))
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(text.encode()))
    pd.read_csv(tmp_path / "t.csv", dtype={"y": str}).to_parquet(tmp_path / "t.parquet")
    for other in (
        read_csv(str(tmp_path / "t.tsv")),
        read_csv(str(tmp_path / "t.txt"), sep=";"),
        read_csv(str(tmp_path / "t.csv.gz")),
        read_csv(str(tmp_path / "t.parquet")),
    ):
        np.testing.assert_array_equal(other.X, plain.X)
        assert other.categorical == plain.categorical == ["kind"]
        assert class_labels(other.target) == class_labels(plain.target)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_csv(str(tmp_path / "bad.parquet"))


def test_categorical_option_and_drop(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("zip,x,noise,y\n75001,1,a,0\n69001,2,b,1\n75001,3,c,0\n")
    data = read_csv(str(path), categorical=["zip"], drop=["noise"])
    assert data.categorical == ["zip"] and data.feature_names == ["zip", "x"]
    with pytest.raises(DataError, match=r"--drop names columns \['nope'\]"):
        read_csv(str(path), drop=["nope"])
