"""Issue 18's proof: ``betaprop train`` then ``betaprop predict`` on a raw table equal a
scikit-learn ``Pipeline(ColumnTransformer(SimpleImputer + StandardScaler, SimpleImputer +
OneHotEncoder), betaprop.MLPClassifier)`` fitted on the same split, to 1e-6.

The table has text categories, booleans (spelled as pandas reads them, with gaps), dates as
text, blanks, "NA"/"NaN"/"null" in numeric and categorical columns; the rows to predict have
their columns in another order, a city and a date that training never saw, and gaps.

How the two trainings are made the same, with options only:
- the split: ``--val-fraction 0 --test-fraction 0.25 --seed S`` is scikit-learn's
  ``train_test_split(test_size=0.25, random_state=S, stratify=labels)`` (rows sorted);
  the pipeline is fitted on those rows, and predicts the held-out ones too;
- the steps: full batch (``--batch-size`` above the rows; ``batch_size`` = the rows), so
  every epoch is one step on all rows whatever the shuffling; ``--early-stopping 0`` and
  the estimator's ``tol=0, n_iter_no_change=inf``: every epoch runs; no L2 (``alpha=0``);
  float64 in both;
- the optimizer: ``--optimizer sgd --lr 0.1`` is scikit-learn's ``solver="sgd",
  learning_rate_init=0.1, momentum=0``; betaprop's Adam (torch's form) is handed to the
  estimator as its ``solver`` (scikit-learn's "adam" puts epsilon elsewhere);
- the first weights: the command's network is ``Network(sizes, ..., seed=S)``; the same
  network, rebuilt, gives the estimator its ``coefs_`` / ``intercepts_`` (``warm_start``).
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import betaprop as bp
from betaprop import cli
from betaprop.files.model import read_model
from betaprop.training.optimizers import Adam

MISSING_TOKENS = ["", "NA", "NaN", "null"]
NUMERIC, CATEGORICAL = ["age", "income"], ["city", "member", "joined"]
BOOLEANS = ["true", "false", "TRUE", "False"]  # pandas reads all four as booleans
# rows to predict: columns in another order; Rome and 2024-09-01 never seen; gaps everywhere
NEW = """joined,income,city,member,age
2024-02-01,3100,Rome,TRUE,33
2024-01-01,,Paris,false,
2024-09-01,2500,NA,True,51
null,NaN,Lille,,28.5
2024-03-01,2800,Nice,FALSE,null
"""
EPOCHS, HIDDEN, SEED = 40, 8, 3


def _table(n: int, seed: int, classes: int) -> str:
    """A table a survey could give: labels that depend on every kind of column."""
    rng = np.random.default_rng(seed)
    lines = ["age,city,member,joined,income,label"]
    for i in range(n):
        age, income = rng.normal(40, 10), rng.normal(3000, 500)
        city = ["Paris", "Lyon", "Nice", "Lille"][rng.integers(0, 4)]
        member = BOOLEANS[rng.integers(0, 4)]
        joined = f"2024-0{rng.integers(1, 4)}-01"
        score = (age - 40) / 10 + (city == "Paris") - (member.lower() == "true")
        score += (income - 3000) / 1000 + (joined == "2024-02-01") + rng.normal(0, 0.3)
        if classes == 3:
            label = ["low", "mid", "high"][int(np.digitize(score, [-0.5, 0.5]))]
        else:
            label = "yes" if score > 0 else "no"
        cells = [f"{age:.3f}", city, member, joined, f"{income:.1f}", label]
        if i % 17 == 3:
            cells[0] = MISSING_TOKENS[i % 4]
        if i % 23 == 5:
            cells[1] = MISSING_TOKENS[(i // 23) % 4]
        if i % 29 == 7:
            cells[4] = "null"
        if i % 31 == 9:
            cells[2] = MISSING_TOKENS[(i // 31) % 4]
        if i % 37 == 11:
            cells[3] = "NA"
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _read(text: str) -> pd.DataFrame:
    """The table as a scikit-learn user reads it: the missing tokens as NaN."""
    return pd.read_csv(io.StringIO(text), na_values=MISSING_TOKENS, keep_default_na=False)


def _pipeline(optimizer: str, indicator: bool, strategy: str = "median") -> Pipeline:
    numbers = Pipeline(
        [
            ("impute", SimpleImputer(strategy=strategy, add_indicator=indicator)),
            ("scale", StandardScaler()),
        ]
    )
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    solver = {"sgd": dict(solver="sgd", learning_rate_init=0.1, momentum=0.0),
              "adam": dict(solver=Adam(learning_rate=0.01))}[optimizer]  # fmt: skip
    mlp = bp.MLPClassifier(
        (HIDDEN,),
        activation="relu",
        alpha=0.0,
        max_iter=EPOCHS,
        tol=0.0,
        n_iter_no_change=np.inf,
        warm_start=True,
        dtype="float64",
        **solver,
    )
    transformer = ColumnTransformer([("num", numbers, NUMERIC), ("cat", categories, CATEGORICAL)])
    return Pipeline([("encode", transformer), ("mlp", mlp)])


def _fit(pipe: Pipeline, X: pd.DataFrame, y: pd.Series, loss: str) -> Pipeline:
    """Fit ``pipe`` from the first weights of ``betaprop train --seed SEED``."""
    width = pipe[:-1].fit_transform(X).shape[1]
    outputs = 1 if loss == "binary_cross_entropy" else y.nunique()
    start = bp.Network([width, HIDDEN, outputs], activation="relu", loss=loss, dtype="float64",
                       seed=SEED)  # fmt: skip
    mlp = pipe[-1].set_params(batch_size=len(X))  # one full batch per epoch
    mlp.coefs_ = [start.W[q].T.copy() for q in (1, 2)]
    mlp.intercepts_ = [start.b[q][:, 0].copy() for q in (1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached, as asked
        pipe.fit(X, y)
    pipe.start_ = start  # for the test's own checks
    return pipe


def _probabilities(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [row[0] for row in rows], np.array([[float(v) for v in row[1:]] for row in rows])


@pytest.mark.parametrize(
    ("optimizer", "classes", "indicator"),
    [("adam", 3, False), ("sgd", 2, True)],
    ids=["adam-3-classes", "sgd-binary-indicator"],
)
def test_train_then_predict_equals_a_pipeline_with_the_estimator(
    tmp_path, capsys, optimizer, classes, indicator
):
    text = _table(240, 0, classes)
    (tmp_path / "table.csv").write_text(text)
    loss = "binary_cross_entropy" if classes == 2 else "cross_entropy"
    argv = ["train", "--data", str(tmp_path / "table.csv"), "--impute", "median",
            "--hidden", str(HIDDEN), "--activation", "relu", "--loss", loss,
            "--optimizer", optimizer, "--lr", "0.1" if optimizer == "sgd" else "0.01",
            "--batch-size", "10000", "--epochs", str(EPOCHS), "--early-stopping", "0",
            "--val-fraction", "0", "--test-fraction", "0.25", "--seed", str(SEED),
            "--dtype", "float64", "--out", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    if indicator:
        argv.append("--indicator")
    assert cli.main(argv) == 0
    model = str(tmp_path / "run" / "model.safetensors")

    # scikit-learn's side: the same rows, read as pandas reads them
    frame = _read(text)
    y = frame.pop("label")
    train, test = train_test_split(np.arange(len(frame)), test_size=0.25, random_state=SEED,
                                   stratify=y)  # fmt: skip
    train, test = np.sort(train), np.sort(test)
    assert read_model(model).metadata["training"]["rows"] == {
        "train": len(train), "validation": 0, "test": len(test)
    }  # fmt: skip
    pipe = _fit(_pipeline(optimizer, indicator), frame.iloc[train], y.iloc[train], loss)
    net = read_model(model).network
    assert net.spec() == pipe.start_.spec()  # the command built this network from its seed
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    np.testing.assert_allclose(history["loss"], pipe[-1].loss_curve_, rtol=1e-9, atol=0)

    # the held-out rows (columns reordered) and the new rows, predicted by the command
    shuffled = ["income", "member", "joined", "age", "city"]
    lines = text.splitlines()
    with open(tmp_path / "test.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(shuffled)
        for row in csv.DictReader(lines[:1] + [lines[1 + i] for i in test]):
            writer.writerow([row[c] for c in shuffled])
    (tmp_path / "new.csv").write_text(NEW)
    for name, rows in (("test", frame.iloc[test]), ("new", _read(NEW))):
        out = tmp_path / f"{name}-predictions.csv"
        code = cli.main(["predict", model, str(tmp_path / f"{name}.csv"), "--proba",
                         "--out", str(out)])  # fmt: skip
        assert code == 0
        labels, P = _probabilities(out)
        np.testing.assert_allclose(P, pipe.predict_proba(rows), rtol=0, atol=1e-6)
        assert labels == list(pipe.predict(rows))
    err = capsys.readouterr().err
    assert "column 'city' has categories training did not see (Rome)" in err
    assert "column 'joined' has categories training did not see (2024-09-01)" in err
    assert "'member'" not in err  # TRUE, false, True: categories training saw

    # the comparison can fail: another imputation, or no training, is far from the command's
    rows = _read(NEW)
    mean = _fit(_pipeline(optimizer, indicator, "mean"), frame.iloc[train], y.iloc[train], loss)
    assert np.abs(mean.predict_proba(rows) - P).max() > 1e-4
    untrained = pipe.start_.predict(pipe[:-1].transform(rows))
    assert np.abs(untrained - P[:, -untrained.shape[1] :]).max() > 1e-2


def test_a_boolean_is_one_category_whatever_its_spelling(tmp_path):
    """pandas reads a column of true/FALSE/True as booleans and a column with a gap as text:
    both give the categories False and True (a gap in training once gave 'false'/'true',
    and then no row without a gap matched them)."""
    from betaprop.files.datasets import read_csv
    from betaprop.files.preprocessing import Preprocessing

    (tmp_path / "gap.csv").write_text("member,x,y\ntrue,1,a\nFALSE,2,b\n,3,a\nTrue,4,b\n")
    (tmp_path / "full.csv").write_text("member,x\nTRUE,1\nfalse,2\n")
    data = read_csv(str(tmp_path / "gap.csv"), allow_missing=True)
    prep = Preprocessing.fit(data, "classification", impute="most_frequent")
    assert prep.categories["member"] == ["False", "True"] and prep.fill["member"] == "True"
    full = prep.read_frame(pd.read_csv(tmp_path / "full.csv"))  # read as booleans
    np.testing.assert_array_equal(prep.encode_table(full)[:, -2:], [[0, 1], [1, 0]])
    # a model file written before: categories spelled as the training file did
    old = Preprocessing.from_dict({**prep.to_dict(), "categories": {"member": ["false", "true"]},
                                   "fill": {**prep.fill, "member": "true"}})  # fmt: skip
    np.testing.assert_array_equal(old.encode_table(full)[:, -2:], [[0, 1], [1, 0]])
    assert old.unseen == {}
