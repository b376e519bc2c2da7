"""Input checks at the engine's boundary: arrays, layer sizes, dtypes, activation lists.

Kernels never validate; the public methods of ``Network`` and ``fit`` call these first
(``Network`` inherits ``check_X`` and ``check_D`` from ``InputChecks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse

from .activations import get_activation
from .activations import names as activation_names

__all__ = [
    "DTYPES",
    "as_matrix",
    "as_sparse_rows",
    "check_sizes",
    "check_dtype",
    "hidden_names",
    "weights_row",
    "finite_weights",
    "per_hidden",
    "choice",
    "rate",
    "residual_flags",
    "InputChecks",
]

Array = np.ndarray
DTYPES = ("float32", "float64")


def as_matrix(A: Any, name: str, dtype: str) -> Array:
    """A 2-D finite array of ``dtype`` (a copy only where the dtype differs)."""
    if hasattr(A, "dtypes") and hasattr(A, "columns"):  # pandas, nullable Int64/boolean too
        from ..files.frames import frame_numbers

        A = frame_numbers(A, name)
    A = np.asarray(A)
    if A.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {A.dtype}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, features), got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {A.shape}")
    A = A.astype(dtype, copy=False)
    # one pass without a temporary first (the sum of finite values is finite unless it
    # overflows); the element-wise test runs only when that sum is not finite
    if not np.isfinite(np.sum(A)) and not np.isfinite(A).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
        raise ValueError(f"{name} must be finite, got {float(A[bad])!r} at index {bad}")
    return A


def as_sparse_rows(A: Any, name: str, dtype: str) -> Any:
    """A SciPy sparse matrix as CSR of ``dtype`` (rows are examples), with finite values."""
    A = scipy.sparse.csr_matrix(A, dtype=dtype)
    if A.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {A.shape}")
    if not np.isfinite(A.data).all():
        raise ValueError(f"{name} must be finite, got a non-finite stored value")
    return A


def finite_weights(weights: Any, n: int, name: str = "weights") -> Array:
    """Per-example weights as n finite float64 values, or a ValueError naming ``name``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all():
        raise ValueError(f"{name} must be {n} finite values (one per example), got {weights!r}")
    return w


def weights_row(weights: Any, n: int, dtype: str) -> Array:
    """Per-example weights as a finite (1, n) row of ``dtype``."""
    return finite_weights(weights, n).astype(dtype).reshape(1, n)


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    try:
        values = tuple(sizes)
    except TypeError:
        raise TypeError(
            f"sizes must be a sequence of layer sizes (N_0, ..., N_Q), got {sizes!r}"
        ) from None
    if len(values) < 2:
        raise ValueError(f"sizes must name at least 2 layers (N_0, ..., N_Q), got {sizes!r}")
    for N in values:
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
            raise ValueError(f"sizes must be integers >= 1, got {sizes!r}")
    return tuple(int(N) for N in values)


def check_dtype(dtype: object) -> str:
    name = np.dtype(dtype).name if isinstance(dtype, (type, np.dtype)) else dtype
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return str(name)


def hidden_names(activation: str | Sequence[str], Q: int) -> list[str]:
    """The Q - 1 hidden layers' activation names, from one name or a list."""

    def check(name: Any) -> None:
        if get_activation(name).output_only:
            raise ValueError(
                "activation of a hidden layer must be one of "
                f"{activation_names(hidden_only=True)}, got {name!r} (output layer only)"
            )

    return per_hidden("activation", activation, Q, check, noun="name")


def per_hidden(
    name: str, value: Any, Q: int, check: Callable[[Any], None], noun: str = "value"
) -> list[Any]:
    """One setting per hidden layer (a list of Q - 1) from one value or a list of them.

    ``check(v)`` raises a ValueError for a value that is not accepted.
    """
    if value is None or isinstance(value, (str, int, float, np.number)):
        values = [value] * (Q - 1)
    else:
        values = list(value)
        if len(values) != Q - 1:
            raise ValueError(
                f"{name} must be one {noun} or a list of Q-1 = {Q - 1} {noun}s (one per hidden "
                f"layer), got {len(values)}: {values!r}"
            )
    for v in values:
        check(v)
    return values


def choice(name: str, choices: Sequence[Any]) -> Callable[[Any], None]:
    """A check for ``per_hidden``: one of ``choices``."""

    def check(v: Any) -> None:
        if v not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")

    return check


def rate(name: str) -> Callable[[Any], None]:
    """A check for ``per_hidden``: a rate in [0, 1) (dropout)."""

    def check(v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v < 1:
            raise ValueError(f"{name} must be a rate in [0, 1), got {v!r}")

    return check


def residual_flags(residual: Any, sizes: Sequence[int]) -> list[bool]:
    """Per hidden layer whether it is residual: True alone means where N_q = N_{q-1}."""
    Q = len(sizes) - 1
    if isinstance(residual, (bool, np.bool_)):
        return [bool(residual) and sizes[q] == sizes[q - 1] for q in range(1, Q)]
    flags = per_hidden("residual", residual, Q, choice("residual", (False, True)))
    for q, on in enumerate(flags, start=1):
        if on and sizes[q] != sizes[q - 1]:
            raise ValueError(
                f"residual layer {q} needs N_{q} = N_{q - 1}, got N_{q} = {sizes[q]} "
                f"and N_{q - 1} = {sizes[q - 1]}"
            )
    return [bool(on) for on in flags]


def check_seed(seed: Any) -> int | None:
    """The seed as an int >= 0 or None, or a clear error naming ``seed``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    return int(seed)


class InputChecks:
    """A network's checks of its inputs X and targets D (``Network`` inherits them)."""

    sizes: tuple[int, ...]
    dtype: str

    def check_X(self, X: Any) -> Any:
        """X as a finite (n, N_0) array of this network's dtype, or a clear error.

        A SciPy sparse X stays sparse (CSR of this dtype).
        """
        if scipy.sparse.issparse(X):
            X = as_sparse_rows(X, "X", self.dtype)
        else:
            X = as_matrix(X, "X", self.dtype)
        if X.shape[1] != self.sizes[0]:
            raise ValueError(
                f"X must have shape (n, N_0) = (n, {self.sizes[0]}), got {X.shape} "
                f"({X.shape[1]} features for N_0 = {self.sizes[0]} inputs)"
            )
        return X

    def check_D(self, D: Array, n: int, name: str = "D") -> Array:
        """Targets D as a finite (n, N_Q) array of this network's dtype, or a clear error."""
        D = as_matrix(D, name, self.dtype)
        if D.shape != (n, self.sizes[-1]):
            raise ValueError(
                f"{name} must have shape (n, N_Q) = ({n}, {self.sizes[-1]}), got {D.shape}"
            )
        return D
