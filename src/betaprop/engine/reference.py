"""The seed's steps written literally: one example at a time, loops over neurons j and r.

Slow on purpose. This module is for reading beside the seed document, and it is the
oracle that the fast engine (``network.py``) must equal to 1e-12 in float64. It uses the
network's weights, its activation functions f and f' and the loss's dE/dy applied to one
number at a time, and nothing else of the engine: no fused output error, no batch matrices.

    Step 2:  s_j^q = sum_r w_jr^q y_r^{q-1} + b_j^q,   y_j^q = f(s_j^q)
    Step 3:  delta_j^Q = (dE/dy_j^Q) * f'(s_j^Q)        (dE/dy_j = y_j - d_j: squared error)
    Step 4:  beta_j^q = f'(z_j^q) * sum_r delta_r^{q+1} w_rj^{q+1},  q = Q-1 downto 1
    Step 5:  dE/dw_jr^q = beta_j^q y_r^{q-1},   dE/db_j^q = beta_j^q

Softmax is the one activation that is not element-wise: its step 3 goes through the full
Jacobian, dy_r/ds_j = y_r (1[r = j] - y_j), so that the literal chain
(-d_r / y_r for cross-entropy) can be compared with the engine's fused y - d.
"""

from __future__ import annotations

import math

import numpy as np

from .network import Network

__all__ = ["forward_example", "backward_example", "gradients"]


def _one(function, *values: float) -> float:  # type: ignore[no-untyped-def]
    """Apply an array function ``function(*arrays, out)`` to single numbers."""
    out = np.empty((1, 1))
    function(*(np.array([[v]]) for v in values), out)
    return float(out[0, 0])


def _f(net: Network, q: int, s: list[float]) -> list[float]:
    """y^q = f(s^q), one neuron at a time (softmax: over the whole layer)."""
    f = net.f[q]
    if not f.elementwise:  # softmax: y_j = e^{s_j} / sum_r e^{s_r}
        top = max(s)
        e = [math.exp(v - top) for v in s]
        return [v / sum(e) for v in e]
    return [_one(f.forward, v) for v in s]


def _f_prime(net: Network, q: int, s_j: float, y_j: float) -> float:
    """f'(s_j^q) for an element-wise activation, one neuron."""
    return _one(net.f[q].derivative, s_j, y_j)


def forward_example(net: Network, x: list[float]) -> tuple[list, list]:
    """Step 2 for one example: lists s[q], y[q] (q = 0..Q) of plain floats."""
    W, b = net.W, net.b
    s: list = [None]
    y: list = [list(map(float, x))]
    for q in range(1, net.Q + 1):
        s_q = []
        for j in range(net.sizes[q]):
            total = float(b[q][j, 0])
            for r in range(net.sizes[q - 1]):
                total += float(W[q][j, r]) * y[q - 1][r]
            s_q.append(total)
        s.append(s_q)
        y.append(_f(net, q, s_q))
    return s, y


def backward_example(net: Network, s: list, y: list, d: list[float]) -> list:
    """Steps 3-4 for one example: the local errors beta[q] (q = 1..Q), plain floats."""
    Q, W = net.Q, net.W
    beta: list = [None] * (Q + 1)
    # Step 3: delta_j^Q = (dE/dy_j) * f'(s_j^Q), for every neuron j of the output layer
    dE_dy = net.loss.output_gradient
    error = [_one(dE_dy, y[Q][j], float(d[j])) for j in range(net.sizes[Q])]
    if not net.f[Q].elementwise:  # softmax: sum_r dE/dy_r dy_r/ds_j
        beta[Q] = [
            sum(error[r] * y[Q][r] * ((r == j) - y[Q][j]) for r in range(net.sizes[Q]))
            for j in range(net.sizes[Q])
        ]
    else:
        beta[Q] = [error[j] * _f_prime(net, Q, s[Q][j], y[Q][j]) for j in range(net.sizes[Q])]
    # Step 4: for q from Q-1 downto 1, beta_j^q = f'(z_j^q) * sum_r beta_r^{q+1} w_rj^{q+1}
    for q in range(Q - 1, 0, -1):
        beta[q] = []
        for j in range(net.sizes[q]):
            back = 0.0
            for r in range(net.sizes[q + 1]):
                back += float(W[q + 1][r, j]) * beta[q + 1][r]
            beta[q].append(back * _f_prime(net, q, s[q][j], y[q][j]))
    return beta


def gradients(net: Network, X: np.ndarray, D: np.ndarray) -> tuple[list, list, float]:
    """Step 5 averaged over the examples of X (n, N_0), D (n, N_Q): (dW, db, mean loss).

    dW[q] has shape (N_q, N_{q-1}) and db[q] (N_q, 1), as the engine's; the loss of each
    example is the loss's own formula applied to this example's s^Q, y^Q alone.
    """
    Q, n = net.Q, len(X)
    dW: list = [None] + [np.zeros((net.sizes[q], net.sizes[q - 1])) for q in range(1, Q + 1)]
    db: list = [None] + [np.zeros((net.sizes[q], 1)) for q in range(1, Q + 1)]
    loss = 0.0
    for x, d in zip(X, D, strict=True):
        s, y = forward_example(net, x)
        beta = backward_example(net, s, y, d)
        column = (np.array(s[Q])[:, None], np.array(y[Q])[:, None], np.array(d, float)[:, None])
        loss += float(net.loss.per_example(*column)[0])
        for q in range(1, Q + 1):
            for j in range(net.sizes[q]):
                for r in range(net.sizes[q - 1]):
                    dW[q][j, r] += beta[q][j] * y[q - 1][r] / n  # dE/dw_jr = beta_j y_r
                db[q][j, 0] += beta[q][j] / n
    return dW, db, loss / n
