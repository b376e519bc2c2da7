"""The engine additions the estimators rely on, against independent oracles.

- per-example weights w (sample weights): loss and gradients of (1/n) sum_i w_i E_i, against
  central differences and against repeating examples;
- Adam with ``epsilon_hat=True``: scikit-learn's own AdamOptimizer, step for step;
- the Poisson loss's exp output stays finite where e^s overflows.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer

import betaprop as bp
from betaprop import activations, losses

CASES = [
    ("squared_error", lambda rng, n: rng.normal(size=(n, 3))),
    ("cross_entropy", lambda rng, n: np.eye(3)[rng.integers(0, 3, n)]),
    ("binary_cross_entropy", lambda rng, n: (rng.random((n, 3)) > 0.5).astype(float)),
    ("poisson", lambda rng, n: rng.poisson(2.0, size=(n, 3)).astype(float)),
]


def _case(loss: str, targets, seed: int = 0):
    rng = np.random.default_rng(seed)
    net = bp.Network([4, 5, 3], activation="tanh", loss=loss, dtype="float64", seed=seed)
    net.params[net.n_weights :] = rng.normal(scale=0.3, size=net.n_params - net.n_weights)
    X = rng.normal(size=(7, 4))
    return net, X, targets(rng, 7), rng.uniform(0.1, 3.0, size=(1, 7))


@pytest.mark.parametrize(("loss", "targets"), CASES, ids=[c[0] for c in CASES])
def test_weighted_loss_is_the_weighted_mean_of_per_example_losses(loss, targets) -> None:
    net, X, D, w = _case(loss, targets)
    value = net.loss_and_gradients(X, D, w[0])
    per_example = [net.loss_and_gradients(X[i : i + 1], D[i : i + 1]) for i in range(7)]
    assert value == pytest.approx(float(np.dot(w[0], per_example)) / 7, rel=1e-12)


@pytest.mark.parametrize(("loss", "targets"), CASES, ids=[c[0] for c in CASES])
def test_weighted_gradients_equal_central_differences(loss, targets) -> None:
    net, X, D, w = _case(loss, targets, seed=1)
    net.loss_and_gradients(X, D, w[0])
    analytic = net.grads.copy()
    numeric = np.empty_like(analytic)
    h = 1e-6
    for k in range(net.n_params):
        saved = net.params[k]
        net.params[k] = saved + h
        plus = net.loss_and_gradients(X, D, w[0])
        net.params[k] = saved - h
        minus = net.loss_and_gradients(X, D, w[0])
        net.params[k] = saved
        numeric[k] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_integer_weights_equal_repeated_examples() -> None:
    net, X, D, _ = _case("cross_entropy", CASES[1][1], seed=2)
    counts = np.array([1, 3, 2, 1, 4, 1, 2])
    w = (counts * 7 / counts.sum())[None, :]  # normalised so that the mean is the same
    weighted = net.loss_and_gradients(X, D, w[0])
    grads = net.grads.copy()
    repeated = net.loss_and_gradients(np.repeat(X, counts, axis=0), np.repeat(D, counts, axis=0))
    assert weighted == pytest.approx(repeated, rel=1e-12)
    np.testing.assert_allclose(grads, net.grads, rtol=1e-10, atol=1e-14)


def test_adam_epsilon_hat_equals_scikit_learn_adam() -> None:
    rng = np.random.default_rng(3)
    params = rng.normal(size=40)
    theirs = [params[:30].reshape(5, 6).copy(), params[30:].copy()]
    sk_adam = AdamOptimizer(theirs, learning_rate_init=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-3)
    adam = bp.optimizers.Adam(0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-3, epsilon_hat=True)
    state = adam.init(params)
    for _ in range(25):
        grads = rng.normal(size=40)
        sk_adam.update_params(theirs, [grads[:30].reshape(5, 6), grads[30:]])
        adam.update(params, grads, state, 30)
    np.testing.assert_allclose(params[:30], theirs[0].ravel(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(params[30:], theirs[1], rtol=1e-13, atol=1e-15)
    # and torch's form (eps after the bias correction) is a different rule: the test can fail
    plain = bp.optimizers.Adam(0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-3)
    other = rng.normal(size=40)
    p1, p2 = other.copy(), other.copy()
    s1, s2 = plain.init(p1), adam.init(p2)
    g = rng.normal(size=40) * 1e-3
    plain.update(p1, g, s1, 30)
    adam.update(p2, g, s2, 30)
    assert np.abs(p1 - p2).max() > 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_output_is_exact_below_its_cap_and_finite_above(dtype) -> None:
    exp = activations.get_activation("exp")
    s = np.array([[-50.0, 0.0, 3.5, 60.0, 1e4]], dtype=dtype)
    y = np.empty_like(s)
    exp.forward(s, out=y)
    np.testing.assert_allclose(y[0, :4], np.exp(s[0, :4].astype(np.float64)), rtol=1e-6)
    assert np.isfinite(y).all() and y[0, 4] >= y[0, 3]
    d = np.array([[1.0, 0.0, 2.0, 3.0, 4.0]], dtype=dtype)
    value = losses.get_loss("poisson").value(s, y, d)
    assert np.isfinite(value)
