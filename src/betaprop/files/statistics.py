"""Column statistics in float64 whatever the table's dtype: the means and scales of
``Preprocessing``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .datasets import DataError

__all__ = ["column_statistics"]

Array = np.ndarray

_BLOCK_CELLS = 2**20  # numbers of a float32 table converted to float64 at a time (8 MiB)


def column_statistics(X: Array, names: Sequence[str]) -> tuple[Array, Array]:
    """The mean and standard deviation (ddof 0) of every column of X (n, p), in float64
    whatever X's dtype: float32 squares overflow from 1.9e19 on, so a float32 table of
    numbers up to ``MAX_MAGNITUDE`` would get an infinite scale (and a model file that
    cannot be written). A float32 X is taken in blocks of rows, never one float64 copy.
    Raises a one-line ``DataError`` naming the column whose statistic is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        if X.dtype == np.float64 or len(X) == 0:
            mean, std = X.mean(axis=0), X.std(axis=0)
        else:
            mean = X.sum(axis=0, dtype=np.float64) / len(X)
            squares = np.zeros(X.shape[1])
            rows = max(1, _BLOCK_CELLS // max(X.shape[1], 1))
            for start in range(0, len(X), rows):
                block = X[start : start + rows].astype(np.float64) - mean
                squares += np.square(block, out=block).sum(axis=0)
            std = np.sqrt(squares / len(X))
    bad = ~(np.isfinite(mean) & np.isfinite(std))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        largest = np.abs(X[:, j]).max()
        raise DataError(
            f"column {names[j]!r}: its mean and standard deviation must be finite, got "
            f"{mean[j]:g} and {std[j]:g} (values up to {largest:g} in magnitude); rescale the "
            "column"
        )
    return mean, std
