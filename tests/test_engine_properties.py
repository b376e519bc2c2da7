"""Properties of steps 2-5 that hold for any network and batch (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import betaprop as bp
from betaprop import activations, losses
from betaprop.engine.reference import forward_example

HIDDEN = sorted(activations.names(hidden_only=True))
LOSSES = sorted(losses.LOSSES)


@st.composite
def cases(draw: st.DrawFn) -> tuple[bp.Network, np.ndarray, np.ndarray]:
    Q = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 6), min_size=Q + 1, max_size=Q + 1))
    loss = draw(st.sampled_from(LOSSES))
    if loss == "cross_entropy":
        sizes[-1] = max(2, sizes[-1])
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=Q - 1, max_size=Q - 1))
    seed = draw(st.integers(0, 2**16))
    n = draw(st.integers(1, 12))
    rng = np.random.default_rng(seed)
    net = bp.Network(sizes, hidden, loss=loss, dtype="float64", seed=seed)
    net.params[net.n_weights :] = rng.normal(scale=0.3, size=net.n_params - net.n_weights)
    X = rng.normal(size=(n, sizes[0]))
    if loss == "cross_entropy":
        D = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    elif loss == "binary_cross_entropy":
        D = (rng.random((n, sizes[-1])) > 0.5).astype(float)
    elif loss == "poisson":
        D = rng.poisson(1.5, size=(n, sizes[-1])).astype(float)
    else:
        D = rng.normal(size=(n, sizes[-1]))
    return net, X, D


@settings(max_examples=60, deadline=None)
@given(cases())
def test_batch_gradient_is_the_mean_of_per_example_gradients(case) -> None:
    net, X, D = case
    loss = net.loss_and_gradients(X, D)
    batch_grads = net.grads.copy()
    per_example, per_loss = [], []
    for i in range(len(X)):
        per_loss.append(net.loss_and_gradients(X[i : i + 1], D[i : i + 1]))
        per_example.append(net.grads.copy())
    np.testing.assert_allclose(batch_grads, np.mean(per_example, axis=0), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(loss, np.mean(per_loss), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_permuting_the_batch_changes_nothing(case, random) -> None:
    net, X, D = case
    loss = net.loss_and_gradients(X, D)
    grads = net.grads.copy()
    order = list(range(len(X)))
    random.shuffle(order)
    permuted = net.loss_and_gradients(X[order], D[order])
    np.testing.assert_allclose(permuted, loss, rtol=1e-12)
    np.testing.assert_allclose(net.grads, grads, rtol=1e-10, atol=1e-13)


@settings(max_examples=40, deadline=None)
@given(cases())
def test_float32_run_agrees_with_float64_to_float32_precision(case) -> None:
    net64, X, D = case
    net32 = net64.astype("float32")
    loss64, loss32 = net64.loss_and_gradients(X, D), net32.loss_and_gradients(X, D)
    assert abs(loss32 - loss64) <= 1e-5 * max(1.0, abs(loss64))
    scale = max(1.0, float(np.abs(net64.grads).max()))
    np.testing.assert_allclose(net32.grads, net64.grads, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(net32.forward(X), net64.forward(X), rtol=1e-4, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(cases())
def test_forward_and_predict_agree_and_keep_every_layer(case) -> None:
    net, X, D = case
    y = net.forward(X)
    # predict's products run transposed (examples as rows in memory): the same sums,
    # another BLAS kernel, so equal to rounding
    np.testing.assert_allclose(net.predict(X), y, rtol=1e-12, atol=1e-12)
    for x, y_i in zip(X[:3], net.predict(X[:3]), strict=False):  # the seed's loops
        np.testing.assert_allclose(
            y_i, forward_example(net, list(x))[1][net.Q], rtol=1e-12, atol=1e-12
        )
    net.forward(X)
    for q in range(1, net.Q + 1):
        assert net.s[q].shape == net.y[q].shape == (net.sizes[q], len(X))
    np.testing.assert_array_equal(net.y[net.Q].T, y)
    np.testing.assert_array_equal(net.y[0], X.T)
