"""The first layer's products for a SciPy sparse input batch y^0 (steps 2 and 5 of layer 1).

Inside the engine W^1 is (N_1, N_0), rows are neurons, as in the seed; SciPy's sparse-dense
product wants the dense factor C-contiguous as (N_0, N_1), so ``W^1 @ y^0`` through SciPy
would copy all of W^1 on every batch. Here each example's stored inputs pick their columns
of W^1 instead: s^1_i = sum over the stored r of W^1[:, r] y^0_ri, one gather and one
segmented sum for the batch, proportional to the stored values, not to N_0. A batch with
more stored values than W^1 has columns (prediction of many rows) takes SciPy's product with
one transposed copy of W^1 instead, the cheaper of the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["product", "gradient"]

Array = np.ndarray


def product(W: Array, x: Any, out: Array) -> None:
    """Step 2 of layer 1, out = W x for a sparse x (N_0, n); out is (N_1, n)."""
    x = x.tocsc()  # column i = example i (the transpose of CSR rows: no copy)
    if x.nnz > W.shape[1]:  # more stored values than inputs (a large batch, prediction):
        out[...] = (x.T @ np.ascontiguousarray(W.T)).T  # one copy of W^1 in SciPy's layout
        return
    counts = np.diff(x.indptr)
    stored = counts > 0
    if not stored.any():
        out.fill(0.0)
        return
    terms = W[:, x.indices]  # (N_1, stored values): the columns r the examples use
    terms *= x.data
    out[:, stored] = np.add.reduceat(terms, x.indptr[:-1][stored], axis=1)  # sum per example
    out[:, ~stored] = 0.0


def gradient(beta: Array, x: Any, out: Array) -> None:
    """Step 5 of layer 1, out = beta x^T for a sparse x (N_0, n); out is (N_1, N_0)."""
    out[...] = (x @ beta.T).T  # SciPy: sparse (N_0, n) times dense (n, N_1)
