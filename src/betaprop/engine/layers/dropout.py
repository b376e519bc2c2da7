"""Inverted dropout on hidden layer q (rate p): y^q <- y^q ⊙ m^q / (1 - p) in training,
nothing at inference; step 4 multiplies the incoming error by the same m^q / (1 - p).

The masks come from ``net.dropout_rng`` (``engine.normalization.draw_mask``), drawn by the
network before step 2 (or handed in by the data-parallel step, one stream for all ranks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Operation

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace


class Dropout(Operation):
    """y^q = f_q(u^q) ⊙ m^q / (1 - p) in training, f_q(u^q) at inference (torch.nn.Dropout)."""

    name = "dropout"
    buffers = {"mask": "matrix", "out": "matrix"}
    modal = True

    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        if ws.training:  # dropout: y^q ⊙ m^q / (1 - p) in training, y^q at inference
            np.multiply(ws.fy[q], ws.mask[q], out=ws.y[q])
        else:
            np.copyto(ws.y[q], ws.fy[q])

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        ws.beta[q] *= ws.mask[q]  # the same m^q / (1 - p) as step 2 (dropout)

    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        return x  # nothing at inference

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        mask = record["mask"]  # y_ji m_ji / (1 - p)
        return [[a[j][i] * float(mask[j, i]) for i in range(len(a[0]))] for j in range(len(a))]

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        mask = record["mask"]  # the same mask as step 2
        return [[e[j][i] * float(mask[j, i]) for i in range(len(e[0]))] for j in range(len(e))]

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        return {
            "formula": f"y^{q} = f(a^{q}) ⊙ m^{q} / (1 - p)",
            "p": net.p[q],
            "mask": ws.mask[q][:, i].copy(),
        }
