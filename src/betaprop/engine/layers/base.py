"""What a layer operation owns: one object per operation of a layer q, in the seed's symbols.

Layer q of a network is a short pipeline of operations, run in this order by step 2 and in
the reverse order by step 4 (``Network`` keeps the seed's two loops and calls them):

    s^q = W^q y^{q-1} + b^q      (affine)
    u^q = norm(s^q)              (batch norm or layer norm, optional)
    y^q = f_q(u^q)               (activation)
    y^q <- y^q ⊙ m^q / (1 - p)   (dropout, optional)
    y^q <- y^{q-1} + y^q         (residual, optional)

An operation owns: its kernels (``forward``: step 2, ``backward``: step 4 from the error at
its output to the error at its input, in place in ``ws.beta[q]``), the work buffers it needs
(``buffers``), its parameters (``params``: views of the flat ``net.params``) and state
(``state``: views of ``net.stats``), their torch state-dict names (``torch_slot``,
``torch_names``), its ONNX nodes (``onnx``), its literal per-example form for the oracle
(``reference_forward`` / ``reference_backward`` on lists ``[j][i]``: neuron j, example i) and
what the trace shows for it (``explain``). Model files, ONNX and the conformance tests walk
``net.ops[q]`` and never ask which kind an operation is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from ..network import Network
    from ..workspace import Workspace

__all__ = ["Operation"]

Array = np.ndarray


class Operation:
    """One operation of layer q; subclasses fill in the hooks below.

    Class attributes
    ----------------
    name : the registry's name (``engine.layers.OPERATIONS``).
    params : names of the network's per-layer (N_q, 1) parameter views it uses, e.g.
        ("gamma", "shift") for ``net.gamma[q]``, ``net.shift[q]`` (W, b: the affine map's).
    state : names of the network's per-layer state views, e.g. ("running_mean", ...).
    torch_slot : whether it is one module of the torch ``nn.Sequential`` that a model file's
        state-dict names count (Linear, BatchNorm1d, the activation, Dropout: yes; the
        residual sum is no module of its own).
    torch_names : the state-dict suffix of each of ``params + state``, in that order.
    buffers : work buffers per layer, name -> "matrix" (N_q, n), "column" (N_q, 1) or
        "row" (1, n); ``Workspace`` allocates them for the layers that have the operation.
    modal : whether training differs from inference (batch statistics, masks).
    min_batch : the fewest examples a training batch may have (2 for batch statistics).
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()
    state: ClassVar[tuple[str, ...]] = ()
    torch_slot: ClassVar[bool] = True
    torch_names: ClassVar[tuple[str, ...]] = ()
    buffers: ClassVar[dict[str, str]] = {}
    modal: ClassVar[bool] = False
    min_batch: ClassVar[int] = 1
    has_skip: ClassVar[bool] = False  # whether ``skip`` adds anything
    roles: ClassVar[tuple[str, ...]] = ()  # what errors call params + state (default: names)

    # ------------------------------------------------------------------ the kernels
    def forward(self, net: Network, ws: Workspace, q: int, update: bool) -> None:
        """Step 2: this operation's line for layer q (``update``: running statistics)."""
        raise NotImplementedError(f"{self.name}: forward")

    def backward(self, net: Network, ws: Workspace, q: int) -> None:
        """Step 4: the error at this operation's output becomes the error at its input,
        in place in ``ws.beta[q]`` (and its parameters' gradients)."""
        raise NotImplementedError(f"{self.name}: backward")

    def skip(self, net: Network, ws: Workspace, q: int) -> None:
        """Step 4 for layer q - 1: what this operation of layer q adds to the error at
        y^{q-1} beyond (W^q)^T beta^q, in place in ``ws.beta[q - 1]`` (default: nothing)."""

    # ------------------------------------------------------------------ the parameters
    def tensors(self, net: Network, q: int) -> list[tuple[str, Array, str]]:
        """(torch suffix, array, role) of every parameter and state array of layer q, in
        the order of ``torch_names``; (N_q, 1) columns flattened to (N_q,)."""
        views = [getattr(net, name)[q] for name in self.params + self.state]
        roles = [f"{name}^{q}" for name in self.roles or self.params + self.state]
        return [
            (suffix, view[:, 0] if view.ndim == 2 and view.shape[1] == 1 else view, role)
            for suffix, view, role in zip(self.torch_names, views, roles, strict=True)
        ]

    def init(self, net: Network, q: int) -> None:
        """Step 1 for this operation's parameters and state (default: none)."""

    # ------------------------------------------------------------------ other forms
    def onnx(self, g: Any, net: Network, q: int, x: str, below: str) -> str:
        """Its ONNX nodes at inference on x (n, N_q) (``below``: y^{q-1}); the result's name."""
        raise NotImplementedError(f"{self.name}: onnx")

    def reference_forward(self, net: Network, q: int, a: list, record: dict) -> list:
        """Step 2, literally: a[j][i] -> this operation's output [j][i] (``record``: the
        layer's quantities by name, filled in for the trace and the tests)."""
        raise NotImplementedError(f"{self.name}: reference_forward")

    def reference_backward(self, net: Network, q: int, e: list, record: dict) -> list:
        """Step 4, literally: the error at its output e[j][i] -> the error at its input."""
        raise NotImplementedError(f"{self.name}: reference_backward")

    def reference_skip(self, net: Network, q: int, e: list, record: dict) -> list:
        """Step 4 for layer q - 1, literally: ``skip``'s term added to the error at y^{q-1}
        (default: none)."""
        return e

    def explain(self, net: Network, ws: Workspace, q: int, i: int = 0) -> dict[str, Any]:
        """What the trace shows for example (column) i: {"formula": ..., quantities...}.

        Reads the last pass's buffers: run it with memory="all" (``net.copy()``), since
        memory="recompute" lets layers share s^q and y^q."""
        raise NotImplementedError(f"{self.name}: explain")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
