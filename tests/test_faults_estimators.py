"""Faults in the scikit-learn estimators: divergence, Ctrl-C, determinism, inputs unchanged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning

import betaprop as bp
from betaprop.estimators import MLPClassifier, MLPRegressor

from .test_faults_inputs import LAYOUTS

IRIS_X, IRIS_Y = load_iris(return_X_y=True)
IRIS_X = (IRIS_X - IRIS_X.mean(axis=0)) / IRIS_X.std(axis=0)


class SigintAt(bp.Callback):
    """Sends this process a real SIGINT after the given (epoch, batch)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)
        self.batches: list[np.ndarray] = []
        self.epochs: dict[int, np.ndarray] = {}

    def on_batch_end(self, net, epoch, batch, loss):
        self.batches.append(net.params.copy())
        if (epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def on_epoch_end(self, net, epoch, history):
        self.epochs[epoch] = net.params.copy()


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_divergence_is_caught_where_scikit_learn_is_silent(solver: str) -> None:
    """scikit-learn's MLPRegressor at a learning rate of 1e6 ends with a huge loss and no
    error (the issue's example, checked here on its own code); ours stops at the divergence
    with the last good weights and a ConvergenceWarning (scikit-learn's surface, issue 14),
    which as an error is betaprop's DivergenceError."""
    from sklearn.neural_network import MLPRegressor as SklearnMLPRegressor

    X, y = load_diabetes(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SklearnMLPRegressor(learning_rate_init=1e6, max_iter=20, random_state=0)
        theirs.fit(X, y)
    assert theirs.loss_ > 1e10
    ours = MLPRegressor(solver=solver, learning_rate_init=1e6, max_iter=20, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"epoch 1, batch \d+: .*smaller learning rate"):
        ours.fit(X, y)
    assert np.isfinite(ours.to_network().params).all() and ours.predict(X).shape == (442,)
    ours = MLPRegressor(solver=solver, learning_rate_init=1e6, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(
            bp.DivergenceError, match=r"epoch 1, batch \d+: .*smaller learning rate"
        ):
            ours.fit(X, y)
    assert np.isfinite(ours.to_network().params).all()


def test_ctrl_c_keeps_the_best_epoch_with_early_stopping() -> None:
    previous = signal.getsignal(signal.SIGINT)
    probe = SigintAt(6, 2)
    model = MLPClassifier(
        hidden_layer_sizes=(16,),
        learning_rate_init=0.05,
        batch_size=16,
        max_iter=500,
        early_stopping=True,
        n_iter_no_change=1000,
        random_state=0,
        callbacks=[probe],
    )
    with pytest.warns(bp.InterruptedWarning, match=r"^Training interrupted by user\.$"):
        model.fit(IRIS_X, IRIS_Y)
    assert signal.getsignal(signal.SIGINT) is previous
    assert model.n_iter_ == 5  # the interrupted sixth epoch is not counted
    best = int(np.argmax(model.validation_scores_)) + 1
    np.testing.assert_array_equal(model.to_network().params, probe.epochs[best])
    assert np.isfinite(model.predict_proba(IRIS_X)).all()


def test_ctrl_c_without_validation_keeps_the_weights_after_the_last_batch() -> None:
    probe = SigintAt(3, 4)
    model = MLPRegressor(
        hidden_layer_sizes=(8,), batch_size=16, max_iter=500, random_state=0, callbacks=[probe]
    )
    with pytest.warns(bp.InterruptedWarning):
        model.fit(IRIS_X[:, :3], IRIS_X[:, 3])
    batches_per_epoch = -(-150 // 16)
    assert len(probe.batches) == 2 * batches_per_epoch + 4  # the batch in progress finished
    np.testing.assert_array_equal(model.to_network().params, probe.batches[-1])


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_input_layout_fits_like_a_c_contiguous_copy(tmp_path: Path, layout: str) -> None:
    X, y = IRIS_X.copy(), IRIS_Y.astype(float)
    given_X, given_y = LAYOUTS[layout](X, tmp_path), LAYOUTS[layout](y[:, None], tmp_path)[:, 0]

    def fitted(X, y) -> np.ndarray:
        model = MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning after 30 epochs
            return model.fit(X, y).to_network().params

    np.testing.assert_array_equal(fitted(given_X, given_y), fitted(X.copy(), y.copy()))
    np.testing.assert_array_equal(given_X, X)
    np.testing.assert_array_equal(given_y, y)


ESTIMATORS_RUN = """
import json, sys, warnings
import numpy as np
from sklearn.datasets import load_iris
from betaprop import MLPClassifier, MLPRegressor

warnings.simplefilter("ignore")
seed = int(sys.argv[1])
X, y = load_iris(return_X_y=True)
record = {}
for solver in ("sgd", "adam", "lbfgs"):
    model = MLPClassifier(hidden_layer_sizes=(10,), solver=solver, max_iter=40, random_state=seed)
    model.fit(X, y)
    record[solver] = [
        model.to_network().params.tobytes().hex(),
        model.predict_proba(X).tobytes().hex(),
        model.loss_curve_ if solver != "lbfgs" else model.loss_,
    ]
regressor = MLPRegressor(hidden_layer_sizes=(10,), max_iter=40, random_state=seed,
                         early_stopping=True).fit(X[:, :3], X[:, 3])
record["regressor"] = [regressor.to_network().params.tobytes().hex(), regressor.loss_curve_,
                       regressor.validation_scores_]
print(json.dumps(record))
"""


def test_estimators_are_deterministic_across_processes() -> None:
    def run(seed: int) -> dict:
        result = subprocess.run(
            [sys.executable, "-c", ESTIMATORS_RUN, str(seed)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    first = run(0)
    assert run(0) == first
    other = run(1)
    for key in first:
        assert other[key][0] != first[key][0], key
