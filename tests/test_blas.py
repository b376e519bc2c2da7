"""betaprop.blas: NumPy's own BLAS for y <- a x + y and x <- a x, with a NumPy fallback."""

from __future__ import annotations

import numpy as np
import pytest

from betaprop import blas


def _numpy_uses_scipy_openblas() -> bool:
    config = np.show_config(mode="dicts")
    return config["Build Dependencies"]["blas"].get("name") == "scipy-openblas"


def test_found_wherever_numpy_ships_scipy_openblas() -> None:
    assert blas.available() == _numpy_uses_scipy_openblas()


def test_binds_the_library_numpy_loaded_not_a_second_pool() -> None:
    from threadpoolctl import threadpool_info

    before = [p["filepath"] for p in threadpool_info()]
    blas._load()
    x = np.ones(blas.MIN_SIZE, dtype=np.float32)
    blas.scal(0.5, x)
    assert [p["filepath"] for p in threadpool_info()] == before
    assert np.all(x == 0.5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [5, blas.MIN_SIZE - 1, blas.MIN_SIZE, 100_003])
def test_axpy_and_scal_equal_numpy(dtype: str, size: int) -> None:
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    y = rng.standard_normal(size).astype(dtype)
    a = -0.37
    expected = (y.astype(np.float64) + a * x.astype(np.float64)) * 1.7
    out = y.copy()
    blas.axpy(a, x, out, np.empty_like(x))
    blas.scal(1.7, out)
    # within a few units in the last place (a BLAS may fuse the multiply and the add)
    eps = np.finfo(dtype).eps
    scale = (np.abs(y) + np.abs(a * x)) * 1.7
    assert np.all(np.abs(out - expected) <= 4 * eps * scale)
    assert out.dtype == np.dtype(dtype)


def test_short_arrays_use_numpy_exactly() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(100), rng.standard_normal(100)
    out, h = y.copy(), np.empty(100)
    blas.axpy(0.3, x, out, h)
    assert np.array_equal(out, y + 0.3 * x)  # NumPy's two passes, bit for bit
    assert np.array_equal(h, 0.3 * x)  # the scratch space held the product


@pytest.mark.parametrize("case", ["strided", "mixed dtypes"])
def test_arrays_blas_cannot_take_fall_back_to_numpy(case: str) -> None:
    n = 2 * blas.MIN_SIZE
    rng = np.random.default_rng(2)
    x = rng.standard_normal(n)
    y = rng.standard_normal(n)
    if case == "strided":
        x, y = x[::2], y[::2]
    else:
        x = x.astype(np.float32)
    assert blas._routine("axpy", x, y) is None
    expected = y + 2.0 * x
    blas.axpy(2.0, x, y, np.empty(x.shape, dtype=y.dtype))
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_a_read_only_target_is_refused_as_numpy_refuses_it() -> None:
    y = np.zeros(2 * blas.MIN_SIZE)
    y.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        blas.axpy(2.0, np.ones_like(y), y, np.empty_like(y))
    assert not y.any()


def test_environment_variable_turns_blas_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas, "_routines", None)
    monkeypatch.setenv("BETAPROP_NO_BLAS", "1")
    assert not blas.available()
    x = np.arange(blas.MIN_SIZE, dtype=np.float32)
    blas.scal(2.0, x)
    assert x[-1] == 2.0 * (blas.MIN_SIZE - 1)


def test_a_failing_self_test_disables_the_routines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas, "_routines", None)
    monkeypatch.setattr(blas, "_self_test", lambda routines: False)
    assert blas._load() == {} or not _numpy_uses_scipy_openblas()
