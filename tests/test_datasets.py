"""Bundled datasets, CSV reading and its error messages, standardisation and label encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn.datasets

from betaprop.files.datasets import (
    BUNDLED,
    SYNTHETIC,
    DataError,
    Dataset,
    class_labels,
    infer_task,
    load_bundled,
    load_data,
    read_csv,
)
from betaprop.files.preprocessing import Preprocessing


def _write(tmp_path, text: str, name: str = "data.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


# ------------------------------------------------------------------------------ bundled
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_datasets_are_scikit_learns(name):
    data = load_bundled(name)
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    np.testing.assert_array_equal(data.X, bunch.data)
    assert len(data.feature_names) == data.X.shape[1]
    if name == "diabetes":
        assert data.task == "regression"
        np.testing.assert_array_equal(data.target, bunch.target)
    else:
        assert data.task == "classification"
        names = getattr(bunch, "target_names", None)
        expected = (
            [str(t) for t in bunch.target]
            if name == "digits"
            else list(np.asarray(names)[bunch.target])
        )
        assert list(data.target) == expected


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_datasets_are_seeded_and_two_class(name):
    a, b, c = load_bundled(name, seed=0), load_bundled(name, seed=0), load_bundled(name, seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert a.X.shape == (400, 2)
    assert sorted(set(a.target)) == ["0", "1"]


def test_xor_labels_are_the_exclusive_or_of_the_signs():
    data = load_bundled("xor")
    expected = (data.X[:, 0] > 0) != (data.X[:, 1] > 0)
    assert [label == "1" for label in data.target] == list(expected)


def test_unknown_dataset_name_lists_the_names():
    with pytest.raises(DataError, match=r"dataset must be one of \['digits'.*got 'mnist'"):
        load_bundled("mnist")
    with pytest.raises(DataError, match="data must be a CSV file or one of"):
        load_data("mnist")


# ------------------------------------------------------------------------------ CSV
def test_csv_values_equal_numpys_reading(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{i % 3}" for i, r in enumerate(X)]
    path = _write(tmp_path, "\n".join(lines) + "\n\n")
    data = read_csv(path)
    np.testing.assert_array_equal(data.X, np.loadtxt(path, delimiter=",", skiprows=1)[:, :3])
    assert data.feature_names == ["a", "b", "c"]
    assert data.target_name == "label"
    assert data.target.dtype == np.int64  # a column of numbers stays numbers
    assert list(data.target) == [i % 3 for i in range(20)]
    assert class_labels(data.target) == [str(i % 3) for i in range(20)]


def test_csv_target_in_the_middle_and_quoted_cells(tmp_path):
    path = _write(tmp_path, 'x,"kind, of",y\n1,"a, b",2\n3,c,4.5\n')
    data = read_csv(path, target="kind, of")
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4.5]])
    assert list(data.target) == ["a, b", "c"]


def test_a_utf8_bom_is_read_transparently(tmp_path):
    plain = read_csv(_write(tmp_path, "x,y\n1,2\n3,4\n", "plain.csv"))
    bom = read_csv(_write(tmp_path, "\ufeffx,y\n1,2\n3,4\n", "bom.csv"))
    assert bom.feature_names == plain.feature_names == ["x"]
    np.testing.assert_array_equal(bom.X, plain.X)


def test_windows_line_endings(tmp_path):
    data = read_csv(_write(tmp_path, "x,y\r\n1,2\r\n3,4\r\n"))
    assert list(data.target) == [2, 4]
    data = read_csv(_write(tmp_path, "x,y\r\n1,a\r\n3,b \r\n"))
    assert list(data.target) == ["a", "b"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"is empty"),
        ("\n\n", r"is empty"),
        ("a,b,c\n", r"has a header row but no data rows"),
        ("a,b,c\n1,2,3\n4,5\n", r"line 3 has 2 fields, but the header has 3"),
        ("a,b,c\n1,2,3\n4,5,6,7\n", r"line 3 has 4 fields, but the header has 3"),
        ("a,b,c\n1,2,3\n4,five,6\n", r"line 3, column 'b': 'five' is not a number"),
        ("a,b,c\n1,2,3\n4,1_000,6\n", r"line 3, column 'b': '1_000' is not a number"),
        ("a,b,c\n1,,3\n2,5,6\n", r"line 2, column 'b': missing value ''"),
        ("a,b,c\n1,NA,3\n2,5,6\n", r"line 2, column 'b': missing value 'NA'"),
        ("a,b,c\n1,nan,3\n2,5,6\n", r"line 2, column 'b': missing value 'nan'"),
        ("a,b,c\n1,2,\n", r"target 'c' has no value in any row"),  # else: rows left out
        ("a,b,c\n1,inf,3\n", r"line 2, column 'b': infinite value 'inf'"),
        ("a,b,c\n1,-Infinity,3\n", r"line 2, column 'b': infinite value '-Infinity'"),
        ("a,b,c\n1,2,inf\n", r"line 2, column 'c': infinite value 'inf'"),
        ("a;b;c\n1,5;2;3\n", r"looks ';'-separated .*comma-separated"),
        ("a\tb\tc\n1\t2\t3\n", r"looks tab-separated"),
        ("a,a,c\n1,2,3\n", r"the column name 'a' appears twice"),
        ("a,,c\n1,2,3\n", r"column 2 of the header has no name"),
        ("label\nx\n", r"no feature column besides the target 'label'"),
    ],
)
def test_csv_problems_are_one_clear_line(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as caught:
        read_csv(path)
    assert "\n" not in str(caught.value)
    assert path in str(caught.value) or "label" in str(caught.value)


def test_missing_target_column_lists_the_columns(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"target column 'c' is not in .*\['a', 'b'\]"):
        read_csv(path, target="c")


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_csv(str(tmp_path / "absent.csv"))
    with pytest.raises(DataError, match="is a folder"):
        read_csv(str(tmp_path))
    latin = _write(tmp_path, "x,y\n1,caf\xe9\n", "latin.csv", encoding="latin-1")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_csv(latin)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"x,y\n\x00\x00\n")
    with pytest.raises(DataError, match="NUL bytes"):
        read_csv(str(binary))


def test_reading_only_the_models_features(tmp_path):
    path = _write(tmp_path, "z,y,x,label\n1,2,3,cat\n4,5,6,dog\n")
    data = read_csv(path, target="label", require_target=False, features=["x", "y"])
    np.testing.assert_array_equal(data.X, [[3, 2], [6, 5]])
    with pytest.raises(DataError, match=r"lacks the feature columns \['w'\]"):
        read_csv(path, target="label", require_target=False, features=["w"])
    unlabelled = read_csv(path, target="nothing", require_target=False, features=["x"])
    assert len(unlabelled.target) == 0


# ------------------------------------------------------------------------------ tasks
def _dataset(target: list) -> Dataset:
    return Dataset(np.zeros((len(target), 1)), np.array(target, dtype=object), ["x"], "t", "-")


@pytest.mark.parametrize(
    "target, task",
    [
        (["cat", "dog", "cat"], "classification"),
        (["1", "0", "1"], "classification"),
        (["1.0", "2.0", "1.0"], "classification"),
        ([str(i) for i in range(50)], "regression"),
        (["0.5", "1.25", "2"], "regression"),
    ],
)
def test_task_is_inferred_from_the_target(target, task):
    assert infer_task(_dataset(target)) == task


# ------------------------------------------------------------------------------ preprocessing
def test_standardisation_equals_scikit_learns_scaler():
    from sklearn.preprocessing import StandardScaler

    data = load_bundled("digits")  # has constant (all-zero) pixel columns
    rows = np.arange(0, len(data.X), 2)
    prep = Preprocessing.fit(data, "classification", rows)
    scaler = StandardScaler().fit(data.X[rows])
    np.testing.assert_allclose(prep.transform(data.X), scaler.transform(data.X), rtol=1e-12)


def test_labels_are_one_hot_in_sorted_order_and_decode_back():
    data = _dataset(["10", "9", "2", "9"])
    prep = Preprocessing.fit(data, "classification")
    assert prep.classes == ["2", "9", "10"]  # numeric order, not text order
    D = prep.encode(data.target, 3)
    np.testing.assert_array_equal(D, np.eye(3)[[2, 1, 0, 1]])
    assert prep.decode(D) == ["10", "9", "2", "9"]
    single = prep_two = Preprocessing.fit(_dataset(["no", "yes", "yes"]), "classification")
    np.testing.assert_array_equal(single.encode(np.array(["yes", "no"]), 1), [[1.0], [0.0]])
    assert prep_two.decode(np.array([[0.7], [0.2]])) == ["yes", "no"]


def test_unknown_classes_and_too_few_classes():
    prep = Preprocessing.fit(_dataset(["a", "b"]), "classification")
    with pytest.raises(DataError, match=r"classes \['c'\] that the model does not know"):
        prep.encode(np.array(["a", "c"], dtype=object), 2)
    with pytest.raises(DataError, match="at least 2 classes"):
        Preprocessing.fit(_dataset(["a", "a"]), "classification")
    with pytest.raises(DataError, match="must be numeric for regression"):
        Preprocessing.fit(_dataset(["a", "b"]), "regression")


def test_regression_target_is_scaled_and_restored():
    data = _dataset(["10", "20", "40"])
    prep = Preprocessing.fit(data, "regression")
    D = prep.encode(data.target, 1)
    np.testing.assert_allclose(D.mean(), 0.0, atol=1e-15)
    np.testing.assert_allclose(D.std(), 1.0)
    np.testing.assert_allclose(prep.decode(D), [10, 20, 40], rtol=1e-14)


def test_preprocessing_round_trips_through_json_exactly():
    data = load_bundled("wine")
    prep = Preprocessing.fit(data, "classification", np.arange(0, 178, 3))
    again = Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again == prep
    assert again.transform(data.X).tobytes() == prep.transform(data.X).tobytes()
    with pytest.raises(ValueError, match="preprocessing"):
        Preprocessing.from_dict({"mean": [1.0]})
