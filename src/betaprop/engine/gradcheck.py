"""Verify steps 3-5 by central finite differences in float64.

For every parameter p of the flat array, (E(p + h) - E(p - h)) / 2h is compared with the
gradient that backpropagation computed. The report gives, per layer, the maximum
element-wise and the norm-wise relative error of dW^q and db^q (and of dgamma^q, dshift^q
for normalised layers) separately.

Differences cannot resolve a gradient below their rounding noise, about eps |E| / h. Where
both gradients of a block are below that floor (the bias of a normalised layer, whose true
gradient is exactly 0: the batch mean removes it), the block is a zero and its error is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .network import Network

__all__ = ["gradcheck", "GradcheckReport", "LayerError"]


@dataclass(frozen=True)
class LayerError:
    """Relative errors of one block (W^q or b^q)."""

    layer: int
    name: str  # "W" or "b"
    max_elementwise: float  # max_i |g_i - n_i| / max(|g_i| + |n_i|, floor)
    normwise: float  # ||g - n|| / max(||g|| + ||n||, floor)


@dataclass(frozen=True)
class GradcheckReport:
    """Per-layer errors, and whether every norm-wise error is within ``tolerance``."""

    rows: list[LayerError]
    tolerance: float

    @property
    def max_error(self) -> float:
        return max(row.normwise for row in self.rows)

    @property
    def passed(self) -> bool:
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        lines = [f"{'layer':>5} {'param':>5} {'max elementwise':>16} {'normwise':>12}"]
        for row in self.rows:
            lines.append(
                f"{row.layer:>5} {row.name:>5} {row.max_elementwise:>16.3e} {row.normwise:>12.3e}"
            )
        verdict = "passed" if self.passed else "FAILED"
        lines.append(
            f"{verdict}: max norm-wise error {self.max_error:.3e} (tolerance {self.tolerance:.0e})"
        )
        return "\n".join(lines)


def _relative(
    g: np.ndarray, n: np.ndarray, noise: float, floor: float = 1e-12
) -> tuple[float, float]:
    if np.abs(g).max() <= noise and np.abs(n).max() <= noise:
        return 0.0, 0.0  # both zero, as far as differences can tell
    elementwise = np.abs(g - n) / np.maximum(np.abs(g) + np.abs(n), floor)
    normwise = np.linalg.norm(g - n) / max(np.linalg.norm(g) + np.linalg.norm(n), floor)
    return float(elementwise.max()), float(normwise)


def numerical_gradient(net: Network, X: np.ndarray, D: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the mean loss over every parameter (net must be float64)."""
    x, d = X.T, D.T
    numeric = np.empty_like(net.params)
    for i in range(net.n_params):
        saved = net.params[i]
        net.params[i] = saved + h
        net.forward_columns(x, training=True, new_masks=False)
        plus = net.loss_value(d)
        net.params[i] = saved - h
        net.forward_columns(x, training=True, new_masks=False)
        minus = net.loss_value(d)
        net.params[i] = saved
        numeric[i] = (plus - minus) / (2.0 * h)
    return numeric


def gradcheck(
    net: Network, X: np.ndarray, D: np.ndarray, h: float = 1e-6, tolerance: float = 1e-7
) -> GradcheckReport:
    """Compare backpropagation's gradients with central differences, in float64.

    The check runs on a float64 copy of ``net`` (the network itself is not changed).
    X has shape (n, N_0), D (n, N_Q). ``passed`` is true when every norm-wise relative
    error is at most ``tolerance``.
    """
    twin = net.astype("float64")
    X = twin.check_X(X)
    D = twin.check_D(D, X.shape[0])
    loss = twin.loss_and_gradients(X, D)
    noise = 100.0 * np.finfo(np.float64).eps * max(abs(loss), 1.0) / h
    analytic = twin.grads.copy()
    numeric = numerical_gradient(twin, X, D, h)
    numerical, backprop = twin.layer_views(numeric), twin.layer_views(analytic)
    rows = []
    for q in range(1, twin.Q + 1):
        for name, g, n in zip(("W", "b", "gamma", "shift"), backprop, numerical, strict=True):
            if g[q] is not None:
                rows.append(LayerError(q, name, *_relative(g[q], n[q], noise)))
    return GradcheckReport(rows, tolerance)
