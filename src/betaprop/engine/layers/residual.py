"""A residual hidden layer (past the seed's remedy): y^q = y^{q-1} + f_q(u^q), N_q = N_{q-1}.

Step 2 adds the layer's input to its output (after dropout's mask where the layer has one).
Write g^q for dE/dy^q, the error at the layer's output. Then step 4 reads

    g^q = (W^{q+1})^T beta^{q+1} + (g^{q+1} where layer q+1 is residual)
    beta^q = f_q'(u^q) ⊙ g^q          (then dropout's mask and the normalisation's line)

the seed's formula with one more term: the identity path carries the error to early layers
undamped, whatever f' and W do. ``backward`` keeps g^q (``ws.g[q]``) before f' multiplies
it; ``skip`` adds it to the error at y^{q-1} once (W^q)^T beta^q is there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Operation

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace


class Residual(Operation):
    """y^q <- y^{q-1} + y^q (the skip connection); step 4: g^{q-1} gains g^q."""

    name = "residual"
    torch_slot = False  # a sum, no module (and no tensors) of its own
    buffers = {"out": "matrix", "g": "matrix"}
    has_skip = True

    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        branch = ws.y[q] if net.p[q] else ws.fy[q]  # f_q(u^q), after dropout's mask if any
        if q == 1 and ws.sparse:  # y^0 sparse (N_1 = N_0): a dense copy of the batch
            np.add(branch, ws.y[0].toarray(), out=ws.y[q])
        else:
            np.add(branch, ws.y[q - 1], out=ws.y[q])  # y^q = y^{q-1} + f_q(u^q)

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        np.copyto(ws.g[q], ws.beta[q])  # g^q = dE/dy^q: the branch's error, and y^{q-1}'s

    def skip(self, net: Network, ws: Workspace, q: int) -> None:
        ws.beta[q - 1] += ws.g[q]  # g^{q-1} = (W^q)^T beta^q + g^q

    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        return str(g.node("Add", [below, x], f"y{q}"))

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        below = record["below"]  # y_ji^q = y_ji^{q-1} + a_ji
        return [[below[j][i] + a[j][i] for i in range(len(a[0]))] for j in range(len(a))]

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        record["g"] = e  # g^q, for layer q - 1
        return e

    def reference_skip(self, net: Network, q: int, e: list, record: dict) -> list:
        g = record["g"]  # g_ji^{q-1} = sum_r beta_ri^q w_rj^q + g_ji^q
        return [[e[j][i] + g[j][i] for i in range(len(e[0]))] for j in range(len(e))]

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        return {
            "formula": f"y^{q} = y^{q - 1} + f(a^{q});  g^{q - 1} = (W^{q})^T beta^{q} + g^{q}",
            "below": ws.y[q - 1][:, i].copy() if not ws.sparse else None,
            "y": ws.y[q][:, i].copy(),
        }
