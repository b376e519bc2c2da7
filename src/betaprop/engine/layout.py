"""Where each parameter lives in the flat array: weights, then biases, then gamma and shift.

``params`` (and its twin ``grads``) is one flat array, so an optimizer step, L2, L-BFGS,
saving and the all-reduce each see one buffer; these views give the per-layer names of the
seed: W[q] (N_q, N_{q-1}), b[q] (N_q, 1), and for normalised layers gamma[q], shift[q].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["layer_views", "normalized_views"]

Array = np.ndarray


def layer_views(
    flat: Array, sizes: Sequence[int], normalized: Sequence[bool]
) -> tuple[list, list, list, list]:
    """Views W[q], b[q], gamma[q], shift[q] into ``flat``; index 0 (the input) is None.

    gamma[q] and shift[q] are None where layer q is not normalised.
    """
    Q = len(sizes) - 1
    W: list = [None]
    b: list = [None]
    start = 0
    for q in range(1, Q + 1):
        size = sizes[q] * sizes[q - 1]
        W.append(flat[start : start + size].reshape(sizes[q], sizes[q - 1]))
        start += size
    for q in range(1, Q + 1):
        b.append(flat[start : start + sizes[q]].reshape(sizes[q], 1))
        start += sizes[q]
    gamma, shift = normalized_views(flat[start:], sizes, normalized)
    return W, b, gamma, shift


def normalized_views(
    flat: Array, sizes: Sequence[int], normalized: Sequence[bool]
) -> tuple[list, list]:
    """Two halves of ``flat`` as (N_q, 1) views for the normalised layers (None elsewhere)."""
    Q = len(sizes) - 1
    first: list = [None] * (Q + 1)
    second: list = [None] * (Q + 1)
    half, start = len(flat) // 2, 0
    for q in range(1, Q + 1):
        if normalized[q]:
            N = sizes[q]
            first[q] = flat[start : start + N].reshape(N, 1)
            second[q] = flat[half + start : half + start + N].reshape(N, 1)
            start += N
    return first, second
