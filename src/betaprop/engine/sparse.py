"""The first layer's products for a SciPy sparse input batch y^0 (steps 2 and 5 of layer 1).

Inside the engine W^1 is (N_1, N_0), rows are neurons, as in the seed. SciPy's sparse times
dense kernel reads the dense factor as C-contiguous rows, one per column of the sparse
matrix, and copies any other layout: for step 2 that would be (W^1)^T, (N_0, N_1), a copy
of all of W^1 at every batch. A large W^1 is therefore never copied: each neuron j takes
one SciPy product with its own row, s^1_j = (y^0)^T w^1_j, which is the seed's sum
s^1_{j,i} = sum over the stored r of w^1_{jr} y^0_{ri} for every example i at once; step 5
likewise gives row j of dE/dW^1 as y^0 (beta^1_j)^T. Memory is one row at a time, and the
work grows with the stored values, not with N_0. A small W^1 (at most ``SMALL`` weights) is
copied instead, for one SciPy product per step: there the copy costs less than N_1
separate products. Measured in docs/performance.md ("Sparse input").
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SMALL", "product", "gradient"]

Array = np.ndarray

SMALL = 1 << 18  # weights in W^1 (2 MiB in float64) up to which a transposed copy pays


def product(W: Array, x: Any, out: Array) -> None:
    """Step 2 of layer 1, out = W x for a sparse x (N_0, n); out is (N_1, n)."""
    rows = x.T.tocsr()  # row i = example i (for the CSC transpose of CSR rows: no copy)
    if W.size <= SMALL:  # one product with (W^1)^T, copied into SciPy's layout
        out[...] = (rows @ np.ascontiguousarray(W.T)).T
        return
    for j in range(W.shape[0]):  # neuron j: s^1_j = (y^0)^T w^1_j over the stored values
        out[j] = rows @ W[j]


def gradient(beta: Array, x: Any, out: Array) -> None:
    """Step 5 of layer 1, out = beta x^T for a sparse x (N_0, n); out is (N_1, N_0)."""
    columns = x.tocsc()  # column i = example i (the CSC transpose of CSR rows: no copy)
    if out.size <= SMALL:  # one product: (N_0, n) times (n, N_1), transposed into out
        out[...] = (columns @ beta.T).T
        return
    for j in range(beta.shape[0]):  # row j of dE/dW^1 = y^0 (beta^1_j)^T
        out[j] = columns @ beta[j]
