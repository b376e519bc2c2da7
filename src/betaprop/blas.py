"""NumPy's own BLAS for the whole-array updates of step 6: y <- a x + y and x <- a x.

NumPy runs an element-wise operation on one core, while its BLAS library runs on all of
them. An optimizer step is a few passes over every parameter, and two of the commonest
are BLAS level-1 routines: axpy (y <- a x + y, one pass where NumPy needs a product into
scratch space and a sum) and scal (x <- a x). Called directly, they run on every core
that NumPy's matrix products use.

The library is the one NumPy itself loaded (found with threadpoolctl, its routines called
through ctypes): one thread pool, not a second one (SciPy's BLAS) fighting NumPy's for the
cores. Where it cannot be found (a NumPy built against another BLAS, a platform without
it) or for short arrays, where the call costs more than the pass, both functions fall back
to NumPy. Results may differ from the NumPy forms in the last bit (a BLAS may fuse the
multiply and the add), never more.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

__all__ = ["axpy", "scal", "available"]

Array = np.ndarray

# Below this many elements NumPy's pass is as fast as the foreign call (about 2 µs).
MIN_SIZE = 32_768
_LETTER: dict[np.dtype, str] = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
_routines: dict[tuple[str, np.dtype], Any] | None = None


def axpy(a: float, x: Array, y: Array, scratch: Array) -> None:
    """y <- a x + y, in place; ``scratch`` (like x) is used only by the NumPy fallback."""
    f = None if x.size < MIN_SIZE else _routine("axpy", x, y)
    if f is None:
        np.multiply(x, a, out=scratch)
        y += scratch
    else:
        f(x.size, a, x.ctypes.data, 1, y.ctypes.data, 1)


def scal(a: float, x: Array) -> None:
    """x <- a x, in place."""
    f = None if x.size < MIN_SIZE else _routine("scal", x, x)
    if f is None:
        x *= a
    else:
        f(x.size, a, x.ctypes.data, 1)


def available() -> bool:
    """Whether NumPy's BLAS routines were found (for the arrays of at least ``MIN_SIZE``)."""
    return bool(_load())


def _routine(name: str, x: Array, y: Array) -> Any:
    """The BLAS routine for these arrays, or None where NumPy should do the pass."""
    if x.dtype != y.dtype or x.size != y.size:
        return None
    if not (x.flags.c_contiguous and y.flags.c_contiguous and y.flags.writeable):
        return None
    return _load().get((name, x.dtype))


def _load() -> dict[tuple[str, np.dtype], Any]:
    """Bind saxpy/daxpy/sscal/dscal of NumPy's OpenBLAS once, checked on a small example."""
    global _routines
    if _routines is None:
        _routines = {}
        if os.environ.get("BETAPROP_NO_BLAS"):
            return _routines
        try:
            _routines = _bind()
        except Exception:  # any failure to find or bind: NumPy does the passes
            _routines = {}
    return _routines


def _bind() -> dict[tuple[str, np.dtype], Any]:
    from threadpoolctl import threadpool_info

    numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
    paths = [
        pool["filepath"]
        for pool in threadpool_info()
        if pool.get("internal_api") == "openblas"
        and os.path.basename(pool.get("filepath", "")).startswith("libscipy_openblas")
        and os.path.realpath(pool["filepath"]).startswith(os.path.realpath(numpy_dir))
    ]
    if not paths:
        return {}
    library = ctypes.CDLL(paths[0])
    # scipy-openblas64 (NumPy's wheels) names its CBLAS scipy_cblas_saxpy64_, with 64-bit
    # integers; the 32-bit-integer build names it scipy_cblas_saxpy.
    integers = {"64_": ctypes.c_int64, "": ctypes.c_int32}
    suffix = next((s for s in integers if hasattr(library, f"scipy_cblas_saxpy{s}")), None)
    if suffix is None:
        return {}
    integer = integers[suffix]
    routines: dict[tuple[str, np.dtype], Any] = {}
    for dtype, letter in _LETTER.items():
        real = ctypes.c_float if letter == "s" else ctypes.c_double
        axpy_ = getattr(library, f"scipy_cblas_{letter}axpy{suffix}")
        axpy_.argtypes = [integer, real, ctypes.c_void_p, integer, ctypes.c_void_p, integer]
        axpy_.restype = None
        scal_ = getattr(library, f"scipy_cblas_{letter}scal{suffix}")
        scal_.argtypes = [integer, real, ctypes.c_void_p, integer]
        scal_.restype = None
        routines[("axpy", dtype)] = axpy_
        routines[("scal", dtype)] = scal_
    if not _self_test(routines):
        return {}
    return routines


def _self_test(routines: dict[tuple[str, np.dtype], Any]) -> bool:
    """The bound routines give NumPy's answer on a small example (else they are not used)."""
    for dtype in _LETTER:
        x = np.arange(1, 8).astype(dtype)
        y = np.full(7, 0.5, dtype=dtype)
        routines[("axpy", dtype)](7, 2.0, x.ctypes.data, 1, y.ctypes.data, 1)
        routines[("scal", dtype)](7, 0.25, y.ctypes.data, 1)
        if not np.array_equal(y, (2.0 * np.arange(1.0, 8.0) + 0.5) * 0.25):
            return False
    return True
