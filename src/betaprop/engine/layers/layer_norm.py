"""Layer normalisation of layer q (past the seed's remedy): batch norm's line, with the mean
and variance taken per example over the layer's N_q units (``torch.nn.LayerNorm``)::

    u^q = gamma^q ⊙ (s^q - mu^q) / sigma^q + shift^q
    mu^q_i = (1/N_q) sum_j s^q_ji,   sigma^q_i = sqrt((1/N_q) sum_j (s^q_ji - mu^q_i)^2 + eps)

mu^q and sigma^q are rows (1, n), one number per example: no batch statistics, no running
ones, the same in training and at inference (and under MPI no sums over processes). Step 4,
from the error e^q at u^q to beta^q at s^q, means over the units j of each example::

    beta^q = (1 / sigma^q) ⊙ (gamma^q ⊙ e^q - mean_j(gamma^q ⊙ e^q)
                              - xhat^q ⊙ mean_j(gamma^q ⊙ e^q ⊙ xhat^q))

with dE/dgamma^q = sum_i e^q ⊙ xhat^q and dE/dshift^q = sum_i e^q (over the batch).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..normalization import EPS
from .base import Operation

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace


class LayerNorm(Operation):
    """u^q = gamma^q ⊙ (s^q - mu^q) / sigma^q + shift^q per example (torch.nn.LayerNorm)."""

    name = "layer"
    params = ("gamma", "shift")
    torch_names = ("weight", "bias")
    buffers = {"xhat": "matrix", "u": "matrix", "mean": "row", "inv_std": "row", "scratch": "row"}

    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        s, xhat, u, mean, inv_std = ws.s[q], ws.xhat[q], ws.u[q], ws.mean[q], ws.inv_std[q]
        N = s.shape[0]
        np.add.reduce(s, axis=0, keepdims=True, out=mean)
        mean /= N  # mu_i = (1/N_q) sum_j s_ji
        np.subtract(s, mean, out=xhat)
        np.square(xhat, out=u)
        np.add.reduce(u, axis=0, keepdims=True, out=inv_std)
        inv_std /= N  # sigma_i^2 = (1/N_q) sum_j (s_ji - mu_i)^2, biased
        inv_std += EPS
        np.sqrt(inv_std, out=inv_std)
        np.divide(1.0, inv_std, out=inv_std)  # 1 / sigma_i
        xhat *= inv_std  # xhat = (s - mu) / sigma
        np.multiply(xhat, net.gamma[q], out=u)
        u += net.shift[q]  # u = gamma ⊙ xhat + shift

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        beta, xhat, tmp, row, mean = ws.beta[q], ws.xhat[q], ws.tmp[q], ws.row, ws.scratch[q]
        N = beta.shape[0]
        np.add.reduce(beta, axis=1, keepdims=True, out=net.dshift[q])  # sum_i e_i
        np.multiply(beta, xhat, out=tmp)
        np.add.reduce(tmp, axis=1, keepdims=True, out=net.dgamma[q])  # sum_i e_i ⊙ xhat_i
        # beta <- (1 / sigma) ⊙ (gamma e - mean_j(gamma e) - xhat ⊙ mean_j(gamma e ⊙ xhat))
        beta *= net.gamma[q]  # gamma ⊙ e: the error at xhat
        np.add.reduce(beta, axis=0, keepdims=True, out=mean)
        mean /= N  # mean_j(gamma e), per example
        np.multiply(beta, xhat, out=tmp)
        np.add.reduce(tmp, axis=0, keepdims=True, out=row)
        row /= N  # mean_j(gamma e ⊙ xhat), per example
        np.multiply(xhat, row, out=tmp)
        beta -= tmp
        beta -= mean
        beta *= ws.inv_std[q]

    def init(self, net: Network, q: int) -> None:
        net.gamma[q][...], net.shift[q][...] = 1.0, 0.0

    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        gamma = g.constant(f"gamma{q}", net.gamma[q][:, 0])
        shift = g.constant(f"shift{q}", net.shift[q][:, 0])
        return str(g.node("LayerNormalization", [x, gamma, shift], f"u{q}", axis=-1, epsilon=EPS))

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        gamma, shift, n, N = net.gamma[q], net.shift[q], len(a[0]), net.sizes[q]
        record["mu"], record["sigma"] = [], []  # per example i
        xhat = [[0.0] * n for _ in range(N)]
        u = [[0.0] * n for _ in range(N)]
        for i in range(n):
            mean = sum(a[j][i] for j in range(N)) / N  # mu_i = (1/N) sum_j s_ji
            var = sum((a[j][i] - mean) ** 2 for j in range(N)) / N  # biased
            sd = math.sqrt(var + EPS)  # sigma_i
            record["mu"].append(mean)
            record["sigma"].append(sd)
            for j in range(N):
                xhat[j][i] = (a[j][i] - mean) / sd  # xhat_ji = (s_ji - mu_i) / sigma_i
                u[j][i] = float(gamma[j, 0]) * xhat[j][i] + float(shift[j, 0])
        record["xhat"], record["u"] = xhat, u
        return u

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        gamma, xhat, sigma = net.gamma[q], record["xhat"], record["sigma"]
        n, N = len(e[0]), net.sizes[q]
        record["dgamma"], record["dshift"] = np.zeros((N, 1)), np.zeros((N, 1))
        for j in range(N):  # of the mean loss: (1/n) sum_i e_ji xhat_ji, (1/n) sum_i e_ji
            record["dgamma"][j, 0] = sum(e[j][i] * xhat[j][i] for i in range(n)) / n
            record["dshift"][j, 0] = sum(e[j][i] for i in range(n)) / n
        beta = [[0.0] * n for _ in range(N)]
        for i in range(n):
            g = [float(gamma[j, 0]) * e[j][i] for j in range(N)]  # the error at xhat
            mean_g = sum(g) / N
            mean_gx = sum(g[k] * xhat[k][i] for k in range(N)) / N
            for j in range(N):
                beta[j][i] = (g[j] - mean_g - xhat[j][i] * mean_gx) / sigma[i]
        return beta

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        return {
            "formula": f"u^{q} = gamma^{q} ⊙ (s^{q} - mu^{q}) / sigma^{q} + shift^{q}, per example",
            "mu": float(ws.mean[q][0, i]),
            "sigma": float(1.0 / ws.inv_std[q][0, i]),
            "xhat": ws.xhat[q][:, i].copy(),
            "gamma": net.gamma[q][:, 0].copy(),
            "shift": net.shift[q][:, 0].copy(),
            "u": ws.u[q][:, i].copy(),
        }
