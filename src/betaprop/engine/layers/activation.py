"""The activation of layer q: y^q = f_q(u^q) (step 2), beta^q = f_q'(u^q) ⊙ g^q (step 4).

u^q is s^q where the layer is not normalised (``ws.a[q]``: the input of f); the output goes to
``ws.fy[q]`` (y^q itself unless dropout or a residual sum follows). For the output layer step 3
(the loss's ``output_delta``) takes the place of ``backward``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Operation

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace


class Activation(Operation):
    """y^q = f_q(u^q);  step 4: beta^q <- f_q'(u^q) ⊙ beta^q (f' may read y: Deviation: cheaper)."""

    name = "activation"

    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        net.f[q].forward(ws.a[q], out=ws.fy[q], lse=ws.lse, row=ws.row)  # y^q = f_q(u^q)

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        # beta^q = f'(u^q) ⊙ g^q  (f' at u^q, the input of f, where the layer is normalised)
        net.f[q].multiply_derivative(ws.a[q], ws.fy[q], ws.beta[q], ws.tmp[q], ws.row)

    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        return str(g.activation(net.activations[q - 1], x))

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        from ..reference import _f

        n, N = len(a[0]), net.sizes[q]
        y = [[0.0] * n for _ in range(N)]
        for i in range(n):  # y_ji = f(a_ji) (softmax: per example over the layer)
            outputs = _f(net, q, [a[j][i] for j in range(N)])
            for j in range(N):
                y[j][i] = outputs[j]
        record["a"], record["fy"] = a, y
        return [row[:] for row in y]

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        from ..reference import _f_prime

        a, fy = record["a"], record["fy"]
        return [  # e_ji f'(a_ji)
            [e[j][i] * _f_prime(net, q, a[j][i], fy[j][i]) for i in range(len(e[0]))]
            for j in range(net.sizes[q])
        ]

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        name = net.f[q].name
        return {
            "formula": f"y^{q} = {name}(a^{q})",
            "a": ws.a[q][:, i].copy(),
            "y": ws.fy[q][:, i].copy(),
        }
