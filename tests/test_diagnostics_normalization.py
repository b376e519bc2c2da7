"""Diagnostics with batch normalisation and dropout: a training pass on a copy."""

from __future__ import annotations

import numpy as np
import pytest

import betaprop as bp
from betaprop.explain.diagnostics import Diagnostics


def test_diagnostics_measure_a_training_pass_and_leave_the_network_alone() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    D = np.eye(3)[rng.integers(0, 3, 40)]
    net = bp.Network([4, 8, 8, 8, 3], "sigmoid", loss="cross_entropy", dtype="float64", seed=1,
                     normalization="batch", dropout=0.2)  # fmt: skip
    stats, state = net.stats.copy(), net.dropout_rng.bit_generator.state
    diagnostics = Diagnostics(X, D)
    figures = diagnostics.measure(net)
    np.testing.assert_array_equal(net.stats, stats)  # the running statistics untouched
    assert net.dropout_rng.bit_generator.state == state  # and the masks to come
    assert diagnostics.measure(net) == figures  # the same weights, the same figures
    twin = net.copy()
    twin.loss_and_gradients(X, D)  # the pass measured: batch statistics, the same masks
    for q in range(1, net.Q + 1):
        beta = twin.beta[q] * len(X)
        expected = float(np.sqrt(np.vdot(beta, beta) / beta.size))
        assert figures[f"beta_rms_{q}"] == pytest.approx(expected, rel=1e-12)
    history = bp.fit(net, X, D, epochs=3, batch_size=8, seed=0, callbacks=[diagnostics])
    assert len(history.extra["beta_rms_1"]) == 3
    assert all(np.isfinite(history.extra[f"beta_rms_{q}"]).all() for q in range(1, 5))
