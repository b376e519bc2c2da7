"""The table encoder's shortcuts against scikit-learn itself (issue 24, speed and memory).

``files.encoding`` no longer runs ``SimpleImputer`` over every training cell where a cheaper
computation gives the same answer: medians by NumPy's partition (scikit-learn sorts a masked
array), a text column's most frequent category from the counts of its distinct cells,
``OneHotEncoder`` fitted on those distinct cells. ``files.kinds`` tests each distinct cell of
a text column once (``text_levels``). Each is checked here against scikit-learn's own
estimators on the same rows, ties, gaps, empty columns and blanks included; the whole
pipeline (train then predict equal to scikit-learn's Pipeline) is tests/test_tables_pipeline.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from betaprop.files.datasets import DataError, from_frame, read_csv
from betaprop.files.preprocessing import Preprocessing


def _numbers(n: int, seed: int) -> pd.DataFrame:
    """Numbers with gaps: an even and an odd count of present values, repeated values (a
    median between two equal ones), a column with no gap and one with a single value."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "even": rng.normal(size=n).round(2),
        "odd": rng.integers(0, 5, n).astype(float),
        "full": rng.normal(size=n),
        "lonely": np.full(n, np.nan),
    })  # fmt: skip
    frame.loc[rng.random(n) < 0.3, "even"] = np.nan
    frame.loc[rng.random(n) < 0.2, "odd"] = np.nan
    frame.loc[3, "lonely"] = 7.5
    frame["city"] = rng.choice(["Paris", "Lyon", "Nice"], n)
    frame["label"] = rng.choice(["a", "b"], n)
    return frame


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("strategy", ["median", "mean"])
def test_fill_values_and_indicators_equal_simple_imputer(seed: int, strategy: str) -> None:
    frame = _numbers(41 + seed, seed)
    rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[: len(frame) - 9])
    prep = Preprocessing.fit(frame, rows=rows, target="label", impute=strategy, indicator=True)
    numeric = ["even", "odd", "full", "lonely"]
    train = frame.iloc[rows][numeric].to_numpy()
    imputer = SimpleImputer(strategy=strategy, keep_empty_features=True).fit(train)
    assert [prep.fill[c] for c in numeric] == imputer.statistics_.tolist()  # exactly
    expected = MissingIndicator(features="missing-only").fit(train).features_
    assert prep.indicators == [numeric[i] for i in expected]


def test_a_column_without_any_value_in_the_training_rows_is_filled_as_simple_imputer_does() -> None:
    """keep_empty_features=True: an empty column is kept and filled with 0."""
    frame = _numbers(30, 1)
    frame.loc[:, "lonely"] = np.nan
    frame.loc[29, "lonely"] = 4.0  # only in a row left out of training
    prep = Preprocessing.fit(frame, rows=np.arange(29), target="label", impute="median")
    assert prep.fill["lonely"] == 0.0


def _text(n: int, seed: int) -> pd.DataFrame:
    """Categories with tied counts, blanks around names, gaps, a boolean in two spellings."""
    rng = np.random.default_rng(seed)
    names = np.array(["b", "a", " a", "c ", "NA", ""], dtype=object)
    cells = names[rng.integers(0, len(names), n)]
    cells[:4] = ["b", "b", "a", "a"]  # a tie at the top for most seeds
    flags = np.array(["true", "True", "false", "FALSE"], dtype=object)[rng.integers(0, 4, n)]
    return pd.DataFrame({"x": rng.normal(size=n), "kind": cells, "flag": flags,
                         "label": rng.choice(["p", "q"], n)})  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_categories_and_their_fill_equal_one_hot_encoder_and_simple_imputer(seed: int) -> None:
    frame = _text(14 + 3 * seed, seed)
    prep = Preprocessing.fit(frame, target="label", impute="median")
    kind = frame["kind"].str.strip()
    cells = kind.where(~kind.str.lower().isin(["", "na"]), np.nan).to_numpy(object)[:, None]
    imputer = SimpleImputer(strategy="most_frequent").fit(cells)
    assert prep.fill["kind"] == imputer.statistics_[0]  # the smallest of those that tie
    encoder = OneHotEncoder().fit(imputer.transform(cells).astype(str))
    assert prep.categories["kind"] == encoder.categories_[0].tolist()
    assert prep.categories["flag"] == ["False", "True"]  # one category whatever the spelling


def test_constant_fill_is_a_category_only_where_a_training_cell_was_missing() -> None:
    frame = _text(40, 0)
    full = frame[~frame["kind"].str.strip().str.lower().isin(["", "na"])]
    assert (
        "missing" in Preprocessing.fit(frame, target="label", impute="constant").categories["kind"]
    )
    prep = Preprocessing.fit(full, target="label", impute="constant")
    assert "missing" not in prep.categories["kind"]
    X = prep.transform(frame.drop(columns="label"))  # a gap now: "missing", unseen in training
    assert prep.unseen == {"kind": ["missing"]}
    block = [j for j, name in enumerate(prep.feature_names) if name.startswith("kind=")]
    gaps = frame["kind"].str.strip().str.lower().isin(["", "na"]).to_numpy()
    assert (X[gaps][:, block] == 0).all() and (X[~gaps][:, block].sum(axis=1) == 1).all()


def test_a_category_without_any_value_in_the_training_rows_is_one_line() -> None:
    frame = _text(20, 0)
    frame["kind"] = [None] * 19 + ["b"]
    with pytest.raises(DataError, match="'kind' has no value in the training rows"):
        Preprocessing.fit(frame, rows=np.arange(19), target="label", impute="median")


def test_each_distinct_cell_is_tested_as_every_cell_was(tmp_path) -> None:
    """Kinds, gaps and numbers decided per distinct cell give what pandas gives per cell."""
    rng = np.random.default_rng(3)
    n = 500
    numbers = rng.normal(size=n).round(3).astype(str).astype(object)
    gaps = rng.random(n) < 0.1
    numbers[gaps] = rng.choice(["", " NA", "null ", "?"], int(gaps.sum()))
    frame = pd.DataFrame({
        "n": numbers,
        "t": rng.choice([" x", "x", "y ", "N/A", "New_York"], n),
        "label": rng.choice(["p", "q"], n),
    })  # fmt: skip
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    data = read_csv(str(path), allow_missing=True)
    assert data.categorical == ["t"]
    expected = pd.to_numeric(frame["n"].str.strip().replace(["", "NA", "null", "?"], np.nan))
    np.testing.assert_array_equal(data.X[:, 0], expected.to_numpy(np.float64))
    t = frame["t"].str.strip()
    assert data.frame["t"].tolist() == [None if v == "N/A" else v for v in t]
    again = from_frame(pd.read_csv(path, dtype=str, keep_default_na=False), allow_missing=True)
    np.testing.assert_array_equal(again.X, data.X)
