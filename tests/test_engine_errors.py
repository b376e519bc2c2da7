"""Bad input: a clear error naming the problem and the accepted values, never a silent NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

import betaprop as bp
from betaprop import optimizers as opt


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sizes": [3]}, ValueError, r"sizes must name at least 2 layers .* got \[3\]"),
        ({"sizes": [3, 0, 2]}, ValueError, r"sizes must be integers >= 1, got \[3, 0, 2\]"),
        ({"sizes": [3, 2.5, 2]}, ValueError, r"sizes must be integers >= 1"),
        ({"sizes": 5}, TypeError, r"sizes must be a sequence of layer sizes"),
        (
            {"activation": "relux"},
            ValueError,
            r"activation must be one of \[.*'relu'.*\], got 'relux'",
        ),
        (
            {"activation": "softmax"},
            ValueError,
            r"activation of a hidden layer must be one of \[.*\], got 'softmax' "
            r"\(output layer only\)",
        ),
        (
            {"activation": ["relu"]},
            ValueError,
            r"activation must be one name or a list of Q-1 = 2 names .* got 1",
        ),
        (
            {"loss": "hinge"},
            ValueError,
            r"loss must be one of \['binary_cross_entropy', 'cross_entropy', 'poisson', "
            r"'squared_error'\], "
            r"got 'hinge'",
        ),
        (
            {"loss": "cross_entropy", "output": "sigmoid"},
            ValueError,
            r"output must be one of \['softmax'\] for loss 'cross_entropy', got 'sigmoid'",
        ),
        ({"output": "nope"}, ValueError, r"activation must be one of .* got 'nope'"),
        (
            {"dtype": "float16"},
            ValueError,
            r"dtype must be one of \['float32', 'float64'\], got 'float16'",
        ),
    ],
)
def test_network_arguments(kwargs: dict, error: type, message: str) -> None:
    arguments = {"sizes": [3, 4, 4, 2], **kwargs}
    with pytest.raises(error, match=message):
        bp.Network(**arguments)


@pytest.fixture
def net() -> bp.Network:
    return bp.Network([3, 4, 2], seed=0)


def test_wrong_X_shape_names_both_shapes_and_the_symbol(net: bp.Network) -> None:
    with pytest.raises(ValueError, match=r"X must have shape \(n, N_0\) = \(n, 3\), got \(5, 4\)"):
        net.forward(np.ones((5, 4)))
    with pytest.raises(
        ValueError, match=r"X must be a 2-D array \(n, features\), got shape \(3,\)"
    ):
        net.predict(np.ones(3))


def test_wrong_D_shape(net: bp.Network) -> None:
    with pytest.raises(ValueError, match=r"D must have shape \(n, N_Q\) = \(5, 2\), got \(5, 3\)"):
        net.loss_and_gradients(np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"D must have shape \(n, N_Q\) = \(5, 2\), got \(4, 2\)"):
        bp.fit(net, np.ones((5, 3)), np.ones((4, 2)))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_and_targets(net: bp.Network, bad: float) -> None:
    X = np.ones((5, 3))
    X[2, 1] = bad
    with pytest.raises(ValueError, match=r"X must be finite, got .* at index \(2, 1\)"):
        net.loss_and_gradients(X, np.ones((5, 2)))
    D = np.ones((5, 2))
    D[4, 0] = bad
    with pytest.raises(ValueError, match=r"D must be finite, got .* at index \(4, 0\)"):
        bp.fit(net, np.ones((5, 3)), D)


def test_empty_and_non_numeric_inputs(net: bp.Network) -> None:
    with pytest.raises(ValueError, match=r"X must have at least one row, got shape \(0, 3\)"):
        net.forward(np.ones((0, 3)))
    with pytest.raises(TypeError, match=r"X must hold real numbers, got dtype <U1"):
        net.forward(np.array([["a", "b", "c"]]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
        ({"batch_size": -3}, r"batch_size must be an integer >= 1, got -3"),
        ({"optimizer": "lbfgs"}, r"optimizer must be one of \['adam', 'adamw', 'rmsprop', 'sgd'\]"),
        ({"schedule": "linear"}, r"schedule must be one of \['constant', 'cosine', "),
        (
            {"early_stopping": bp.EarlyStopping(monitor="val_loss")},
            r"early_stopping monitor 'val_loss' needs validation_data, got None",
        ),
    ],
)
def test_fit_arguments(net: bp.Network, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bp.fit(net, np.ones((5, 3)), np.ones((5, 2)), **kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: opt.SGD(-1.0), r"learning_rate must be a finite number > 0, got -1.0"),
        (lambda: opt.Adam(math.nan), r"learning_rate must be a finite number > 0, got nan"),
        (lambda: opt.SGD(0.1, momentum=1.5), r"momentum must be in \[0.0, 1.0\), got 1.5"),
        (lambda: opt.SGD(0.1, nesterov=True), r"momentum must be > 0 when nesterov=True"),
        (lambda: opt.Adam(beta_1=1.0), r"beta_1 must be in \[0.0, 1.0\), got 1.0"),
        (lambda: opt.AdamW(weight_decay=-0.1), r"weight_decay must be in \[0.0, inf\), got -0.1"),
        (lambda: bp.schedules.StepDecay(0), r"step_size must be an integer >= 1, got 0"),
        (
            lambda: bp.schedules.ReduceOnPlateau(threshold_mode="x"),
            r"threshold_mode must be one of",
        ),
        (lambda: bp.EarlyStopping(patience=0), r"patience must be an integer >= 1, got 0"),
    ],
)
def test_hyperparameters(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_beta_before_any_pass_is_a_clear_error(net: bp.Network) -> None:
    with pytest.raises(RuntimeError, match=r"no pass has run yet"):
        _ = net.beta


def test_a_partial_optimizer_state_is_completed_and_a_wrong_shape_refused() -> None:
    """optimizer_state may carry only some keys (the rest start fresh); arrays must fit."""
    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(20, 3)), np.eye(2)[rng.integers(0, 2, 20)]
    sgd = opt.SGD(0.05, momentum=0.9)
    fresh = bp.Network([3, 4, 2], loss="cross_entropy", dtype="float64", seed=0)
    bp.fit(fresh, X, D, optimizer=sgd, epochs=2, batch_size=5, seed=1)
    partial = bp.Network([3, 4, 2], loss="cross_entropy", dtype="float64", seed=0)
    state: dict = {"lr": 0.05, "t": 0}
    bp.fit(partial, X, D, optimizer=sgd, epochs=2, batch_size=5, seed=1, optimizer_state=state)
    np.testing.assert_array_equal(partial.params, fresh.params)
    assert state["t"] == 8 and state["v"].shape == partial.params.shape
    wrong = {"lr": 0.05, "t": 0, "v": np.zeros(3)}
    n = partial.n_params
    with pytest.raises(
        ValueError,
        match=rf"optimizer_state\['v'\] must have shape \({n},\) for this network, got \(3,\)",
    ):
        bp.fit(partial, X, D, optimizer=sgd, epochs=1, optimizer_state=wrong)


def test_evaluate_checks_its_inputs_like_predict(net: bp.Network) -> None:
    X = np.ones((5, 3))
    D = np.eye(2)[[0, 1, 0, 1, 0]]
    # float64 data for a float32 network is converted, as predict converts it
    as_float32 = bp.evaluate(net, X.astype(np.float32), D.astype(np.float32))
    assert bp.evaluate(net, X, D) == as_float32
    assert all(math.isfinite(v) for v in as_float32)
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X must be finite, got nan at index \(2, 1\)"):
        bp.evaluate(net, bad, D)
    with pytest.raises(ValueError, match=r"D must have shape \(n, N_Q\) = \(5, 2\), got \(4, 2\)"):
        bp.evaluate(net, X, D[:4])
