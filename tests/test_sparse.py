"""Sparse input (issue 14): the first layer's two paths against dense NumPy, and the memory
that the sparse case of benchmarks/sparse.py must not spend.

``engine.sparse`` takes one SciPy product with a transposed copy of a small W^1 (at most
``SMALL`` weights) and one SciPy product per neuron for a larger one; each path is checked
against the dense product, alone and through ``bp.fit``, ``Network.predict`` and the
estimators (adam, sgd, lbfgs), on both sides of ``SMALL``.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import betaprop as bp
from betaprop import MLPClassifier, MLPRegressor
from betaprop.engine import sparse
from betaprop.estimators.rules import BLOCK, L2Penalty

RNG = np.random.default_rng(14)
SMALL_SHAPE = (20, 300)  # W^1 (N_1, N_0): 6000 weights, the copied path
LARGE_SHAPE = (40, 7000)  # 280000 weights > SMALL: one SciPy product per neuron


def _rows(n: int, features: int, density: float, dtype: str = "float64") -> sp.csr_matrix:
    """n sparse rows; the first example stores nothing (an empty column of y^0)."""
    X = sp.random(n, features, density=density, format="csr", random_state=RNG, dtype=dtype)
    X = sp.vstack([sp.csr_matrix((1, features), dtype=dtype), X[1:]]).tocsr()
    return X


def test_the_two_paths_are_on_either_side_of_the_threshold() -> None:
    assert SMALL_SHAPE[0] * SMALL_SHAPE[1] <= sparse.SMALL < LARGE_SHAPE[0] * LARGE_SHAPE[1]


@pytest.mark.parametrize("shape", [SMALL_SHAPE, LARGE_SHAPE], ids=["copied", "per-neuron"])
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("n", [1, 7, 300])
def test_product_and_gradient_equal_the_dense_ones(shape, dtype, tolerance, n) -> None:
    """Steps 2 and 5 of layer 1 on sparse columns (the CSC transpose of CSR rows, as fit and
    predict pass them) equal NumPy's dense W y^0 and beta (y^0)^T."""
    N1, N0 = shape
    W = RNG.normal(size=shape).astype(dtype)
    x = _rows(n, N0, 0.01, dtype).T  # (N_0, n)
    beta = RNG.normal(size=(N1, n)).astype(dtype)
    dense = x.toarray()
    out, grad = np.full((N1, n), np.nan, dtype), np.full(shape, np.nan, dtype)
    sparse.product(W, x, out)
    sparse.gradient(beta, x, grad)
    scale = max(1.0, float(np.abs(W).max()))
    np.testing.assert_allclose(out, W @ dense, rtol=tolerance, atol=tolerance * scale)
    np.testing.assert_allclose(grad, beta @ dense.T, rtol=tolerance, atol=tolerance * scale)
    assert out.dtype == grad.dtype == np.dtype(dtype)


@pytest.mark.parametrize("shape", [SMALL_SHAPE, LARGE_SHAPE], ids=["copied", "per-neuron"])
@pytest.mark.parametrize("form", ["csr", "coo", "csc_array"])
def test_any_sparse_format_of_columns_gives_the_same_products(shape, form) -> None:
    """forward_columns accepts any SciPy sparse x (N_0, n): other formats than the usual CSC
    view, and sparse arrays, give the products of the dense x."""
    N1, N0 = shape
    W = RNG.normal(size=shape)
    dense = _rows(9, N0, 0.02).T.toarray()
    x = {"csr": sp.csr_matrix, "coo": sp.coo_matrix, "csc_array": sp.csc_array}[form](dense)
    beta = RNG.normal(size=(N1, 9))
    out, grad = np.empty((N1, 9)), np.empty(shape)
    sparse.product(W, x, out)
    sparse.gradient(beta, x, grad)
    np.testing.assert_allclose(out, W @ dense, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, beta @ dense.T, rtol=1e-12, atol=1e-12)


def test_the_per_neuron_path_never_copies_W1() -> None:
    """A large W^1 is read in place: the products' peak allocation is a small fraction of
    W^1 (the copied path would allocate a transposed copy of all of it)."""
    N1, N0 = LARGE_SHAPE
    W = RNG.normal(size=LARGE_SHAPE)
    x = _rows(500, N0, 0.005).T
    beta = RNG.normal(size=(N1, 500))
    out, grad = np.empty((N1, 500)), np.empty(LARGE_SHAPE)
    sparse.product(W, x, out)  # warm-up: SciPy's first call sets up its own tables
    tracemalloc.start()
    try:
        sparse.product(W, x, out)
        product_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        sparse.gradient(beta, x, grad)
        gradient_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert product_peak < W.nbytes / 20, product_peak
    assert gradient_peak < W.nbytes / 20, gradient_peak


@pytest.mark.parametrize("shape", [SMALL_SHAPE, LARGE_SHAPE], ids=["copied", "per-neuron"])
def test_fit_and_predict_on_sparse_rows_equal_dense(shape) -> None:
    """bp.fit (mini-batches: stored values fewer than N_0) and Network.predict (all rows)
    give the dense run's weights and outputs in float64, on either path."""
    N1, N0 = shape
    X = _rows(120, N0, 0.02)
    D = RNG.normal(size=(120, 2))
    nets = [bp.Network([N0, N1, 2], activation="tanh", dtype="float64", seed=5) for _ in range(2)]
    h1 = bp.fit(nets[0], X, D, optimizer="adam", epochs=2, batch_size=16, seed=3)
    h2 = bp.fit(nets[1], X.toarray(), D, optimizer="adam", epochs=2, batch_size=16, seed=3)
    np.testing.assert_allclose(nets[0].params, nets[1].params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h1.loss, h2.loss, rtol=1e-12)
    np.testing.assert_allclose(
        nets[0].predict(X), nets[1].predict(X.toarray()), rtol=1e-10, atol=1e-12
    )


def _quiet_fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimators_on_a_large_first_layer_give_the_dense_model(solver) -> None:
    """The issue's promise on the per-neuron path: sparse and dense X, the same model to
    1e-6 (weights and probabilities), CSR and CSC alike."""
    X = _rows(200, 6000, 0.005)  # W^1: 6000 x 50 = 300000 weights > SMALL
    y = RNG.integers(0, 3, 200)
    settings = dict(solver=solver, hidden_layer_sizes=(50,), max_iter=4, random_state=0)
    dense = _quiet_fit(MLPClassifier(**settings), X.toarray(), y)
    for matrix in (sp.csr_matrix, sp.csc_matrix):
        model = _quiet_fit(MLPClassifier(**settings), matrix(X), y)
        mine, theirs = model.coefs_ + model.intercepts_, dense.coefs_ + dense.intercepts_
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        np.testing.assert_allclose(
            model.predict_proba(matrix(X)), dense.predict_proba(X.toarray()), atol=1e-6
        )


def test_regressor_lbfgs_with_l2_on_a_large_first_layer() -> None:
    """lbfgs hands scipy the gradient buffer itself: with L2 (alpha) and the per-neuron
    path the result still equals the dense fit, and scikit-learn's loss on the same data."""
    import sklearn.neural_network as sk

    X = _rows(150, 6000, 0.005)
    y = RNG.normal(size=150)
    settings = dict(solver="lbfgs", hidden_layer_sizes=(50,), max_iter=6, alpha=0.3)
    sparse_model = _quiet_fit(MLPRegressor(random_state=1, **settings), X, y)
    dense_model = _quiet_fit(MLPRegressor(random_state=1, **settings), X.toarray(), y)
    theirs = _quiet_fit(sk.MLPRegressor(random_state=1, **settings), X, y)
    np.testing.assert_allclose(sparse_model.coefs_[0], dense_model.coefs_[0], atol=1e-6)
    np.testing.assert_allclose(sparse_model.loss_, dense_model.loss_, rtol=1e-9)
    np.testing.assert_allclose(sparse_model.loss_, theirs.loss_, rtol=1e-4)


@pytest.mark.parametrize("n_weights", [10, BLOCK, 2 * BLOCK + 7])
def test_l2_gradient_block_by_block_equals_the_whole_array_formula(n_weights) -> None:
    """L2Penalty adds alpha W / S in blocks (no scratch the size of W): bit for bit the
    formula on the whole array, for sizes below, at and across the block."""
    net = bp.Network([n_weights, 1, 1], activation="identity", dtype="float64", seed=0)
    net.params[...] = RNG.normal(size=net.n_params)
    net.grads[...] = RNG.normal(size=net.n_params)
    W = net.params[: net.n_weights].copy()
    expected = net.grads.copy()
    expected[: net.n_weights] += W * (0.7 / 13.0)
    penalty = L2Penalty(0.7)
    loss = penalty(net, 2.0, 13.0)
    np.testing.assert_array_equal(net.grads, expected)
    assert loss == pytest.approx(2.0 + 0.5 * 0.7 * float(W @ W) / 13.0, rel=1e-12)
    assert penalty.scratch is not None and penalty.scratch.size <= BLOCK


def test_best_weights_are_kept_only_with_early_stopping() -> None:
    """Without early stopping no copy of the weights is kept (12 MB in the benchmark's
    case); with it the best validation epoch's weights are kept and restored."""
    X = _rows(200, 300, 0.05)
    y = RNG.integers(0, 2, 200)
    settings = dict(hidden_layer_sizes=(8,), max_iter=6, random_state=0)
    model = _quiet_fit(MLPClassifier(**settings), X, y)
    assert model._best_params is None
    stopped = _quiet_fit(MLPClassifier(early_stopping=True, **settings), X, y)
    assert stopped._best_params is not None
    np.testing.assert_array_equal(stopped._net.params, stopped._best_params)  # restored
