"""Inputs are never modified, and their memory layout does not change the result.

Read-only, Fortran-ordered, non-contiguous and memory-mapped X (and D, and validation
data) must train bit for bit like a C-contiguous copy, and be unchanged afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import betaprop as bp
from betaprop import optimizers as opt

RNG = np.random.default_rng(4)


def read_only(A: np.ndarray, tmp_path: Path) -> np.ndarray:
    B = A.copy()
    B.setflags(write=False)
    return B


def fortran(A: np.ndarray, tmp_path: Path) -> np.ndarray:
    return np.asfortranarray(A)


def strided(A: np.ndarray, tmp_path: Path) -> np.ndarray:
    """A view with gaps between rows and between columns (every other element)."""
    wide = np.zeros((2 * A.shape[0], 2 * A.shape[1]), dtype=A.dtype)
    wide[::2, ::2] = A
    return wide[::2, ::2]


def memory_mapped(A: np.ndarray, tmp_path: Path) -> np.ndarray:
    path = tmp_path / f"array-{A.shape[0]}x{A.shape[1]}-{A.dtype}.npy"
    np.save(path, A)
    return np.load(path, mmap_mode="r")


def memory_mapped_fortran(A: np.ndarray, tmp_path: Path) -> np.ndarray:
    path = tmp_path / f"array-f-{A.shape[0]}x{A.shape[1]}-{A.dtype}.npy"
    np.save(path, np.asfortranarray(A))
    return np.load(path, mmap_mode="r")


LAYOUTS: dict[str, Callable[[np.ndarray, Path], np.ndarray]] = {
    "read-only": read_only,
    "fortran": fortran,
    "strided": strided,
    "memmap": memory_mapped,
    "memmap-fortran": memory_mapped_fortran,
}


def train(X, D, validation, dtype: str) -> tuple[np.ndarray, bp.History]:
    net = bp.Network([6, 9, 3], activation="tanh", loss="cross_entropy", dtype=dtype, seed=2)
    history = bp.fit(
        net,
        X,
        D,
        optimizer=opt.Adam(0.01),
        epochs=3,
        batch_size=16,
        seed=3,
        validation_data=validation,
        early_stopping=5,
    )
    return net.params, history


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("data_dtype", ["float64", "float32"])
@pytest.mark.parametrize("net_dtype", ["float32", "float64"])
def test_every_layout_trains_like_a_c_contiguous_copy_and_is_left_unchanged(
    tmp_path: Path, layout: str, data_dtype: str, net_dtype: str
) -> None:
    X = RNG.normal(size=(70, 6)).astype(data_dtype)
    D = np.eye(3, dtype=data_dtype)[RNG.integers(0, 3, 70)]
    Xv = RNG.normal(size=(20, 6)).astype(data_dtype)
    Dv = np.eye(3, dtype=data_dtype)[RNG.integers(0, 3, 20)]
    originals = [A.copy() for A in (X, D, Xv, Dv)]
    arrays = [LAYOUTS[layout](A, tmp_path) for A in (X, D, Xv, Dv)]
    if layout == "fortran":
        assert arrays[0].flags.f_contiguous and not arrays[0].flags.c_contiguous
    if layout == "strided":
        assert not arrays[0].flags.c_contiguous and not arrays[0].flags.f_contiguous
    if layout.startswith("memmap"):
        assert isinstance(arrays[0], np.memmap)
    expected_params, expected_history = train(
        np.ascontiguousarray(X), np.ascontiguousarray(D), (Xv.copy(), Dv.copy()), net_dtype
    )
    params, history = train(arrays[0], arrays[1], (arrays[2], arrays[3]), net_dtype)
    np.testing.assert_array_equal(params, expected_params)
    assert history.loss == expected_history.loss
    assert history.val_loss == expected_history.val_loss
    for original, given in zip(originals, arrays, strict=True):
        np.testing.assert_array_equal(given, original)
        assert given.dtype == original.dtype


def test_integer_inputs_and_lists_train_like_floats() -> None:
    X = RNG.integers(-3, 4, size=(40, 6))
    D = np.eye(3, dtype=np.int64)[RNG.integers(0, 3, 40)]
    X_before, D_before = X.copy(), D.copy()
    params, history = train(X, D, None, "float64")
    expected, expected_history = train(X.astype(float), D.astype(float), None, "float64")
    np.testing.assert_array_equal(params, expected)
    assert history.loss == expected_history.loss
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(D, D_before)
    as_lists, _ = train(X.tolist(), D.tolist(), None, "float64")
    np.testing.assert_array_equal(as_lists, expected)


def test_predict_and_evaluate_leave_inputs_unchanged(tmp_path: Path) -> None:
    net = bp.Network([6, 9, 3], activation="tanh", loss="cross_entropy", seed=2)
    X = RNG.normal(size=(30, 6))
    D = np.eye(3)[RNG.integers(0, 3, 30)]
    expected = net.predict(X.copy())
    for layout in LAYOUTS.values():
        given = layout(X, tmp_path)
        np.testing.assert_array_equal(net.predict(given), expected)
        assert bp.evaluate(net, given, layout(D, tmp_path)) == bp.evaluate(net, X, D)
        np.testing.assert_array_equal(given, X)
