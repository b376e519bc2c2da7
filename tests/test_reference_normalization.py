"""The literal transcription (``betaprop.reference.batch_pass``) equals the fast engine.

With batch normalisation and dropout both on, in float64, at several depths: s, xhat, u, y,
the local errors beta, every gradient (dW, db, dgamma, dshift) and the loss agree to 1e-12.
The dropout masks are the engine's own (``net.workspace(n).mask[q]`` after its pass).
"""

from __future__ import annotations

import numpy as np
import pytest

import betaprop as bp
from betaprop.engine import normalization, reference


def _close(ours: object, engine: np.ndarray, what: str) -> None:
    np.testing.assert_allclose(np.asarray(ours, dtype=float), engine, rtol=0, atol=1e-12,
                               err_msg=what)  # fmt: skip


def _check(net: bp.Network, n: int = 6, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, net.sizes[0]))
    D = net.loss.sample_targets(rng, n, net.sizes[-1])
    loss = net.loss_and_gradients(X, D)  # a training pass: batch statistics, new masks
    ws = net.workspace(n)
    masks = [None if not net.p[q] else ws.mask[q].copy() for q in range(net.Q + 1)]
    ref = reference.batch_pass(net, X, D, masks)
    assert ref.loss == pytest.approx(loss, rel=1e-12, abs=1e-12)
    for q in range(1, net.Q + 1):
        _close(ref.s[q], net.s[q], f"s^{q}")
        _close(ref.y[q], net.y[q], f"y^{q}")
        _close(ref.beta[q], net.beta[q] * n, f"beta^{q}")  # the engine folds 1/n into beta
        _close(ref.dW[q], net.dW[q], f"dW^{q}")
        _close(ref.db[q], net.db[q], f"db^{q}")
        if net.normalized[q]:
            _close(ref.xhat[q], ws.xhat[q], f"xhat^{q}")
            _close(ref.u[q], ws.u[q], f"u^{q}")
            _close(ref.mu[q], ws.mean[q][:, 0], f"mu^{q}")
            _close(1.0 / np.array(ref.sigma[q]), ws.inv_std[q][:, 0], f"1/sigma^{q}")
            _close(ref.dgamma[q], net.dgamma[q], f"dgamma^{q}")
            _close(ref.dshift[q], net.dshift[q], f"dshift^{q}")
    dW, db, value = reference.gradients(net, X, D, masks)
    assert value == ref.loss  # gradients() goes through batch_pass for such a network
    for q in range(1, net.Q + 1):
        np.testing.assert_array_equal(dW[q], ref.dW[q])
        np.testing.assert_array_equal(db[q], ref.db[q])


@pytest.mark.parametrize("hidden", [[5], [6, 4], [5, 5, 5, 5]], ids=["Q2", "Q3", "Q5"])
@pytest.mark.parametrize(
    "activation, loss", [("relu", "cross_entropy"), ("tanh", "squared_error"),
                         ("sigmoid", "binary_cross_entropy")],
)  # fmt: skip
def test_reference_equals_the_engine_with_batch_norm_and_dropout(
    hidden: list[int], activation: str, loss: str
) -> None:
    net = bp.Network([4, *hidden, 3], activation, loss=loss, dtype="float64", seed=1,
                     normalization="batch", dropout=0.3)  # fmt: skip
    rng = np.random.default_rng(2)  # gamma and shift away from 1 and 0
    net.params[net.n_weights + sum(net.sizes[1:]) :] = rng.normal(
        scale=0.5, size=net.n_params - net.n_weights - sum(net.sizes[1:])
    ) + np.repeat([1.0, 0.0], (net.n_params - net.n_weights - sum(net.sizes[1:])) // 2)
    _check(net)


@pytest.mark.parametrize(
    "normalization, dropout",
    [(["batch", None, "batch"], [0.0, 0.5, 0.2]), ([None, "batch", None], 0.0),
     (None, [0.4, 0.0, 0.0])],
)  # fmt: skip
def test_reference_per_layer_settings_and_a_softmax_output(normalization, dropout) -> None:
    net = bp.Network([3, 6, 5, 4, 3], "relu", output="softmax", loss="cross_entropy",
                     dtype="float64", seed=4, normalization=normalization,
                     dropout=dropout)  # fmt: skip
    _check(net, n=7, seed=3)


def test_reference_refuses_a_missing_mask_or_a_batch_of_one() -> None:
    net = bp.Network([2, 3, 2], dtype="float64", seed=0, normalization="batch", dropout=0.5)
    X, D = np.ones((4, 2)), np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"masks\[1\] must be given"):
        reference.batch_pass(net, X, D)
    with pytest.raises(ValueError, match="more than 1 example"):
        reference.batch_pass(net, X[:1], D[:1], [None, np.ones((3, 1)), None])


def test_reference_eps_is_the_engine_eps() -> None:
    assert reference.EPS == normalization.EPS
