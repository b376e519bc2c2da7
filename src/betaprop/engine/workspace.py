"""Work buffers: s^q, y^q, beta^q for a batch of n examples, allocated once per batch size.

Two memory plans (the seed: "for deep nets keep every z^q; if memory is short, recompute"):

- ``"all"`` keeps s^q and y^q of every layer for step 4: O(Q) buffers.
- ``"recompute"`` keeps them only at every k-th layer, k = ceil(sqrt(Q)) (and at Q); the
  layers between two kept ones share k - 1 segment slots, and step 4 runs step 2 again for
  a segment when it needs it: O(sqrt(Q)) buffers, about one more forward pass of time, the
  same numbers. beta^q then needs only two slots (step 4 reads beta^{q+1} alone).

A layer's operations may ask for more (``engine.layers``: batch normalisation's xhat^q and
u^q, dropout's mask m^q and f_q's output before it, ...); these are kept for every such layer
in both plans (a recomputed segment reuses the masks and batch statistics of its pass).

Buffers are scratch: never saved, never read by a call that did not write them. Each thread
has its own (``Buffers`` keeps them per thread), so that passes of one network from several
threads at once (a model served by a web server's threads) never share a buffer.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MEMORY", "Workspace", "Buffers"]

Array = np.ndarray
MEMORY = ("all", "recompute")


class Workspace:
    """The buffers of one batch size n, views into flat arrays (C-contiguous; with ``rows``
    F-contiguous, for inference: step 2's products then run as (y^{q-1})^T (W^q)^T, the
    layout in which BLAS splits a batch over threads best).

    Attributes
    ----------
    n : examples per batch (columns).
    rows : whether the (N_q, n) matrices are F-contiguous (examples are rows in memory).
    s, y, beta : per-layer lists, index 0 unused (``y[0]`` is set to the input batch);
        with memory="recompute" layers between kept ones share slots.
    tmp : per-layer scratch (N_q, n), one array shared by all layers.
    spare : a second (N_Q, n) scratch for the output layer (the loss's terms).
    lse : (1, n), log sum_j e^{s_j^Q}: written by step 2 when the output is softmax.
    row : (1, n) scratch; ``ones`` (n, 1): the 1_n of db^q = beta^q 1_n.
    held : with memory="recompute", the kept layer c whose segment c+1..c+k-1 the shared
        slots hold now.
    xhat, u : normalised layers: (s - mu) / sigma and gamma ⊙ xhat + shift (None elsewhere);
        mean, inv_std (N_q, 1): the batch's mu and 1 / sigma; column (N_q, 1): scratch.
    mask, out : dropout layers: m / (1 - p), and f_q's output before the mask.
    a, fy : per layer, the input of f_q (u^q where normalised, else s^q) and its output
        (``out`` under dropout, else y^q): what step 4's f' reads.
    training : whether the last pass used batch statistics and masks.
    sparse : whether the input batch y[0] of the last pass is a SciPy sparse matrix.
    """

    def __init__(
        self,
        flat: dict[str, list[Any]],
        sizes: Sequence[int],
        n: int,
        rows: bool = False,
        kinds: dict[str, list[str | None]] | None = None,
    ) -> None:
        def matrix(a: Any, N: int) -> Any:
            if rows:  # an example's N values side by side in memory: (N, n) views of (n, N)
                return a[: N * n].reshape(n, N).T
            return a[: N * n].reshape(N, n)

        def views(key: str) -> list[Any]:
            return [None] + [
                None if flat[key][q] is None else matrix(flat[key][q], N)
                for q, N in enumerate(sizes)
                if q > 0
            ]

        def shaped(a: Any, N: int, kind: str | None) -> Any:
            if a is None:
                return None
            if kind == "column":
                return a[:N].reshape(N, 1)
            if kind == "row":
                return a[:n].reshape(1, n)
            return matrix(a, N)

        def operation_views(key: str) -> list[Any]:  # an operation's buffers, by kind per layer
            if key not in flat:
                return [None] * len(sizes)
            return [None] + [
                shaped(flat[key][q], N, (kinds or {})[key][q]) for q, N in enumerate(sizes) if q > 0
            ]

        self.n = n
        self.rows = rows
        self.s = views("s")
        self.y = views("y")
        self.beta = views("beta")  # beta[0] is never computed (no gradient w.r.t. the input)
        self.tmp = views("tmp")
        self.spare = matrix(flat["spare"][0], sizes[-1])
        self.lse = flat["rows"][0][:n].reshape(1, n)
        self.row = flat["rows"][0][n : 2 * n].reshape(1, n)
        self.ones = flat["ones"][0][:n].reshape(n, 1)
        self.held = 0
        self.xhat, self.u, self.mask, self.out = (
            operation_views("xhat"),
            operation_views("u"),
            operation_views("mask"),
            operation_views("out"),
        )
        self.mean, self.inv_std, self.column = (
            operation_views("mean"),
            operation_views("inv_std"),
            operation_views("column"),
        )
        self.scratch = operation_views("scratch")  # per layer, an operation's own scratch
        self.g = operation_views("g")  # residual layers: g^q = dE/dy^q, kept for layer q - 1
        self.a = [s if u is None else u for s, u in zip(self.s, self.u, strict=True)]
        self.fy = [y if out is None else out for y, out in zip(self.y, self.out, strict=True)]
        self.training = False
        self.sparse = False  # whether y[0] is a SciPy sparse batch
        # bytes of the flat arrays behind these views (arrays shared by layers count once)
        arrays = {id(a): a for key in flat for a in flat[key] if a is not None}
        self.nbytes = sum(a.nbytes for a in arrays.values())


class _ThreadBuffers(threading.local):
    """One thread's work buffers: the flat arrays (for batches of up to ``capacity``), the
    workspaces over them, and the workspace of this thread's last pass."""

    def __init__(self) -> None:
        self.flat: dict[str, list[Any]] = {}
        self.capacity = 0
        self.cache: dict[tuple[int, bool], Workspace] = {}
        self.last: Workspace | None = None


class Buffers:
    """Allocates the workspaces of a network: once for the largest n seen, then views.

    Each thread gets its own arrays, allocated the first time it runs a pass (a single
    thread allocates once, as before; k threads hold k sets, freed when a thread ends).
    ``kept[q]`` says whether layer q keeps its own s^q, y^q (always, with memory="all");
    ``k`` is the interval of the kept layers with memory="recompute".
    """

    def __init__(
        self,
        sizes: Sequence[int],
        dtype: str,
        memory: str,
        kinds: dict[str, list[str | None]] | None = None,
    ) -> None:
        if memory not in MEMORY:
            raise ValueError(f"memory must be one of {list(MEMORY)}, got {memory!r}")
        self.sizes, self.dtype, self.memory = tuple(sizes), dtype, memory
        # the layer operations' buffers: name -> per layer q, its kind ("matrix" (N_q, n),
        # "column" (N_q, 1), "row" (1, n)) or None where layer q has no such buffer
        self.kinds = dict(kinds or {})
        Q = len(self.sizes) - 1
        self.k = max(2, math.ceil(math.sqrt(Q)))
        self.kept = [memory == "all" or q % self.k == 0 or q == Q for q in range(Q + 1)]
        # after step 2 the shared slots hold the segment of the last layer that is not kept
        self.last_segment = max((q for q in range(1, Q) if not self.kept[q]), default=0)
        self.last_segment = self.last_segment // self.k * self.k
        self._thread = _ThreadBuffers()

    def get(self, n: int, rows: bool = False) -> Workspace:
        """This thread's workspace for a batch of n, allocated the first time n exceeds its
        capacity (``rows``: its F-contiguous twin over the same arrays, for inference)."""
        mine = self._thread
        if n > mine.capacity:
            flat = {key: self._allocate(key, n) for key in ("s", "y", "beta", "tmp")}
            for key, kinds in self.kinds.items():
                flat[key] = self._per_layer(kinds, n)
            flat["spare"] = [np.empty(self.sizes[-1] * n, dtype=self.dtype)]
            flat["rows"] = [np.empty(2 * n, dtype=self.dtype)]
            flat["ones"] = [np.ones(n, dtype=self.dtype)]
            mine.flat, mine.capacity = flat, n
            mine.cache.clear()
        workspace = mine.cache.get((n, rows))
        if workspace is None:
            if len(mine.cache) >= 4:
                mine.cache.clear()
            workspace = Workspace(mine.flat, self.sizes, n, rows, self.kinds)
            mine.cache[n, rows] = workspace
        return workspace

    @property
    def last(self) -> Workspace | None:
        """The workspace of this thread's last pass (None before its first)."""
        return self._thread.last

    @last.setter
    def last(self, workspace: Workspace) -> None:
        self._thread.last = workspace

    def _per_layer(self, kinds: Sequence[str | None], n: int) -> list[Any]:
        """One array per layer q that has the buffer (N_q * n for a "matrix", N_q for a
        "column", n for a "row"), else None; index 0 is None."""
        arrays: list[Any] = [None]
        for q in range(1, len(self.sizes)):
            N = self.sizes[q]
            length = {"matrix": N * n, "column": N, "row": n, None: 0}[kinds[q]]
            arrays.append(np.empty(length, dtype=self.dtype) if kinds[q] else None)
        return arrays

    def _allocate(self, key: str, n: int) -> list[Any]:
        """Flat arrays behind ``key``'s views for batches of up to n; index 0 is None.

        One array per layer, except that layers sharing a slot share one array (sized for
        the largest of them): ``tmp`` is scratch, one slot for all; with "recompute",
        s^q and y^q between kept layers use the k - 1 segment slots q mod k, and beta^q
        the two slots q mod 2.
        """

        def slot(q: int) -> int:
            if key == "tmp":
                return 0
            if self.memory == "recompute" and key == "beta":
                return q % 2
            return q if self.kept[q] else -(q % self.k)

        slots = {q: slot(q) for q in range(1, len(self.sizes))}
        largest: dict[int, int] = {}
        for q, i in slots.items():
            largest[i] = max(largest.get(i, 0), self.sizes[q])
        arrays = {i: np.empty(N * n, dtype=self.dtype) for i, N in largest.items()}
        return [None] + [arrays[slots[q]] for q in range(1, len(self.sizes))]
