"""The affine map of layer q: s^q = W^q y^{q-1} + b^q (step 2) and its gradients (step 5).

The sparse first layer is this operation on a SciPy sparse y^0: the products pick the columns
of W^1 that the batch's values touch (``engine.sparse``), never a dense copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import sparse
from .base import Operation

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace


class Affine(Operation):
    """s^q = W^q y^{q-1} + b^q;  step 5: dE/dW^q = beta^q (y^{q-1})^T, dE/db^q = beta^q 1_n."""

    name = "affine"
    params = ("W", "b")
    torch_names = ("weight", "bias")

    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        W, s, y = net.W, ws.s, ws.y
        if q == 1 and ws.sparse:  # y^0 sparse: the columns of W^1 its values pick
            sparse.product(W[1], y[0], out=s[1])
        elif ws.rows:  # the same product, transposed: (s^q)^T = (y^{q-1})^T (W^q)^T
            np.dot(y[q - 1].T, W[q].T, out=s[q].T)
        else:
            np.dot(W[q], y[q - 1], out=s[q])  # s^q = W^q y^{q-1} + b^q
        s[q] += net.b[q]

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        beta, y = ws.beta, ws.y
        # Step 5: dE/dW^q = beta^q (y^{q-1})^T,  dE/db^q = beta^q 1_n (sum over the batch)
        if q == 1 and ws.sparse:  # y^0 sparse: SciPy's product
            sparse.gradient(beta[1], y[0], out=net.dW[1])
        else:
            np.dot(beta[q], y[q - 1].T, out=net.dW[q])
        np.dot(beta[q], ws.ones, out=net.db[q])

    def tensors(self, net: Network, q: int) -> list[tuple[str, Any, str]]:
        return [("weight", net.W[q], f"W^{q}"), ("bias", net.b[q][:, 0], f"b^{q}")]

    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        W = g.constant(f"W{q}", net.W[q])  # (N_q, N_{q-1}), the engine's layout
        b = g.constant(f"b{q}", net.b[q][:, 0])  # (N_q,)
        return str(g.node("Gemm", [below, W, b], f"s{q}", transB=1))  # y^{q-1} (W^q)^T + b^q

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        # s_ji = sum_r w_jr y_ri^{q-1} + b_j, for every neuron j and example i
        W, b, n = net.W[q], net.b[q], len(a[0])
        s = [[0.0] * n for _ in range(net.sizes[q])]
        for j in range(net.sizes[q]):
            for i in range(n):
                total = float(b[j, 0])
                for r in range(net.sizes[q - 1]):
                    total += float(W[j, r]) * a[r][i]
                s[j][i] = total
        record["s"] = s
        return s

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        # the error at y^{q-1}: sum_r beta_ri^q w_rj^q (step 4's product for layer q - 1)
        W, n = net.W[q], len(e[0])
        out = [[0.0] * n for _ in range(net.sizes[q - 1])]
        for j in range(net.sizes[q - 1]):
            for i in range(n):
                out[j][i] = sum(float(W[r, j]) * e[r][i] for r in range(net.sizes[q]))
        return out

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        return {
            "formula": f"s^{q} = W^{q} y^{q - 1} + b^{q}",
            "s": ws.s[q][:, i].copy(),
            "b": net.b[q][:, 0].copy(),
        }
