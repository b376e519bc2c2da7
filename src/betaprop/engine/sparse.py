"""The first layer's products for a SciPy sparse input batch y^0 (steps 2 and 5 of layer 1).

Inside the engine W^1 is (N_1, N_0), rows are neurons, as in the seed. SciPy's sparse times
dense kernel reads the dense factor as C-contiguous rows, one per column of the sparse
matrix, and copies any other layout: for step 2 that would be (W^1)^T, (N_0, N_1), a copy
of all of W^1 at every batch. Step 2 instead takes the neurons k at a time: their k rows,
transposed into SciPy's layout (so that the k weights a stored value multiplies lie side
by side), then one SciPy product, s^1_{j,i} = sum over the stored r of w^1_{jr} y^0_{ri}
for those neurons j and every example i. A small W^1 (at most ``SMALL`` weights) is one
block. A larger one is copied no more than the pass's own output s^1 (N_1 x n) at a time,
k N_0 <= N_1 n: many examples (prediction, a full-batch pass) get blocks, and where fewer
than 4 rows would fit (a mini-batch) each neuron reads its own row in place (k = 1, no
copy). Step 5 gives row j of dE/dW^1 as y^0 (beta^1_j)^T, one SciPy product per neuron,
or one product for a small W^1. Neither step holds a copy of a large W^1, and the work
grows with the stored values, not with N_0. Measured in docs/performance.md ("Sparse
input").
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SMALL", "product", "gradient"]

Array = np.ndarray

SMALL = 1 << 18  # weights of a W^1 copied or multiplied whole (2 MiB in float64)


def product(W: Array, x: Any, out: Array) -> None:
    """Step 2 of layer 1, out = W x for a sparse x (N_0, n); out is (N_1, n)."""
    rows = x.T.tocsr()  # row i = example i (for the CSC transpose of CSR rows: no copy)
    # neurons per block: all of a small W^1, else rows no larger than s^1 (N_1 x n)
    k = W.shape[0] if W.size <= SMALL else out.size // W.shape[1]
    if k < 4:  # too few rows to pay for the copy: one neuron at a time, its row in place
        k = 1
    for j in range(0, W.shape[0], k):  # neurons j..j+k-1: their rows as (N_0, k), SciPy's
        # layout (k = 1: a view, no copy), times y^0; one block alive at a time
        out[j : j + k] = (rows @ np.ascontiguousarray(W[j : j + k].T)).T


def gradient(beta: Array, x: Any, out: Array) -> None:
    """Step 5 of layer 1, out = beta x^T for a sparse x (N_0, n); out is (N_1, N_0)."""
    columns = x.tocsc()  # column i = example i (the CSC transpose of CSR rows: no copy)
    if out.size <= SMALL:  # one product: (N_0, n) times (n, N_1), transposed into out
        out[...] = (columns @ beta.T).T
        return
    for j in range(beta.shape[0]):  # row j of dE/dW^1 = y^0 (beta^1_j)^T
        out[j] = columns @ beta[j]
