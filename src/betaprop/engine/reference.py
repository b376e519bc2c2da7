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

Batch normalisation needs the whole batch (mu^q and sigma^q are means over the examples),
so a network with normalisation or dropout goes through ``batch_pass``: the same steps,
layer by layer over all n examples i, with one extra loop per formula (see
``engine.normalization``)::

    Step 2:  mu_j = (1/n) sum_i s_ji,   sigma_j = sqrt((1/n) sum_i (s_ji - mu_j)^2 + eps)
             xhat_ji = (s_ji - mu_j) / sigma_j,   u_ji = gamma_j xhat_ji + shift_j
             y_ji = f(u_ji) m_ji                  (m_ji: the dropout mask m / (1 - p))
    Step 4:  e_ji = f'(u_ji) m_ji sum_r beta_ri^{q+1} w_rj^{q+1}    (the error at u)
             dE/dgamma_j = (1/n) sum_i e_ji xhat_ji,   dE/dshift_j = (1/n) sum_i e_ji
             beta_ji = (gamma_j / sigma_j) (e_ji - (1/n) sum_k e_jk
                                             - xhat_ji (1/n) sum_k e_jk xhat_jk)

Each layer's operations (``net.ops[q]``, ``engine.layers``) write their own literal form
(``reference_forward`` / ``reference_backward``), so layer normalisation and residual layers
are transcribed the same way (see those modules for their formulas).

beta here is per example (the seed's scale, no 1/n), as in ``backward_example``; step 5
divides by n. The masks are given (``masks[q]``, (N_q, n)), e.g. the fast engine's
``net.workspace(n).mask[q]`` after its training pass, so that both use the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .network import Network

__all__ = ["forward_example", "backward_example", "gradients", "batch_pass", "BatchPass"]

EPS = 1e-5  # as engine.normalization.EPS (torch's default); a test checks they are equal


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


def _output_delta(net: Network, s: list[float], y: list[float], d: list[float]) -> list[float]:
    """Step 3 for one example: delta_j^Q = (dE/dy_j) * f'(s_j^Q), every output neuron j."""
    Q, N = net.Q, net.sizes[net.Q]
    dE_dy = net.loss.output_gradient
    error = [_one(dE_dy, y[j], float(d[j])) for j in range(N)]
    if not net.f[Q].elementwise:  # softmax: sum_r dE/dy_r dy_r/ds_j
        return [sum(error[r] * y[r] * ((r == j) - y[j]) for r in range(N)) for j in range(N)]
    return [error[j] * _f_prime(net, Q, s[j], y[j]) for j in range(N)]


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
    beta[Q] = _output_delta(net, s[Q], y[Q], d)
    # Step 4: for q from Q-1 downto 1, beta_j^q = f'(z_j^q) * sum_r beta_r^{q+1} w_rj^{q+1}
    for q in range(Q - 1, 0, -1):
        beta[q] = []
        for j in range(net.sizes[q]):
            back = 0.0
            for r in range(net.sizes[q + 1]):
                back += float(W[q + 1][r, j]) * beta[q + 1][r]
            beta[q].append(back * _f_prime(net, q, s[q][j], y[q][j]))
    return beta


def gradients(
    net: Network, X: np.ndarray, D: np.ndarray, masks: list | None = None
) -> tuple[list, list, float]:
    """Step 5 averaged over the examples of X (n, N_0), D (n, N_Q): (dW, db, mean loss).

    dW[q] has shape (N_q, N_{q-1}) and db[q] (N_q, 1), as the engine's; the loss of each
    example is the loss's own formula applied to this example's s^Q, y^Q alone. A network
    with batch normalisation or dropout goes through ``batch_pass`` (a training pass; the
    dropout ``masks`` are then required).
    """
    if any(len(ops) > 2 for ops in net.ops):  # more than s^q = W^q y^{q-1} + b^q, y^q = f(s^q)
        result = batch_pass(net, X, D, masks)
        return result.dW, result.db, result.loss
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


# ------------------------------------------------------------------------------ a whole batch
@dataclass
class BatchPass:
    """Every number of a literal training pass over a batch; per-layer lists (q = 0..Q).

    ``s[q][j][i]``, ``xhat``, ``u``, ``y``, ``beta`` (per example, no 1/n): neuron j,
    example i; ``mu[q][j]``, ``sigma[q][j]`` for batch-normalised layers (per example,
    ``mu[q][i]``, for layer-normalised ones; else None); ``dW``,
    ``db``, ``dgamma``, ``dshift`` as NumPy arrays shaped like the engine's; ``loss`` the mean.
    """

    s: list[Any] = field(default_factory=list)
    mu: list[Any] = field(default_factory=list)
    sigma: list[Any] = field(default_factory=list)
    xhat: list[Any] = field(default_factory=list)
    u: list[Any] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    beta: list[Any] = field(default_factory=list)
    dW: list[Any] = field(default_factory=list)
    db: list[Any] = field(default_factory=list)
    dgamma: list[Any] = field(default_factory=list)
    dshift: list[Any] = field(default_factory=list)
    loss: float = 0.0


def batch_pass(net: Network, X: np.ndarray, D: np.ndarray, masks: list | None = None) -> BatchPass:
    """Steps 2-5 of a training pass over the batch X (n, N_0), D (n, N_Q), layer by layer.

    Each layer's operations (``net.ops[q]``, ``engine.layers``) in their literal form, one
    loop per formula. Batch normalisation uses the batch's mu and sigma (the running
    statistics are neither used nor changed); ``masks[q]`` (N_q, n) holds dropout's
    m / (1 - p) for every layer with a rate p > 0 (required there).
    """
    n = len(X)
    if n < 2 and any(op.min_batch > 1 for ops in net.ops for op in ops):
        raise ValueError(f"batch normalisation needs more than 1 example per batch, got {n}")
    for q in range(1, net.Q):
        if net.p[q] and (masks is None or masks[q] is None):
            raise ValueError(f"masks[{q}] must be given: layer {q} has dropout {net.p[q]}")
    records = _batch_forward(net, X, masks)
    beta, loss = _batch_backward(net, D, records)
    y = [record["y"] for record in records]
    dW, db = _batch_gradients(net, beta, y)

    def each(key: str) -> list:
        return [record.get(key) for record in records]

    s, mu, sigma, xhat, u = each("s"), each("mu"), each("sigma"), each("xhat"), each("u")
    dgamma, dshift = each("dgamma"), each("dshift")
    return BatchPass(s, mu, sigma, xhat, u, y, beta, dW, db, dgamma, dshift, loss)


def _batch_forward(net: Network, X: np.ndarray, masks: list | None) -> list[dict]:
    """Step 2 for every neuron j and example i, layer q's operations in order: per layer a
    record of its quantities by name (s, mu, sigma, xhat, u, f's input a and output fy, y)."""
    n = len(X)
    y0 = [[float(X[i][r]) for i in range(n)] for r in range(net.sizes[0])]
    records: list[dict] = [{"y": y0}]
    for q in range(1, net.Q + 1):
        record = {"below": records[q - 1]["y"], "mask": None if masks is None else masks[q]}
        values = record["below"]
        for op in net.ops[q]:
            values = op.reference_forward(net, q, values, record)
        record["y"] = values
        records.append(record)
    return records


def _batch_backward(net: Network, D: np.ndarray, records: list[dict]) -> tuple[list, float]:
    """Steps 3-4 for every neuron and example: beta (per example, no 1/n), the mean loss."""
    Q, n, sizes = net.Q, len(D), net.sizes
    s, y = records[Q]["s"], records[Q]["y"]
    # Step 3, per example i: delta_ji^Q = (dE/dy_ji) f'(s_ji^Q)  (the seed's, no 1/n)
    beta: list = [None] * (Q + 1)
    beta[Q] = [[0.0] * n for _ in range(sizes[Q])]
    loss = 0.0
    for i in range(n):
        s_i = [s[j][i] for j in range(sizes[Q])]
        y_i = [y[j][i] for j in range(sizes[Q])]
        d_i = [float(D[i][j]) for j in range(sizes[Q])]
        beta_i = _output_delta(net, s_i, y_i, d_i)
        for j in range(sizes[Q]):
            beta[Q][j][i] = beta_i[j]
        column = (np.array(s_i)[:, None], np.array(y_i)[:, None], np.array(d_i)[:, None])
        loss += float(net.loss.per_example(*column)[0])
    for q in range(Q - 1, 0, -1):
        above = net.ops[q + 1]
        # Step 4: the error at y^q, g_ji = sum_r beta_ri^{q+1} w_rj^{q+1} (+ g^{q+1} where
        # layer q+1 is residual), then layer q's operations backwards
        e = above[0].reference_backward(net, q + 1, beta[q + 1], records[q + 1])
        for op in above:
            e = op.reference_skip(net, q + 1, e, records[q + 1])
        for op in net.ops[q][:0:-1]:
            e = op.reference_backward(net, q, e, records[q])
        beta[q] = e
    return beta, loss / n


def _batch_gradients(net: Network, beta: list, y: list) -> tuple[list, list]:
    """Step 5: dE/dw_jr = (1/n) sum_i beta_ji y_ri^{q-1},  dE/db_j = (1/n) sum_i beta_ji."""
    n, sizes = len(y[0][0]), net.sizes
    dW: list = [None]
    db: list = [None]
    for q in range(1, net.Q + 1):
        dW.append(np.zeros((sizes[q], sizes[q - 1])))
        db.append(np.zeros((sizes[q], 1)))
        for j in range(sizes[q]):
            for i in range(n):
                for r in range(sizes[q - 1]):
                    dW[q][j, r] += beta[q][j][i] * y[q - 1][r][i] / n
                db[q][j, 0] += beta[q][j][i] / n
    return dW, db
