"""predict's inference pass (its own work buffers, examples as rows in memory) against the
training layout's forward pass and the seed's per-example loops."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import betaprop as bp
from betaprop.engine.reference import forward_example


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu", "loss": "cross_entropy"},
        {"activation": ["tanh", "gelu"], "loss": "binary_cross_entropy"},
        {"activation": "elu", "loss": "squared_error", "memory": "recompute"},
        {"activation": "relu", "loss": "cross_entropy", "normalization": "batch"},
        {"activation": "sigmoid", "loss": "poisson", "dropout": 0.3},
    ],
)
def test_predict_equals_forward_and_the_seeds_loops(options, dtype, tol):
    rng = np.random.default_rng(7)
    sizes = (6, 9, 7, 3) if options["loss"] != "binary_cross_entropy" else (6, 9, 7, 1)
    net = bp.Network(sizes, dtype=dtype, seed=3, **options)
    if "normalization" in options:  # running statistics that are not 0 and 1
        net.stats[...] = rng.uniform(0.5, 2.0, size=net.stats.shape)
    X = rng.normal(size=(37, 6)).astype(dtype)
    y = net.forward(X)
    P = net.predict(X, batch_size=16)  # chunks of 16, 16 and 5 rows
    assert P.dtype == np.dtype(dtype) and P.flags.c_contiguous
    np.testing.assert_allclose(P, y, rtol=tol, atol=tol)
    np.testing.assert_allclose(net.predict(X[3:4]), y[3:4], rtol=tol, atol=tol)
    if "normalization" not in options:  # the reference's loops have no running statistics
        expected = [forward_example(net, list(map(float, x)))[1][net.Q] for x in X[:5]]
        np.testing.assert_allclose(P[:5], expected, rtol=tol, atol=tol)


def test_after_predict_the_layers_hold_its_last_chunk_and_backward_refuses():
    net = bp.Network((4, 5, 2), "tanh", loss="cross_entropy", dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(10, 4))
    D = np.eye(2)[np.arange(10) % 2]
    net.predict(X, batch_size=4)  # chunks of 4, 4 and 2 rows
    s, y = [net.s[q].copy() for q in (1, 2)], [net.y[q].copy() for q in (1, 2)]
    with pytest.raises(RuntimeError, match="predict's"):
        net.backward(D[8:].T)
    net.forward(X[8:])  # the training layout's pass on the last chunk
    for q in (1, 2):
        np.testing.assert_allclose(s[q - 1], net.s[q], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y[q - 1], net.y[q], rtol=1e-12, atol=1e-12)
    net.backward(D[8:].T)  # after forward, backward runs
    assert np.isfinite(net.grads).all()


def test_sparse_rows_predict_as_the_dense_ones():
    X = scipy.sparse.random(50, 30, density=0.1, format="csr", random_state=2, dtype=np.float64)
    net = bp.Network((30, 8, 3), "relu", loss="cross_entropy", dtype="float64", seed=1)
    np.testing.assert_allclose(net.predict(X), net.predict(X.toarray()), rtol=1e-12, atol=1e-12)
