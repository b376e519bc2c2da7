"""The Network: parameters, forward pass (step 2), backward pass (steps 3-4), gradients (5).

Notation is the seed's. Layers q = 0..Q; ``W[q]`` has shape (N_q, N_{q-1}), rows are the
neurons of layer q. Inside the engine an example is a column: a batch of n examples is a
matrix (N_q, n), so every formula below is the seed's formula as written. The public API
takes X as (n, N_0), like NumPy and scikit-learn, and transposes once (a view).

All parameters live in one flat array ``params`` (all weights, then all biases); ``W[q]``
and ``b[q]`` are views into it, ``dW[q]`` and ``db[q]`` views into the twin array
``grads``. Index 0 of every per-layer list is unused (layer 0 is the input), so the code
says ``W[q]`` exactly where the formulas say W^q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .activations import Activation, get_activation
from .activations import names as activation_names
from .init import initialize
from .losses import Loss, check_pair, get_loss

__all__ = ["Network"]

Array = np.ndarray
_DTYPES = ("float32", "float64")
_MEMORY = ("all", "checkpoint")


class _Buffers:
    """Work buffers for one batch size n: s[q], y[q], beta[q], tmp[q] of shape (N_q, n).

    They are views into flat arrays allocated once for the largest n seen, so a smaller
    batch (the last of an epoch) reuses the leading part and stays C-contiguous.
    """

    def __init__(self, flat: dict[str, list[Any]], sizes: Sequence[int], n: int) -> None:
        def views(key: str) -> list[Any]:
            return [None] + [
                flat[key][q][: N * n].reshape(N, n) for q, N in enumerate(sizes) if q > 0
            ]

        self.n = n
        self.s = views("s")
        self.y = views("y")  # y[0] is set to the input batch X.T for each pass
        self.beta = views("beta")  # beta[0] is never computed (no gradient w.r.t. the input)
        self.tmp = views("tmp")
        self.row = flat["row"][0][: 2 * n].reshape(2, n)
        self.ones = flat["ones"][0][:n].reshape(n, 1)  # 1_n: db^q = beta^q 1_n
        # bytes of the flat arrays behind these views (arrays shared by layers count once)
        arrays = {id(a): a for key in flat for a in flat[key] if a is not None}
        self.nbytes = sum(a.nbytes for a in arrays.values())


class Network:
    """A multilayer perceptron trained by backpropagation.

    Parameters
    ----------
    sizes : (N_0, ..., N_Q), the number of neurons of every layer, input first.
    activation : the hidden layers' activation, one name for all or a list of Q-1 names.
    output : the output layer's activation; by default the canonical one for ``loss``
        (softmax for cross_entropy, sigmoid for binary_cross_entropy, identity for
        squared_error).
    loss : "squared_error", "cross_entropy" or "binary_cross_entropy".
    dtype : "float32" (default) or "float64".
    seed : seed of the generator that initialises the weights (step 1).
    memory : "all" (default) keeps s^q and y^q of every layer for step 4. "checkpoint"
        keeps them only at every k-th layer, k = ceil(sqrt(Q)) (and at Q), and recomputes
        the layers between two checkpoints during step 4: work buffers O(sqrt(Q)) instead
        of O(Q), about one more forward pass of time, bit-identical gradients. Layers
        between checkpoints then share buffers, so ``s``, ``y`` and ``beta`` are not
        available (inspect ``net.copy()``, which uses memory="all").

    Attributes
    ----------
    Q : index of the output layer.
    params, grads : flat parameter and gradient arrays.
    W, b, dW, db : per-layer views, index 0 unused; W[q] (N_q, N_{q-1}), b[q] (N_q, 1).
    s, y, beta : after a pass, the pre-activations, outputs and local errors of every
        layer, (N_q, n) each; y[0] is the input batch (N_0, n).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Sequence[str] = "relu",
        output: str | None = None,
        loss: str = "squared_error",
        dtype: str = "float32",
        seed: int | None = None,
        memory: str = "all",
    ) -> None:
        self.sizes = _check_sizes(sizes)
        self.Q = len(self.sizes) - 1
        self.loss: Loss = get_loss(loss)
        self.dtype = _check_dtype(dtype)
        hidden = _hidden_names(activation, self.Q)
        output_name = self.loss.canonical_output if output is None else output
        out_f = get_activation(output_name)
        check_pair(self.loss, out_f.name)
        self.activations: list[str] = [get_activation(a).name for a in hidden] + [out_f.name]
        self.f: list[Activation | None] = [None] + [get_activation(a) for a in self.activations]
        # Fused step 3: delta^Q = y^Q - d, exact for the canonical pairs.
        self.fused = out_f.name == get_activation(self.loss.canonical_output).name
        self.seed = seed
        if memory not in _MEMORY:
            raise ValueError(f"memory must be one of {list(_MEMORY)}, got {memory!r}")
        self.memory = memory
        # checkpoint interval: s^q, y^q kept at q = k, 2k, ... and Q (Q/k + k buffers)
        self.k = max(2, math.ceil(math.sqrt(self.Q)))

        shapes = [(self.sizes[q], self.sizes[q - 1]) for q in range(1, self.Q + 1)]
        self.n_weights = sum(r * c for r, c in shapes)
        self.n_params = self.n_weights + sum(self.sizes[1:])
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self.grads = np.zeros(self.n_params, dtype=self.dtype)
        self.W, self.b = self._layer_views(self.params)
        self.dW, self.db = self._layer_views(self.grads)
        self.initialize(seed)
        self._flat: dict[str, list[Any]] = {}
        self._capacity = 0
        self._cache: dict[int, _Buffers] = {}
        self._last: _Buffers | None = None

    # ----------------------------------------------------------------- parameters
    def _layer_views(self, flat: Array) -> tuple[list, list]:
        """Views W[q] (N_q, N_{q-1}) and b[q] (N_q, 1) into a flat array; index 0 is None."""
        W: list = [None]
        b: list = [None]
        start = 0
        for q in range(1, self.Q + 1):
            size = self.sizes[q] * self.sizes[q - 1]
            W.append(flat[start : start + size].reshape(self.sizes[q], self.sizes[q - 1]))
            start += size
        for q in range(1, self.Q + 1):
            b.append(flat[start : start + self.sizes[q]].reshape(self.sizes[q], 1))
            start += self.sizes[q]
        return W, b

    def initialize(self, seed: int | None = None) -> None:
        """Step 1: Glorot-uniform or He-uniform weights by activation, zero biases."""
        rules: list[Any] = [None]
        rules += [f.init for f in self.f[1:]]  # type: ignore[union-attr]
        initialize(self.W, self.b, rules, np.random.default_rng(seed))

    # ----------------------------------------------------------------- buffers
    def buffers(self, n: int) -> _Buffers:
        """Work buffers for a batch of n examples, allocated the first time n exceeds capacity."""
        if n > self._capacity:
            self._flat = {key: self._allocate(key, n) for key in ("s", "y", "beta", "tmp")}
            self._flat["row"] = [np.empty(2 * n, dtype=self.dtype)]
            self._flat["ones"] = [np.ones(n, dtype=self.dtype)]
            self._capacity = n
            self._cache.clear()
        if n not in self._cache:
            if len(self._cache) >= 4:
                self._cache.clear()
            self._cache[n] = _Buffers(self._flat, self.sizes, n)
        return self._cache[n]

    def _kept(self, q: int) -> bool:
        """Whether layer q keeps its own s^q, y^q (always with memory="all")."""
        return self.memory == "all" or q % self.k == 0 or q == self.Q

    def _allocate(self, key: str, n: int) -> list[Any]:
        """Flat arrays behind ``key``'s views for batches of up to n; index 0 is None.

        One array per layer, except that layers sharing a slot share one array (sized for
        the largest of them): ``tmp`` is scratch, one slot for all; with "checkpoint",
        s^q and y^q between checkpoints use the k - 1 segment slots q mod k, and beta^q
        the two slots q mod 2 (step 4 reads beta^{q+1} only).
        """

        def slot(q: int) -> int:
            if key == "tmp":
                return 0
            if self.memory == "checkpoint" and key == "beta":
                return q % 2
            return q if self._kept(q) else -(q % self.k)

        slots = {q: slot(q) for q in range(1, self.Q + 1)}
        largest: dict[int, int] = {}
        for q, i in slots.items():
            largest[i] = max(largest.get(i, 0), self.sizes[q])
        arrays = {i: np.empty(N * n, dtype=self.dtype) for i, N in largest.items()}
        return [None] + [arrays[slots[q]] for q in range(1, self.Q + 1)]

    @property
    def s(self) -> list:
        return self._require_pass("s").s

    @property
    def y(self) -> list:
        return self._require_pass("y").y

    @property
    def beta(self) -> list:
        return self._require_pass("beta").beta

    def _require_pass(self, name: str) -> _Buffers:
        if self._last is None:
            raise RuntimeError("no pass has run yet: call forward or loss_and_gradients first")
        if self.memory == "checkpoint":
            raise RuntimeError(
                f"net.{name} is not kept for every layer with memory='checkpoint' (layers "
                "between checkpoints share buffers); inspect a copy with memory='all': "
                "net.copy()"
            )
        return self._last

    # ----------------------------------------------------------------- the algorithm
    def _forward(self, ws: _Buffers, x: Array) -> Array:
        """Step 2 on a batch x of shape (N_0, n): s^q = W^q y^{q-1} + b^q, y^q = f_q(s^q)."""
        ws.y[0] = x
        self._forward_layers(ws, 1, self.Q)
        self._last = ws
        return ws.y[self.Q]

    def _forward_layers(self, ws: _Buffers, first: int, last: int) -> None:
        """Step 2 for layers q = first..last, from y^{first-1}."""
        f, W, b, s, y = self.f, self.W, self.b, ws.s, ws.y
        for q in range(first, last + 1):
            np.dot(W[q], y[q - 1], out=s[q])  # s^q = W^q y^{q-1} + b^q
            s[q] += b[q]
            f[q].forward(s[q], out=y[q], row=ws.row)  # type: ignore[union-attr]

    def _backward(self, ws: _Buffers, d: Array, w: Array | None = None, down_to: int = 1) -> None:
        """Steps 3-4: local errors beta[q] for q = Q..1, the 1/n of the batch mean folded in.

        Deviation from the seed: beta^Q carries the factor 1/n of the batch mean, so every
        beta^q and the gradients of step 5 are those of the mean loss; and for the
        canonical pairs the fused delta^Q = y^Q - d replaces the chain (same value, stable).
        With per-example weights ``w`` (1, n), column i of beta^Q is also multiplied by w_i:
        the gradient of the weighted mean (1/n) sum_i w_i E_i.
        """
        Q, f, W, s, y, beta = self.Q, self.f, self.W, ws.s, ws.y, ws.beta
        # Step 3: delta^Q = (y^Q - d) ⊙ f'(s^Q)   (fused to y^Q - d for canonical pairs)
        if self.fused:
            np.subtract(y[Q], d, out=beta[Q])
        else:
            self.loss.output_gradient(y[Q], d, out=beta[Q])
            f[Q].multiply_derivative(s[Q], y[Q], beta[Q], ws.tmp[Q], ws.row[:1])  # type: ignore[union-attr]
        beta[Q] *= 1.0 / ws.n
        if w is not None:
            beta[Q] *= w  # weighted mean: column i times w_i
        # Step 4: beta^q = f'(s^q) ⊙ (W^{q+1})^T beta^{q+1},  q = Q-1 down to 1 (never q = 0)
        for q in range(Q - 1, down_to - 1, -1):
            np.dot(W[q + 1].T, beta[q + 1], out=beta[q])
            f[q].multiply_derivative(s[q], y[q], beta[q], ws.tmp[q], ws.row[:1])  # type: ignore[union-attr]

    def _gradients(self, ws: _Buffers) -> None:
        """Step 5: dE/dW^q = beta^q (y^{q-1})^T and dE/db^q = sum over the batch of beta^q.

        The sum over the batch is written as the product beta^q 1_n with a ones vector: one
        BLAS call, several times faster than NumPy's reduction along rows.
        """
        y, beta, dW, db = ws.y, ws.beta, self.dW, self.db
        for q in range(1, self.Q + 1):
            np.dot(beta[q], y[q - 1].T, out=dW[q])
            np.dot(beta[q], ws.ones, out=db[q])

    def _backward_checkpoint(self, ws: _Buffers, d: Array, w: Array | None = None) -> None:
        """Steps 3-5 with memory="checkpoint", recomputing s^q, y^q between checkpoints.

        Deviation from the seed ("if memory is short, recompute"): the forward pass kept
        s^q, y^q only at the checkpoints q = k, 2k, ..., Q. Going down, before layer q
        needs y^{q-1} of a segment c+1..c+k-1 that the slots do not hold, step 2 runs
        again for that segment from y^c: the same operations on the same values, so the
        same numbers. beta has two alternating buffers, so step 5 for layer q follows
        step 4 for layer q at once.
        """
        Q, k, f, W, s, y, beta = self.Q, self.k, self.f, self.W, ws.s, ws.y, ws.beta
        dW, db = self.dW, self.db
        self._backward(ws, d, w, down_to=Q)  # step 3 only
        # after step 2 the slots hold the segment of the last layer that is not kept
        held = max((q for q in range(1, Q) if not self._kept(q)), default=0) // k * k
        for q in range(Q, 0, -1):
            if q < Q:
                # Step 4: beta^q = f'(s^q) ⊙ (W^{q+1})^T beta^{q+1}
                np.dot(W[q + 1].T, beta[q + 1], out=beta[q])
                f[q].multiply_derivative(s[q], y[q], beta[q], ws.tmp[q], ws.row[:1])  # type: ignore[union-attr]
            c = (q - 1) // k * k  # the checkpoint below layer q-1
            if not self._kept(q - 1) and c != held:
                self._forward_layers(ws, c + 1, min(c + k - 1, Q - 1))  # recompute
                held = c
            # Step 5: dE/dW^q = beta^q (y^{q-1})^T, dE/db^q = beta^q 1_n (sum over the batch)
            np.dot(beta[q], y[q - 1].T, out=dW[q])
            np.dot(beta[q], ws.ones, out=db[q])

    def _loss(self, ws: _Buffers, d: Array, w: Array | None = None) -> float:
        Q = self.Q
        return self.loss.value(ws.s[Q], ws.y[Q], d, ws.tmp[Q], ws.row, w)

    def _loss_and_gradients(self, x: Array, d: Array, w: Array | None = None) -> float:
        """Steps 2-5 on a batch of columns x (N_0, n), d (N_Q, n); no input checks.

        ``w``, optional per-example weights of shape (1, n), makes the loss and gradients
        those of the weighted mean (1/n) sum_i w_i E_i (sample weights).
        """
        ws = self.buffers(x.shape[1])
        self._forward(ws, x)
        loss = self._loss(ws, d, w)
        if self.memory == "checkpoint":
            self._backward_checkpoint(ws, d, w)
        else:
            self._backward(ws, d, w)
            self._gradients(ws)
        return loss

    # ----------------------------------------------------------------- public API
    def forward(self, X: Array) -> Array:
        """Step 2 on X of shape (n, N_0); returns y^Q as a new (n, N_Q) array.

        The pre-activations ``net.s[q]`` and outputs ``net.y[q]`` of every layer stay
        available, (N_q, n) each, for a backward pass or for inspection.
        """
        X = self.check_X(X)
        return self._forward(self.buffers(X.shape[0]), X.T).T.copy()

    def loss_and_gradients(self, X: Array, D: Array) -> float:
        """Steps 2-5 on a batch: returns the mean loss; fills dW, db, beta.

        X has shape (n, N_0), D (n, N_Q) (one-hot rows for cross-entropy, the seed's d).
        Afterwards ``net.dW[q]``, ``net.db[q]`` (views of ``net.grads``) hold the gradient
        of the mean loss, and ``net.beta[q]`` the local errors beta^q, shape (N_q, n),
        with the 1/n of the batch mean folded in (multiply by n for per-example errors).
        """
        X = self.check_X(X)
        D = self.check_D(D, X.shape[0])
        return self._loss_and_gradients(X.T, D.T)

    def predict(self, X: Array, batch_size: int = 4096) -> Array:
        """Outputs y^Q for X of shape (n, N_0), as (n, N_Q), computed in chunks of rows."""
        X = self.check_X(X)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for start in range(0, X.shape[0], batch_size):
            chunk = X[start : start + batch_size]
            out[start : start + len(chunk)] = self._forward(self.buffers(len(chunk)), chunk.T).T
        return out

    def copy(self, memory: str = "all") -> Network:
        """An independent network with the same architecture and parameters.

        ``memory`` is how the copy runs its passes, not part of the model: by default the
        copy keeps every layer (as diagnostics and traces need), whatever this network uses.
        """
        return self.astype(self.dtype, memory)

    def astype(self, dtype: str, memory: str = "all") -> Network:
        """A copy of this network in another dtype ("float32" or "float64"); see ``copy``."""
        twin = Network(
            self.sizes,
            self.activations[:-1],
            self.activations[-1],
            self.loss.name,
            dtype,
            memory=memory,
        )
        twin.params[...] = self.params
        twin.seed = self.seed
        return twin

    def spec(self) -> dict[str, Any]:
        """The one description of this network: what ``Network.from_spec`` rebuilds it from.

        Model files, checkpoints, the estimators and the command line all store this.
        """
        return {
            "sizes": list(self.sizes),
            "activations": list(self.activations),
            "loss": self.loss.name,
            "dtype": self.dtype,
            "seed": self.seed if isinstance(self.seed, int) else None,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any], memory: str = "all") -> Network:
        """A network (fresh parameters) of the architecture that ``spec()`` described."""
        activations = list(spec["activations"])
        net = cls(
            spec["sizes"],
            activations[:-1],
            activations[-1],
            spec["loss"],
            spec["dtype"],
            seed=spec.get("seed"),
            memory=memory,
        )
        return net

    def __repr__(self) -> str:
        return (
            f"Network(sizes={list(self.sizes)}, activation={self.activations[:-1]}, "
            f"output={self.activations[-1]!r}, loss={self.loss.name!r}, dtype={self.dtype!r})"
        )

    # ----------------------------------------------------------------- input checks
    def check_X(self, X: Array) -> Array:
        X = _as_matrix(X, "X", self.dtype)
        if X.shape[1] != self.sizes[0]:
            raise ValueError(
                f"X must have shape (n, N_0) = (n, {self.sizes[0]}), got {X.shape} "
                f"({X.shape[1]} features for N_0 = {self.sizes[0]} inputs)"
            )
        return X

    def check_D(self, D: Array, n: int) -> Array:
        D = _as_matrix(D, "D", self.dtype)
        if D.shape != (n, self.sizes[-1]):
            raise ValueError(f"D must have shape (n, N_Q) = ({n}, {self.sizes[-1]}), got {D.shape}")
        return D


def _as_matrix(A: Array, name: str, dtype: str) -> Array:
    """A 2-D finite array of ``dtype`` (a copy only where the dtype differs)."""
    A = np.asarray(A)
    if A.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {A.dtype}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, features), got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {A.shape}")
    A = A.astype(dtype, copy=False)
    # one pass without a temporary first (the sum of finite values is finite unless it
    # overflows); the element-wise test runs only when that sum is not finite
    if not np.isfinite(np.sum(A)) and not np.isfinite(A).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
        raise ValueError(f"{name} must be finite, got {float(A[bad])!r} at index {bad}")
    return A


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    try:
        values = tuple(sizes)
    except TypeError:
        raise TypeError(
            f"sizes must be a sequence of layer sizes (N_0, ..., N_Q), got {sizes!r}"
        ) from None
    if len(values) < 2:
        raise ValueError(f"sizes must name at least 2 layers (N_0, ..., N_Q), got {sizes!r}")
    for N in values:
        if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
            raise ValueError(f"sizes must be integers >= 1, got {sizes!r}")
    return tuple(int(N) for N in values)


def _check_dtype(dtype: object) -> str:
    name = np.dtype(dtype).name if isinstance(dtype, (type, np.dtype)) else dtype
    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    return str(name)


def _hidden_names(activation: str | Sequence[str], Q: int) -> list[str]:
    if isinstance(activation, str):
        hidden = [activation] * (Q - 1)
    else:
        hidden = list(activation)
        if len(hidden) != Q - 1:
            raise ValueError(
                f"activation must be one name or a list of Q-1 = {Q - 1} names (one per hidden "
                f"layer), got {len(hidden)}: {hidden!r}"
            )
    for name in hidden:
        if get_activation(name).output_only:
            raise ValueError(
                "activation of a hidden layer must be one of "
                f"{activation_names(hidden_only=True)}, got {name!r} (output layer only)"
            )
    return hidden
