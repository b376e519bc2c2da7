"""Batch normalisation of layer q (the seed's remedy), its kernels in ``engine.normalization``.

    u^q = gamma^q ⊙ (s^q - mu^q) / sigma^q + shift^q      (mu, sigma: over the batch, per neuron)
    beta^q <- (gamma^q / sigma^q) ⊙ (beta^q - mean(beta^q) - xhat^q ⊙ mean(beta^q ⊙ xhat^q))

At inference the running estimates (``torch.nn.BatchNorm1d``: momentum 0.1, unbiased variance).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..normalization import EPS, normalize_backward, normalize_batch, normalize_running
from .base import Operation

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace


class BatchNorm(Operation):
    """u^q = gamma^q ⊙ (s^q - mu^q) / sigma^q + shift^q over the batch (torch.nn.BatchNorm1d)."""

    name = "batch"
    params = ("gamma", "shift")
    state = ("running_mean", "running_var")
    torch_names = ("weight", "bias", "running_mean", "running_var")
    roles = ("gamma", "shift", "running mean", "running variance")
    buffers = {
        "xhat": "matrix",
        "u": "matrix",
        "mean": "column",
        "inv_std": "column",
        "column": "column",
    }
    modal = True
    min_batch = 2

    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        gamma, shift, mean, var = net.gamma[q], net.shift[q], net.running_mean, net.running_var
        if ws.training:  # u^q = gamma^q ⊙ (s^q - mu^q) / sigma^q + shift^q
            running = (mean[q], var[q]) if update else None
            normalize_batch(
                ws.s[q], gamma, shift, ws.xhat[q], ws.u[q], ws.mean[q], ws.inv_std[q], running,
                net.batch_sum,
            )  # fmt: skip
        else:  # the running statistics
            normalize_running(ws.s[q], gamma, shift, ws.u[q], mean[q], var[q], ws.column[q])

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        # from the error at u^q to the error at s^q; dE/dgamma^q, dE/dshift^q
        normalize_backward(
            ws.beta[q], ws.xhat[q], net.gamma[q], ws.inv_std[q],
            net.dgamma[q], net.dshift[q], ws.tmp[q], ws.column[q], net.batch_sum,
        )  # fmt: skip

    def init(self, net: Network, q: int) -> None:
        net.gamma[q][...], net.shift[q][...] = 1.0, 0.0
        net.running_mean[q][...], net.running_var[q][...] = 0.0, 1.0

    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        # u^q = gamma (s^q - running mean) / sqrt(running var + eps) + shift
        inputs = [x] + [
            g.constant(f"{name}{q}", values[q][:, 0])
            for name, values in (
                ("gamma", net.gamma),
                ("shift", net.shift),
                ("running_mean", net.running_mean),
                ("running_var", net.running_var),
            )
        ]
        return str(g.node("BatchNormalization", inputs, f"u{q}", epsilon=EPS))

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        gamma, shift, n, N = net.gamma[q], net.shift[q], len(a[0]), net.sizes[q]
        record["mu"], record["sigma"] = [], []
        xhat = [[0.0] * n for _ in range(N)]
        u = [[0.0] * n for _ in range(N)]
        for j in range(N):
            mean = sum(a[j][i] for i in range(n)) / n  # mu_j = (1/n) sum_i s_ji
            var = sum((a[j][i] - mean) ** 2 for i in range(n)) / n  # biased
            sd = math.sqrt(var + EPS)  # sigma_j
            record["mu"].append(mean)
            record["sigma"].append(sd)
            for i in range(n):
                xhat[j][i] = (a[j][i] - mean) / sd  # xhat_ji = (s_ji - mu_j) / sigma_j
                u[j][i] = float(gamma[j, 0]) * xhat[j][i] + float(shift[j, 0])
        record["xhat"], record["u"] = xhat, u
        return u

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        gamma, xhat, sigma = net.gamma[q], record["xhat"], record["sigma"]
        n, N = len(e[0]), net.sizes[q]
        beta = [[0.0] * n for _ in range(N)]
        record["dgamma"], record["dshift"] = np.zeros((N, 1)), np.zeros((N, 1))
        for j in range(N):
            mean_e = sum(e[j][k] for k in range(n)) / n
            mean_ex = sum(e[j][k] * xhat[j][k] for k in range(n)) / n
            record["dgamma"][j, 0] = mean_ex  # (1/n) sum_i e_ji xhat_ji
            record["dshift"][j, 0] = mean_e  # (1/n) sum_i e_ji
            for i in range(n):
                beta[j][i] = (float(gamma[j, 0]) / sigma[j]) * (
                    e[j][i] - mean_e - xhat[j][i] * mean_ex
                )
        return beta

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        return {
            "formula": f"u^{q} = gamma^{q} ⊙ (s^{q} - mu^{q}) / sigma^{q} + shift^{q}",
            "mu": ws.mean[q][:, 0].copy(),
            "sigma": 1.0 / ws.inv_std[q][:, 0],
            "xhat": ws.xhat[q][:, i].copy(),
            "gamma": net.gamma[q][:, 0].copy(),
            "shift": net.shift[q][:, 0].copy(),
            "u": ws.u[q][:, i].copy(),
        }
