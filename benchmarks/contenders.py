"""One training epoch of each contender: betaprop, scikit-learn, PyTorch and the GEMM bound.

Each ``*_epoch`` function builds its model once and returns a callable that runs one epoch;
the workers time those calls. betaprop is used only through its public API (``fit``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.workloads import LEARNING_RATE, MOMENTUM, Workload, one_hot

Array = np.ndarray


class GemmBound:
    """One epoch of only the matrix products of steps 2, 4 and 5, into preallocated outputs.

    Calling it runs the epoch: for each mini-batch (the last one may be smaller),
    s^q = W^q y^{q-1} for q = 1..Q, beta^q = (W^{q+1})^T beta^{q+1} for q = Q-1..1 (never
    beta^0) and dW^q = beta^q (y^{q-1})^T for q = 1..Q. Operands are C-contiguous (N_q, m)
    columns, as in the engine; their values do not matter. ``operands[m]`` holds the
    (y, s, beta) lists for batches of m examples; the step 4 products go to ``s`` (a
    scratch output), so ``beta`` stays as drawn. The products are ``np.dot`` calls, as in the
    engine (for small matrices about 0.4 µs cheaper than ``np.matmul``: the bound stays a
    floor for the engine's own calls).

    ``layout="rows"`` stores every (y, s, beta) transposed, (m, N_q) with examples as rows
    (scikit-learn's and PyTorch's layout), and does the same products in that form:
    (s^q)^T = (y^{q-1})^T (W^q)^T, (beta^q)^T = (beta^{q+1})^T W^{q+1} and
    dW^q = ((beta^q)^T)^T (y^{q-1})^T. Same numbers, other memory layouts: OpenBLAS's speed
    depends on them, so the two bounds differ.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        n: int,
        batch_size: int,
        dtype: str = "float32",
        layout: str = "columns",
    ):
        if layout not in ("columns", "rows"):
            raise ValueError(f"layout must be one of ['columns', 'rows'], got {layout!r}")
        self.layout = layout
        Q = self.Q = len(sizes) - 1
        rng = np.random.default_rng(0)

        def draw(shape: tuple[int, int]) -> Array:
            return rng.standard_normal(shape).astype(dtype)

        self.W: list[Any] = [None] + [draw((sizes[q], sizes[q - 1])) for q in range(1, Q + 1)]
        self.dW: list[Any] = [None] + [np.empty_like(self.W[q]) for q in range(1, Q + 1)]
        self.batches = [min(batch_size, n - start) for start in range(0, n, batch_size)]
        self.operands: dict[int, tuple[list[Any], list[Any], list[Any]]] = {}
        for m in sorted(set(self.batches)):

            def shape(N: int, m: int = m) -> tuple[int, int]:
                return (N, m) if layout == "columns" else (m, N)

            y: list[Any] = [draw(shape(N)) for N in sizes]
            s: list[Any] = [None] + [np.empty(shape(N), dtype=dtype) for N in sizes[1:]]
            beta: list[Any] = [None] + [draw(shape(N)) for N in sizes[1:]]
            self.operands[m] = (y, s, beta)

    def __call__(self) -> None:
        if self.layout == "rows":
            return self._rows()
        Q, W, dW = self.Q, self.W, self.dW
        for m in self.batches:
            y, s, beta = self.operands[m]
            for q in range(1, Q + 1):
                np.dot(W[q], y[q - 1], out=s[q])  # step 2: W^q y^{q-1}
            for q in range(Q - 1, 0, -1):
                np.dot(W[q + 1].T, beta[q + 1], out=s[q])  # step 4: (W^{q+1})^T beta^{q+1}
            for q in range(1, Q + 1):
                np.dot(beta[q], y[q - 1].T, out=dW[q])  # step 5: beta^q (y^{q-1})^T

    def _rows(self) -> None:
        """The same products with examples as rows: every y, s, beta is (m, N_q)."""
        Q, W, dW = self.Q, self.W, self.dW
        for m in self.batches:
            y, s, beta = self.operands[m]
            for q in range(1, Q + 1):
                np.dot(y[q - 1], W[q].T, out=s[q])  # step 2, transposed
            for q in range(Q - 1, 0, -1):
                np.dot(beta[q + 1], W[q + 1], out=s[q])  # step 4, transposed
            for q in range(1, Q + 1):
                np.dot(beta[q].T, y[q - 1], out=dW[q])  # step 5


def gemm_bound(
    sizes: Sequence[int], n: int, batch_size: int, dtype: str = "float32", layout: str = "columns"
) -> GemmBound:
    """The GEMM bound's epoch for layer sizes (N_0..N_Q), n examples, mini-batches of batch_size."""
    return GemmBound(sizes, n, batch_size, dtype, layout)


def fit_epoch(net: Any, X: Array, D: Array, batch_size: int) -> Callable[[], None]:
    """One epoch of ``betaprop.fit``: SGD (lr 0.01, momentum 0.9), a new shuffle each call.

    Only arguments that every version of ``fit`` since the first benchmark accepts, so the
    same epoch runs on two source trees (``compare``).
    """
    import betaprop

    optimizer = betaprop.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM)
    state = optimizer.init(net.params)
    counter = iter(range(1, 1_000_000))

    def epoch() -> None:
        betaprop.fit(
            net,
            X,
            D,
            optimizer=optimizer,
            epochs=1,
            batch_size=batch_size,
            seed=next(counter),
            optimizer_state=state,
        )

    return epoch


def betaprop_network(workload: Workload, memory: str = "all") -> Any:
    """The workload's network: softmax + cross-entropy output, float32, seed 0."""
    import betaprop

    return betaprop.Network(
        workload.sizes,
        workload.activation,
        loss="cross_entropy",
        dtype="float32",
        seed=0,
        memory=memory,
    )


def betaprop_epoch(workload: Workload, X: Array, labels: Array) -> Callable[[], None]:
    """betaprop's epoch on the workload (``betaprop.fit``, one epoch per call)."""
    D = one_hot(labels, workload.sizes[-1])
    return fit_epoch(betaprop_network(workload), X, D, workload.batch_size)


def sklearn_epoch(workload: Workload, X: Array, labels: Array) -> Callable[[], None]:
    """scikit-learn's ``MLPClassifier(solver="sgd")``: one ``partial_fit`` per epoch."""
    from sklearn.neural_network import MLPClassifier

    classes = np.arange(workload.sizes[-1])
    model = MLPClassifier(
        hidden_layer_sizes=workload.sizes[1:-1],
        activation=workload.activation,
        solver="sgd",
        alpha=0.0,
        batch_size=workload.batch_size,
        learning_rate_init=LEARNING_RATE,
        momentum=MOMENTUM,
        nesterovs_momentum=False,
        shuffle=True,
        random_state=0,
    )

    def epoch() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(X, labels, classes=classes)

    return epoch


def torch_epoch(workload: Workload, X: Array, labels: Array, threads: int) -> Callable[[], None]:
    """PyTorch on the CPU: ``nn.Sequential`` + ``torch.optim.SGD``, a shuffled batch loop."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers: list[Any] = []
    sizes = workload.sizes
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[workload.activation]
    for q in range(1, len(sizes)):
        layers.append(torch.nn.Linear(sizes[q - 1], sizes[q]))
        if q < len(sizes) - 1:
            layers.append(act())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    criterion = torch.nn.CrossEntropyLoss()  # log-softmax + cross-entropy, batch mean
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(0)
    n, batch_size = len(X), workload.batch_size

    def epoch() -> None:
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)

    return epoch
