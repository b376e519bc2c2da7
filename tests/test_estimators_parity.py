"""betaprop's estimators against scikit-learn's own MLP code, the oracle.

1. From identical initial weights, without shuffling, in float64, an epoch of sgd (plain,
   momentum, Nesterov) and of adam gives scikit-learn's coefficients within 1e-10: this
   proves the parameter mapping (alpha scaling, momentum form, Adam's bias correction).
2. A fast subset of benchmarks/parity.py: on bundled datasets, betaprop's test score
   averaged over seeds is at least scikit-learn's minus 0.01.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import betaprop as bp


def _data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(53, 6))  # 53 = 3 batches of 16 and one of 5
    if kind == "multiclass":
        return X, rng.integers(0, 4, 53)
    if kind == "binary":
        return X, np.array(["no", "yes"])[rng.integers(0, 2, 53)]
    if kind == "multilabel":
        return X, (rng.random((53, 3)) > 0.5).astype(int)
    if kind == "poisson":
        return X, rng.poisson(2.0, size=53).astype(float)
    return X, X @ rng.normal(size=(6, 2)) + 0.1 * rng.normal(size=(53, 2))  # 2 outputs


def _one_epoch_pair(kind: str, epochs: int = 1, sample_weight=None, **params):
    """Fit scikit-learn's and betaprop's estimator from the same initial weights."""
    X, y = _data(kind)
    classifier = kind in ("multiclass", "binary", "multilabel")
    settings = dict(
        hidden_layer_sizes=(7, 5),
        batch_size=16,
        shuffle=False,
        warm_start=True,
        max_iter=epochs,
        alpha=0.01,
        random_state=0,
    )
    settings.update(params)
    if not classifier:
        settings["loss"] = "poisson" if kind == "poisson" else "squared_error"
    ours = (bp.MLPClassifier if classifier else bp.MLPRegressor)(**settings)
    theirs = (sk.MLPClassifier if classifier else sk.MLPRegressor)(**settings)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)  # sets up the network; its weights are replaced below
        theirs.fit(X, y)
        W0 = [rng.uniform(-0.5, 0.5, c.shape) for c in theirs.coefs_]
        b0 = [rng.uniform(-0.5, 0.5, b.shape) for b in theirs.intercepts_]
        theirs.coefs_, theirs.intercepts_ = [w.copy() for w in W0], [b.copy() for b in b0]
        ours.coefs_, ours.intercepts_ = W0, b0
        ours.fit(X, y, sample_weight=sample_weight)
        theirs.fit(X, y, sample_weight=sample_weight)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(ours.coefs_, W0, strict=True))
    assert moved > 1e-3  # training did move the weights: the comparison is not vacuous
    return ours, theirs


def _max_difference(ours, theirs) -> float:
    pairs = list(zip(ours.coefs_, theirs.coefs_, strict=True))
    pairs += list(zip(ours.intercepts_, theirs.intercepts_, strict=True))
    assert all(a.dtype == np.float64 for a, _ in pairs)
    return max(float(np.abs(a - b).max()) for a, b in pairs)


SOLVERS = [
    dict(solver="sgd", momentum=0.0, learning_rate_init=0.1),
    dict(solver="sgd", momentum=0.9, nesterovs_momentum=False, learning_rate_init=0.05),
    dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, learning_rate_init=0.05),
    dict(solver="adam", learning_rate_init=0.01),
]
KINDS = ["multiclass", "binary", "multilabel", "regression", "poisson"]
ACTIVATIONS = {"multiclass": "relu", "binary": "tanh", "multilabel": "logistic"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: "-".join(map(str, s.values())))
def test_one_epoch_equals_scikit_learn(kind: str, solver: dict) -> None:
    ours, theirs = _one_epoch_pair(kind, activation=ACTIVATIONS.get(kind, "relu"), **solver)
    assert _max_difference(ours, theirs) <= 1e-10
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


@pytest.mark.parametrize("solver", SOLVERS[2:], ids=["sgd", "adam"])
def test_one_epoch_with_sample_weights_equals_scikit_learn(solver: dict) -> None:
    weights = np.random.default_rng(3).uniform(0.2, 3.0, 53)
    ours, theirs = _one_epoch_pair("multiclass", sample_weight=weights, **solver)
    assert _max_difference(ours, theirs) <= 1e-10
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)


def test_invscaling_epochs_equal_scikit_learn() -> None:
    """A changing learning rate with momentum: the velocity rescaling keeps sklearn's steps."""
    ours, theirs = _one_epoch_pair(
        "regression",
        epochs=4,
        solver="sgd",
        learning_rate="invscaling",
        power_t=0.25,
        learning_rate_init=0.05,
        momentum=0.9,
    )
    assert _max_difference(ours, theirs) <= 1e-10
    np.testing.assert_allclose(ours.loss_curve_[-4:], theirs.loss_curve_[-4:], rtol=1e-9)


def test_lbfgs_from_the_same_weights_reaches_the_same_loss() -> None:
    ours, theirs = _one_epoch_pair("multiclass", epochs=30, solver="lbfgs")
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    assert _max_difference(ours, theirs) <= 1e-6


# ------------------------------------------------------------------ scores (fast subset)
def _split(name: str):
    X, y = load_digits(return_X_y=True) if name == "digits" else (None, None)
    if name == "iris":
        X, y = load_iris(return_X_y=True)
    if name == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.mark.parametrize(
    ("name", "solver"),
    [("iris", "lbfgs"), ("digits", "adam"), ("digits", "sgd"), ("diabetes", "lbfgs")],
)
def test_score_at_least_scikit_learn_minus_001(name: str, solver: str) -> None:
    X_train, X_test, y_train, y_test = _split(name)
    regression = name == "diabetes"
    settings = dict(solver=solver, max_iter=100 if regression else 60, hidden_layer_sizes=(32,))
    if regression:
        settings["alpha"] = 10.0  # 331 examples: without it lbfgs overfits, scores are noise
    if solver == "sgd":
        settings["learning_rate_init"] = 0.05
    ours_scores, their_scores = [], []
    for seed in range(3):
        ours = (bp.MLPRegressor if regression else bp.MLPClassifier)(random_state=seed, **settings)
        theirs = (sk.MLPRegressor if regression else sk.MLPClassifier)(
            random_state=seed, **settings
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours_scores.append(ours.fit(X_train, y_train).score(X_test, y_test))
            their_scores.append(theirs.fit(X_train, y_train).score(X_test, y_test))
    assert np.mean(ours_scores) >= np.mean(their_scores) - 0.01, (ours_scores, their_scores)
