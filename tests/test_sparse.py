"""Sparse input (issue 14): the first layer's paths against dense NumPy, and the memory
that the sparse case of benchmarks/sparse.py must not spend.

``engine.sparse.product`` multiplies by W^1 k neurons at a time, their rows copied into
SciPy's layout: a small W^1 (at most ``SMALL`` weights) in one block; a larger one in blocks
whose copy is no larger than the output s^1 (N_1 x n), or, where fewer than 4 rows would
fit (few examples, or very many inputs), one neuron at a time, its row read in place.
``gradient`` (step 5) is one product for a small W^1, else one per neuron. Each path is
checked against the dense product, alone and through ``bp.fit``, ``Network.predict`` and
the estimators (adam, sgd, lbfgs).
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
# (shape of W^1 (N_1, N_0), examples n): the path that product takes
CASES = {
    "one-block": ((20, 300), [1, 7, 300]),  # 6000 weights <= SMALL
    "rows": ((40, 7000), [1, 7, 300]),  # 280000 > SMALL; N_1 n / N_0 < 4 rows per block
    "blocks": ((40, 7000), [1100]),  # blocks of 44000 // 7000 = 6 rows, the last one of 4
}
KERNEL_CASES = pytest.mark.parametrize(
    "shape, n",
    [(shape, n) for shape, ns in CASES.values() for n in ns],
    ids=[f"{name}-{n}" for name, (_, ns) in CASES.items() for n in ns],
)


def _rows(n: int, features: int, density: float, dtype: str = "float64") -> sp.csr_matrix:
    """n sparse rows; the first example stores nothing (an empty column of y^0)."""
    X = sp.random(n, features, density=density, format="csr", random_state=RNG, dtype=dtype)
    X = sp.vstack([sp.csr_matrix((1, features), dtype=dtype), X[1:]]).tocsr()
    return X


def _block(shape: tuple[int, int], n: int) -> int:
    """The rows per block that the cases above are named for (the rule of the docstring)."""
    N1, N0 = shape
    return N1 if N1 * N0 <= sparse.SMALL else N1 * n // N0


def test_the_cases_take_the_paths_they_are_named_for() -> None:
    (small, ns), (large, few), (_, many) = CASES.values()
    assert small[0] * small[1] <= sparse.SMALL < large[0] * large[1]
    assert all(_block(small, n) == small[0] for n in ns)
    assert all(_block(large, n) < 4 for n in few)
    assert 4 <= _block(large, many[0]) < large[0] and large[0] % _block(large, many[0])
    assert _block((12, 70000), 500) < 4  # the memory test's rows case below


@KERNEL_CASES
@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-12), ("float32", 1e-5)])
def test_product_and_gradient_equal_the_dense_ones(shape, n, dtype, tolerance) -> None:
    """Steps 2 and 5 of layer 1 on sparse columns (the CSC transpose of CSR rows, as fit and
    predict pass them) equal NumPy's dense W y^0 and beta (y^0)^T."""
    N1, N0 = shape
    W = RNG.normal(size=shape).astype(dtype)
    x = _rows(n, N0, 0.002, dtype).T  # (N_0, n)
    beta = RNG.normal(size=(N1, n)).astype(dtype)
    dense = x.toarray()
    out, grad = np.full((N1, n), np.nan, dtype), np.full(shape, np.nan, dtype)
    sparse.product(W, x, out)
    sparse.gradient(beta, x, grad)
    scale = max(1.0, float(np.abs(W).max()))
    np.testing.assert_allclose(out, W @ dense, rtol=tolerance, atol=tolerance * scale)
    np.testing.assert_allclose(grad, beta @ dense.T, rtol=tolerance, atol=tolerance * scale)
    assert out.dtype == grad.dtype == np.dtype(dtype)


@pytest.mark.parametrize("shape, n", [((20, 300), 9), ((40, 7000), 9), ((40, 7000), 1100)])
@pytest.mark.parametrize("form", ["csr", "coo", "csc_array"])
def test_any_sparse_format_of_columns_gives_the_same_products(shape, n, form) -> None:
    """forward_columns accepts any SciPy sparse x (N_0, n): other formats than the usual CSC
    view, and sparse arrays, give the products of the dense x."""
    N1, N0 = shape
    W = RNG.normal(size=shape)
    dense = _rows(n, N0, 0.002).T.toarray()
    x = {"csr": sp.csr_matrix, "coo": sp.coo_matrix, "csc_array": sp.csc_array}[form](dense)
    beta = RNG.normal(size=(N1, n))
    out, grad = np.empty((N1, n)), np.empty(shape)
    sparse.product(W, x, out)
    sparse.gradient(beta, x, grad)
    np.testing.assert_allclose(out, W @ dense, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, beta @ dense.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(200, 7000), (12, 70000)], ids=["blocks", "rows"])
def test_a_large_W1_is_never_copied_whole(shape) -> None:
    """The products' peak allocation stays below a quarter of W^1: a block's copy is no
    larger than the output s^1 (here 500 examples), step 5 takes one row at a time."""
    N1, N0 = shape
    W = RNG.normal(size=shape)
    x = _rows(500, N0, 0.005).T
    beta = RNG.normal(size=(N1, 500))
    out, grad = np.empty((N1, 500)), np.empty(shape)
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
    assert product_peak < min(1.25 * out.nbytes, W.nbytes / 4), product_peak
    assert gradient_peak < W.nbytes / 4, gradient_peak


@pytest.mark.parametrize(
    "shape, n, batch",
    [((20, 300), 120, 16), ((40, 7000), 120, 16), ((40, 7000), 1100, 1100)],
    ids=["one-block", "rows", "blocks"],
)
def test_fit_and_predict_on_sparse_rows_equal_dense(shape, n, batch) -> None:
    """bp.fit (mini-batches, or the whole set at once) and Network.predict (all rows) give
    the dense run's weights and outputs in float64, on each path."""
    N1, N0 = shape
    X = _rows(n, N0, 0.002)
    D = RNG.normal(size=(n, 2))
    nets = [bp.Network([N0, N1, 2], activation="tanh", dtype="float64", seed=5) for _ in range(2)]
    h1 = bp.fit(nets[0], X, D, optimizer="adam", epochs=2, batch_size=batch, seed=3)
    h2 = bp.fit(nets[1], X.toarray(), D, optimizer="adam", epochs=2, batch_size=batch, seed=3)
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
    """The issue's promise on a W^1 larger than SMALL: sparse and dense X, the same model to
    1e-6 (weights and probabilities), CSR and CSC alike; mini-batches (200) take one neuron
    at a time, lbfgs and predict (1000 examples) blocks of 8 neurons."""
    X = _rows(1000, 6000, 0.005)  # W^1: 6000 x 50 = 300000 weights > SMALL
    y = RNG.integers(0, 3, 1000)
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
