"""The Network: parameters, forward pass (step 2), backward pass (steps 3-4), gradients (5).

Notation is the seed's. Layers q = 0..Q; ``W[q]`` has shape (N_q, N_{q-1}), rows are the
neurons of layer q. Inside the engine an example is a column: a batch of n examples is a
matrix (N_q, n), so every formula below is the seed's formula as written. The public API
takes X as (n, N_0), like NumPy and scikit-learn, and transposes once (a view).

All parameters live in one flat array ``params`` (all weights, then all biases); ``W[q]``
and ``b[q]`` are views into it, ``dW[q]`` and ``db[q]`` views into the twin array
``grads``. Index 0 of every per-layer list is unused (layer 0 is the input), so the code
says ``W[q]`` exactly where the formulas say W^q.

Beside the algorithm, ``Network`` inherits its description (``spec()``, the repr) from
``engine/description.py``, its input checks (``check_X``, ``check_D``) from
``engine/checks.py``, and its per-thread work buffers and training lock from
``engine/threads.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse

from . import layout
from .activations import Activation, get_activation
from .checks import (
    InputChecks,
    check_dtype,
    check_seed,
    check_sizes,
    choice,
    hidden_names,
    per_hidden,
    rate,
    residual_flags,
    weights_row,
)
from .description import Described, arguments
from .init import check_rule, initialize
from .layers import NORMALIZATIONS, Operation, pipeline
from .losses import Loss, check_pair, get_loss
from .normalization import BatchSum, draw_mask
from .threads import Scratch, TrainingLock
from .workspace import Buffers, Workspace

__all__ = ["Network"]

Array = np.ndarray
_NORMS = (None, *NORMALIZATIONS)  # what normalization= accepts per hidden layer


class Network(Scratch, Described, InputChecks):
    """A multilayer perceptron trained by backpropagation.

    Parameters
    ----------
    sizes : (N_0, ..., N_Q), the number of neurons of every layer, input first.
    activation : the hidden layers' activation, one name for all or a list of Q-1 names.
    output : the output layer's activation; by default the canonical one for ``loss``
        (softmax for cross_entropy, sigmoid for binary_cross_entropy, identity for
        squared_error, exp for poisson).
    loss : a name of ``betaprop.losses.LOSSES``.
    dtype : "float32" (default) or "float64".
    seed : seed of the generator that initialises the weights (step 1).
    memory : "all" (default) keeps s^q and y^q of every layer for step 4. "recompute"
        keeps them only at every k-th layer, k = ceil(sqrt(Q)) (and at Q), and recomputes
        the layers between two kept ones during step 4: work buffers O(sqrt(Q)) instead
        of O(Q), about one more forward pass of time, bit-identical gradients. Layers
        between kept ones then share buffers, so ``s``, ``y`` and ``beta`` are not
        available (inspect ``net.copy()``, which uses memory="all").
    normalization : None, "batch" (batch normalisation on every hidden layer), "layer" (layer
        normalisation, ``torch.nn.LayerNorm``), or a list of Q-1 entries (None or a name),
        one per hidden layer; see ``engine.layers``.
    dropout : the rate p in [0, 1) of inverted dropout on every hidden layer, or a list of
        Q-1 rates; the masks come from ``net.dropout_rng`` (seeded from ``seed``).
    init : None (each layer's activation chooses Glorot or He, uniform) or one rule of
        ``engine.init.RULES`` for every layer (step 1).
    residual : True: every hidden layer q with N_q = N_{q-1} adds its input to its output,
        y^q = y^{q-1} + f_q(u^q) (``engine.layers.residual``); or a list of Q-1 booleans,
        one per hidden layer (True only where N_q = N_{q-1}).

    Attributes
    ----------
    Q : index of the output layer.
    f : per-layer activations (``Activation`` objects); f[0] is unused.
    params, grads : flat parameter and gradient arrays (all weights, then all biases, then
        gamma and shift of the normalised layers).
    W, b, dW, db : per-layer views, index 0 unused; W[q] (N_q, N_{q-1}), b[q] (N_q, 1).
    gamma, shift, dgamma, dshift : views (N_q, 1) for normalised layers, else None.
    stats, running_mean, running_var : the running statistics of the normalised layers (a
        flat array and its (N_q, 1) views), used at inference; saved with the model.
    s, y, beta : after a pass, the pre-activations, outputs and local errors of every
        layer, (N_q, n) each; y[0] is the input batch (N_0, n).

    Threads and processes: passes that do not train (``predict``, ``forward``,
    ``forward_columns(x)``) may run from several threads at once; each thread has its own
    work buffers, and ``s``, ``y``, ``beta`` are those of the calling thread's last pass.
    Training one network from two threads at once is refused (``training_lock``); separate
    networks train independently. A network pickles (and ``copy.deepcopy``s) as its
    ``spec()``, parameters, running statistics and dropout generator, never its buffers.
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
        normalization: str | None | Sequence[str | None] = None,
        dropout: float | Sequence[float] = 0.0,
        init: str | None = None,
        residual: bool | Sequence[bool] = False,
    ) -> None:
        self.sizes = check_sizes(sizes)
        self.Q = len(self.sizes) - 1
        self.loss: Loss = get_loss(loss)
        self.dtype = check_dtype(dtype)
        hidden = hidden_names(activation, self.Q)
        out_f = get_activation(
            self.loss.canonical_output if output is None else output, "output activation"
        )
        check_pair(self.loss, out_f.name)
        if self.sizes[-1] == 1 and not out_f.elementwise:  # e^s / e^s = 1: nothing to learn
            raise ValueError(
                f"output activation {out_f.name} needs at least 2 outputs, got sizes[-1] = 1 "
                "(over one output it is the constant 1)"
            )
        self.activations: list[str] = [get_activation(a).name for a in hidden] + [out_f.name]
        # f[0]: layer 0 is the input, y^0 = x (the identity); it is never called
        self.f: list[Activation] = [get_activation("identity")]
        self.f += [get_activation(a) for a in self.activations]
        self.seed = check_seed(seed)
        self.normalization = per_hidden(
            "normalization", normalization, self.Q, choice("normalization", _NORMS)
        )
        self.dropout = per_hidden("dropout", dropout, self.Q, rate("dropout"))
        self.init = None if init is None else check_rule(init)
        self.residual = residual_flags(residual, self.sizes)
        # per layer q = 0..Q: its dropout rate (hidden layers only), its operations in
        # step 2's order (engine.layers), whether it has gamma^q and shift^q
        self.p = [0.0] + [float(rate) for rate in self.dropout] + [0.0]
        norms = [None, *self.normalization, None]
        self.ops: list[list[Operation]] = [[]]
        skips = [False, *self.residual, False]
        self.ops += [pipeline(norms[q], self.p[q], skips[q]) for q in range(1, self.Q + 1)]
        self.normalized = [any("gamma" in op.params for op in ops) for ops in self.ops]
        kept_stats = [any(op.state for op in ops) for ops in self.ops]
        self._buffers = Buffers(self.sizes, self.dtype, memory, self._buffer_kinds())
        self._dropped = [q for q in range(1, self.Q) if self.p[q]]
        # step 4, per layer: the operations after the affine map, backwards (the output
        # layer's are step 3's, the loss's); those with a path around W^q (residual)
        self._back = [ops[:0:-1] for ops in self.ops[:-1]] + [[]]
        self._skips = [[op for op in ops if op.has_skip] for ops in self.ops]
        # whether a training pass differs from inference (batch statistics, masks)
        self._modal = any(op.modal for ops in self.ops for op in ops)
        self._min_batch = max(op.min_batch for ops in self.ops for op in ops)
        self.memory = memory

        shapes = [(self.sizes[q], self.sizes[q - 1]) for q in range(1, self.Q + 1)]
        self.n_weights = sum(r * c for r, c in shapes)
        n_normed = sum(N for N, on in zip(self.sizes, self.normalized, strict=True) if on)
        n_stats = sum(N for N, on in zip(self.sizes, kept_stats, strict=True) if on)
        self.n_params = self.n_weights + sum(self.sizes[1:]) + 2 * n_normed
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self.grads = np.zeros(self.n_params, dtype=self.dtype)
        self.W, self.b, self.gamma, self.shift = self.layer_views(self.params)
        self.dW, self.db, self.dgamma, self.dshift = self.layer_views(self.grads)
        self.stats = np.zeros(2 * n_stats, dtype=self.dtype)
        self.running_mean, self.running_var = layout.normalized_views(
            self.stats, self.sizes, kept_stats
        )
        self.dropout_rng = np.random.default_rng(None if seed is None else [seed, 1])
        self.initialize(seed)
        self._training = TrainingLock()
        # Data parallel hook (training/distributed.py sets it while it trains): batch
        # normalisation's sums run over all processes' columns of the batch. None: one process.
        self.batch_sum: BatchSum | None = None

    # ----------------------------------------------------------------- parameters
    def _buffer_kinds(self) -> dict[str, list[str | None]]:
        """The work buffers the layers' operations ask for: name -> kind per layer q."""
        kinds: dict[str, list[str | None]] = {}
        for q, ops in enumerate(self.ops):
            for op in ops:
                for key, kind in op.buffers.items():
                    kinds.setdefault(key, [None] * (self.Q + 1))[q] = kind
        return kinds

    def layer_views(self, flat: Array) -> tuple[list, list, list, list]:
        """Per-layer views W[q], b[q], gamma[q], shift[q] of a flat array shaped like params."""
        return layout.layer_views(flat, self.sizes, self.normalized)

    def initialize(self, seed: int | None = None) -> None:
        """Step 1: weights by ``init`` (or each activation's rule), zero biases, gamma = 1.

        The normalised layers' shift is 0 and their running statistics start at mean 0,
        variance 1, as in ``torch.nn.BatchNorm1d``.
        """
        rules = [None] + [self.init or f.init for f in self.f[1:]]
        initialize(self.W, self.b, rules, np.random.default_rng(seed))
        for q in range(1, self.Q + 1):
            for op in self.ops[q]:
                op.init(self, q)

    # ----------------------------------------------------------------- the algorithm
    def forward_columns(self, x: Array, training: bool = False, new_masks: bool = True) -> Array:
        """Step 2 on a batch of columns x (N_0, n): returns y^Q, a (N_Q, n) view.

        x may be a SciPy sparse matrix: the first layer's products then use it as it is
        (SciPy's sparse-dense products), never a dense copy.

        ``training``: batch normalisation uses the batch's statistics (and updates the
        running ones) and dropout draws masks (or, with ``new_masks=False``, keeps those
        of the last pass: a gradient check needs the same function each time); otherwise
        the running statistics and no dropout (inference). No input checks (callers hold
        checked arrays); the pass's s^q and y^q stay for ``loss_value`` and ``backward``.
        """
        return self._forward_in(self.workspace(x.shape[1]), x, training, new_masks)

    def _forward_in(self, ws: Workspace, x: Array, training: bool, new_masks: bool) -> Array:
        """``forward_columns`` in the work buffers ``ws`` (predict's: examples as rows)."""
        if training and self._modal:
            # (data parallel: batch_sum's n is the whole batch, spread over the processes)
            whole = ws.n if self.batch_sum is None else self.batch_sum.n
            if whole < self._min_batch:
                raise ValueError(
                    "batch normalisation needs more than 1 example per batch in training, got 1"
                )
            for q in self._dropped if new_masks else ():
                draw_mask(self.dropout_rng, self.p[q], ws.mask[q])
        ws.training = training
        ws.sparse = scipy.sparse.issparse(x)
        ws.y[0] = x
        self._forward_layers(ws, 1, self.Q, update=training)
        ws.held = self._buffers.last_segment
        self._buffers.last = ws
        return ws.y[self.Q]

    def _forward_layers(self, ws: Workspace, first: int, last: int, update: bool) -> None:
        """Step 2 for layers q = first..last, from y^{first-1} (``update``: running stats).

        Each layer's operations in order (``engine.layers``): s^q = W^q y^{q-1} + b^q,
        [u^q = norm(s^q)], y^q = f_q(u^q), [dropout's mask]; a layer without normalisation
        has u^q = s^q.
        """
        ops = self.ops
        for q in range(first, last + 1):
            for op in ops[q]:
                op.forward(self, ws, q, update)

    def loss_value(self, d: Array, w: Array | None = None) -> float:
        """The mean loss of the last forward pass against targets d (N_Q, n).

        With per-example weights ``w`` (1, n): the weighted mean (1/n) sum_i w_i E_i.
        Reads the pass's s^Q and y^Q (and softmax's log-normaliser); the same number on
        every call.
        """
        ws, Q = self._pass("loss"), self.Q
        scratch = (ws.tmp[Q], ws.spare, ws.row)
        return self.loss.value(ws.s[Q], ws.y[Q], d, ws.lse, w, scratch)

    def backward(self, d: Array, w: Array | None = None) -> None:
        """Steps 3-5 of the last forward pass: beta^q for q = Q..1, and dE/dW^q, dE/db^q.

        Deviation from the seed: beta^Q carries the factor 1/n of the batch mean, so every
        beta^q and the gradients of step 5 are those of the mean loss; for the canonical
        pairs the loss gives the fused delta^Q = y^Q - d (same value, stable). With
        per-example weights ``w`` (1, n), column i of beta^Q is also multiplied by w_i:
        the gradient of (1/n) sum_i w_i E_i. Step 5 for layer q follows step 4 for layer q
        at once (it needs only beta^q and y^{q-1}); memory="recompute" relies on that.
        """
        ws, Q, f, W = self._pass("backward"), self.Q, self.f, self.W
        s, y, beta, tmp, kept = ws.s, ws.y, ws.beta, ws.tmp, self._buffers.kept
        ops, back, skips = self.ops, self._back, self._skips
        if self._modal and not ws.training:
            raise RuntimeError("backward needs a training pass: forward_columns(x, training=True)")
        if ws.rows:
            raise RuntimeError("the last pass was predict's (inference only): run forward first")
        # Step 3: delta^Q = (y^Q - d) ⊙ f'(s^Q), fused to y^Q - d for the canonical pair
        self.loss.output_delta(f[Q], s[Q], y[Q], d, beta[Q], tmp[Q], ws.row)
        beta[Q] *= 1.0 / ws.n  # the batch mean
        if w is not None:
            beta[Q] *= w  # the weighted mean: column i times w_i
        for q in range(Q, 0, -1):
            if q < Q:
                # Step 4: beta^q = f'(s^q) ⊙ (W^{q+1})^T beta^{q+1},  q = Q-1 down to 1
                np.dot(W[q + 1].T, beta[q + 1], out=beta[q])
                for op in skips[q + 1]:  # + g^{q+1} where layer q+1 is residual
                    op.skip(self, ws, q + 1)
                # then layer q's operations backwards: [dropout's mask], f'(u^q) ⊙ (the
                # activation), [from the error at u^q to the error at s^q (normalisation)]
                for op in back[q]:
                    op.backward(self, ws, q)
            if not kept[q - 1]:
                self._recompute(ws, q - 1)
            # Step 5: dE/dW^q = beta^q (y^{q-1})^T,  dE/db^q = beta^q 1_n (the affine map's)
            ops[q][0].backward(self, ws, q)

    def _recompute(self, ws: Workspace, p: int) -> None:
        """memory="recompute": step 2 again for the segment of layers that holds y^p.

        Deviation from the seed ("if memory is short, recompute"): the forward pass kept
        s^q, y^q only at the layers c = k, 2k, ..., Q; the segment c+1..c+k-1 is computed
        again from y^c: the same operations on the same values (the same masks, and the
        running statistics are not updated twice), so the same numbers.
        """
        k = self._buffers.k
        c = p // k * k  # the kept layer below p
        if c != ws.held:
            self._forward_layers(ws, c + 1, min(c + k - 1, self.Q - 1), update=False)
            ws.held = c

    # ----------------------------------------------------------------- public API
    def forward(self, X: Array) -> Array:
        """Step 2 on X of shape (n, N_0); returns y^Q as a new (n, N_Q) array.

        The pre-activations ``net.s[q]`` and outputs ``net.y[q]`` of every layer stay
        available, (N_q, n) each, for a backward pass or for inspection.
        """
        X = self.check_X(X)
        return self.forward_columns(X.T).T.copy()

    def loss_and_gradients(self, X: Array, D: Array, weights: Array | None = None) -> float:
        """Steps 2-5 on a batch: returns the mean loss; fills dW, db, beta.

        X has shape (n, N_0), D (n, N_Q) (one-hot rows for cross-entropy, the seed's d).
        Afterwards ``net.dW[q]``, ``net.db[q]`` (views of ``net.grads``) hold the gradient
        of the mean loss, and ``net.beta[q]`` the local errors beta^q, shape (N_q, n),
        with the 1/n of the batch mean folded in (multiply by n for per-example errors).
        ``weights`` (n,) make them those of the weighted mean (1/n) sum_i w_i E_i.
        A training pass: batch statistics (running ones updated) and new dropout masks.
        """
        X = self.check_X(X)
        D = self.check_D(D, X.shape[0])
        w = None if weights is None else weights_row(weights, X.shape[0], self.dtype)
        with self.training_lock():  # writes grads and the running statistics
            self.forward_columns(X.T, training=True)
            loss = self.loss_value(D.T, w)
            self.backward(D.T, w)
        return loss

    def predict(self, X: Array, batch_size: int = 4096) -> Array:
        """Outputs y^Q for X of shape (n, N_0), as (n, N_Q), computed in chunks of rows.

        X may be a SciPy sparse matrix (used as it is, never densified). Step 2 at
        inference with examples as rows in memory, as X's are (the layout in which BLAS
        splits a batch over threads best); ``net.s``, ``net.y`` then hold the last chunk's
        pass, which ``backward`` refuses (run ``forward`` for that).
        """
        X = self.check_X(X)
        out = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for start in range(0, X.shape[0], batch_size):
            # (a slice of a sparse X is a copy: X itself when it is one chunk)
            chunk = X if X.shape[0] <= batch_size else X[start : start + batch_size]
            ws = self._buffers.get(chunk.shape[0], rows=True)  # the layout of inference
            out[start : start + chunk.shape[0]] = self._forward_in(ws, chunk.T, False, False).T
        return out

    def copy(self, memory: str = "all") -> Network:
        """An independent network with the same architecture and parameters.

        ``memory`` is how the copy runs its passes, not part of the model: by default the
        copy keeps every layer (as diagnostics and traces need), whatever this network uses.
        """
        return self.astype(self.dtype, memory)

    def astype(self, dtype: str, memory: str = "all") -> Network:
        """A copy of this network in another dtype ("float32" or "float64"); see ``copy``."""
        twin = Network.from_spec({**self.spec(), "dtype": dtype}, memory=memory)
        twin.params[...] = self.params
        twin.stats[...] = self.stats
        twin.dropout_rng.bit_generator.state = self.dropout_rng.bit_generator.state
        twin.seed = self.seed
        return twin

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as ``spec()``, the memory plan, the parameters, the running statistics and
        the dropout generator's state: what predicts and trains on the other side (work
        buffers, gradients and the training lock are not part of a model)."""
        state = (self.params, self.stats, self.dropout_rng.bit_generator.state)
        return (_restore, (type(self), self.spec(), self.memory, *state))

    def __deepcopy__(self, memo: dict[int, Any]) -> Network:
        """An independent network: what pickling keeps, and the gradients."""
        restore, arguments = self.__reduce__()
        twin = restore(*arguments)  # copies of the arrays and of the generator's state
        twin.grads[...] = self.grads
        return twin

    @classmethod
    def from_spec(cls, spec: dict[str, Any], memory: str = "all") -> Network:
        """A network of the architecture that ``spec()`` described (initialised from its seed).

        Descriptions written before normalisation, dropout, init and residual layers existed
        lack those keys: they mean none, 0, the activations' rules and no skip.
        """
        return cls(**arguments(spec), memory=memory)


def _restore(
    cls: type[Network],
    spec: dict[str, Any],
    memory: str,
    params: Array,
    stats: Array,
    dropout_state: dict[str, Any],
) -> Network:
    """The network that ``Network.__reduce__`` described (unpickling, ``copy.deepcopy``)."""
    net = cls.from_spec(spec, memory=memory)
    net.params[...] = params
    net.stats[...] = stats
    net.dropout_rng.bit_generator.state = dropout_state
    return net
