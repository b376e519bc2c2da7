"""``fit``'s sample weights, per-batch penalty hook and sparse X (what the estimators use)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import betaprop as bp
from betaprop import optimizers as opt

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
D = RNG.normal(size=(40, 2))


def _net(dtype: str = "float64") -> bp.Network:
    return bp.Network([3, 5, 2], activation="tanh", dtype=dtype, seed=1)


def test_integer_weights_equal_repeated_examples() -> None:
    """One full-batch SGD step: weights w_i give the same step as example i repeated w_i times."""
    w = RNG.integers(0, 4, size=40)
    weighted, repeated = _net(), _net()
    h1 = bp.fit(weighted, X, D, optimizer=opt.SGD(learning_rate=0.1), epochs=1,
                batch_size=40, shuffle=False, sample_weight=w)  # fmt: skip
    Xr, Dr = np.repeat(X, w, axis=0), np.repeat(D, w, axis=0)
    h2 = bp.fit(repeated, Xr, Dr, optimizer=opt.SGD(learning_rate=0.1), epochs=1,
                batch_size=len(Xr), shuffle=False)  # fmt: skip
    np.testing.assert_allclose(weighted.params, repeated.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h1.loss[0], h2.loss[0], rtol=1e-12)


def test_a_batch_without_weight_is_skipped() -> None:
    """Weights 0 on the second half: the same weights as training on the first half only."""
    w = np.r_[np.ones(20), np.zeros(20)]
    weighted, half = _net(), _net()
    bp.fit(weighted, X, D, optimizer="sgd", epochs=3, batch_size=20, shuffle=False,
           sample_weight=w)  # fmt: skip
    bp.fit(half, X[:20], D[:20], optimizer="sgd", epochs=3, batch_size=20, shuffle=False)
    np.testing.assert_allclose(weighted.params, half.params, rtol=1e-12, atol=1e-14)


def test_penalty_adding_l2_equals_weight_decay() -> None:
    """A penalty adding lam W to the weight gradient is SGD's weight_decay=lam (weights only)."""
    lam, hooked, decayed = 0.3, _net(), _net()
    seen: list[float] = []

    def l2(net: bp.Network, loss: float, weight: float) -> float:
        seen.append(weight)
        W = hooked.params[: hooked.n_weights]
        hooked.grads[: hooked.n_weights] += lam * W
        return loss + 0.5 * lam * float(W @ W)

    h = bp.fit(hooked, X, D, optimizer=opt.SGD(learning_rate=0.05), epochs=2, batch_size=16,
               seed=4, penalty=l2)  # fmt: skip
    bp.fit(decayed, X, D, optimizer=opt.SGD(learning_rate=0.05, weight_decay=lam), epochs=2,
           batch_size=16, seed=4)  # fmt: skip
    np.testing.assert_allclose(hooked.params, decayed.params, rtol=1e-12, atol=1e-14)
    assert seen == [16.0, 16.0, 8.0] * 2  # the batch sizes, as the weight of each batch
    data_loss, _ = bp.evaluate(hooked, X, D)
    assert h.loss[-1] > data_loss  # the recorded loss includes the penalty


def test_sparse_X_trains_like_its_dense_copy() -> None:
    """The first layer's products on the sparse rows (SciPy) equal BLAS's on dense ones up to
    rounding: the same model to 1e-6 (issue 14), in float64 to 1e-12."""
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
    for dtype, tolerance in (("float32", 1e-6), ("float64", 1e-12)):
        sparse, dense = _net(dtype), _net(dtype)
        h1 = bp.fit(sparse, Xs, D, epochs=3, batch_size=8, seed=2)
        h2 = bp.fit(dense, Xs.toarray(), D, epochs=3, batch_size=8, seed=2)
        np.testing.assert_allclose(sparse.params, dense.params, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(h1.loss, h2.loss, rtol=tolerance)
        np.testing.assert_allclose(sparse.predict(Xs), dense.predict(Xs.toarray()), atol=tolerance)


def test_bad_sample_weight_and_sparse_shape_are_named() -> None:
    with pytest.raises(ValueError, match=r"sample_weight must be 40 finite values"):
        bp.fit(_net(), X, D, sample_weight=np.ones(39))
    with pytest.raises(ValueError, match=r"sample_weight must be 40 finite values"):
        bp.fit(_net(), X, D, sample_weight=np.r_[np.ones(39), np.nan])
    with pytest.raises(ValueError, match=r"X must have shape \(n, N_0\) = \(n, 3\)"):
        bp.fit(_net(), sp.csr_matrix(np.ones((40, 4))), D)


def test_divergence_error_carries_the_loss() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(bp.DivergenceError) as caught:
            bp.fit(_net(), X * 1e3, D, optimizer=opt.SGD(learning_rate=1e8), epochs=5, seed=0)
    error = caught.value
    assert error.loss is not None and f"the loss became {error.loss!r}" in str(error)
