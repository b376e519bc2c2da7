"""Benchmark: one training epoch of betaprop against scikit-learn, PyTorch and the GEMM bound.

``betaprop bench`` (or ``python benchmarks/bench.py``) times, in one run, one epoch after a
warm-up epoch, repeated (median, min, max), for each contender on each workload:

- ``betaprop``: ``betaprop.fit`` for one epoch, SGD (learning rate 0.01, momentum 0.9);
- ``sklearn``: scikit-learn's ``MLPClassifier(solver="sgd")`` with the same batch size and
  momentum (no Nesterov, no L2), one ``partial_fit`` per epoch, float32 input;
- ``torch``: PyTorch on the CPU, ``nn.Sequential`` + ``torch.optim.SGD``, a plain shuffled
  mini-batch loop, ``torch.set_num_threads`` equal to the BLAS threads (skipped with a note
  when PyTorch is not installed);
- ``bound``: the GEMM bound, only the matrix products an epoch needs, into preallocated
  outputs: forward W^q y^{q-1} (q = 1..Q), backward (W^{q+1})^T beta^{q+1} for the hidden
  layers only (q = Q-1..1), gradients beta^q (y^{q-1})^T (q = 1..Q), with the engine's
  layout (examples as columns); the targets are ratios to it;
- ``bound_rows``: the same products with examples as rows (scikit-learn's and PyTorch's
  layout). OpenBLAS's speed depends on the memory layout of a product's operands, so this
  shows how much of a gap between contenders is the layout's (not a target).

Each contender runs in its own Python process (its thread pools and its memory are its
own), which reports its epoch times and its peak resident memory. Further sections compare
``betaprop.MLPClassifier`` with scikit-learn's at the estimator level (when that class
exists) and the two memory modes of ``Network`` on a 256-layer network.

Times are noisy on a shared machine: read the medians and the ratios of one run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "WORKLOADS",
    "CONTENDERS",
    "TARGETS",
    "Workload",
    "GemmBound",
    "main",
    "run",
    "gemm_bound",
    "load",
]

Array = np.ndarray


@dataclass(frozen=True)
class Workload:
    """A training workload: data, layer sizes, hidden activation and batch size (float32)."""

    name: str
    sizes: tuple[int, ...]
    activation: str
    batch_size: int
    n: int  # number of examples (digits: all 1,797)
    data: str = "synthetic"  # "synthetic" or "digits"


WORKLOADS: dict[str, Workload] = {
    "wide": Workload("wide", (784, 256, 128, 10), "relu", 128, 60_000),
    "small": Workload("small", (64, 64, 10), "relu", 32, 1_797, data="digits"),
    "deep": Workload("deep", (128,) + (128,) * 64 + (10,), "tanh", 256, 8_192),
}
# --quick: fewer examples for the synthetic workloads (same layers, batch and per-batch work).
QUICK_N = {"wide": 10_000, "small": 1_797, "deep": 2_048}
CONTENDERS = ("betaprop", "sklearn", "torch", "bound", "bound_rows")
# The targets: betaprop's epoch time divided by the bound's, PyTorch's, scikit-learn's.
TARGETS: dict[str, dict[str, float]] = {
    "wide": {"bound": 1.15, "torch": 0.6, "sklearn": 0.45},
    "small": {"bound": 2.5, "torch": 0.15, "sklearn": 0.2},
    "deep": {"bound": 1.2, "torch": 0.55, "sklearn": 0.75},
}
# A workload's run is steady when every contender's slowest epoch is within this factor of
# its fastest: on a shared machine, a change of load mid-run shows as a wider spread.
STEADY = 1.3
LEARNING_RATE = 0.01
MOMENTUM = 0.9
CHECKPOINT_SIZES = (128,) + (128,) * 255 + (10,)  # Q = 256 layers
CHECKPOINT_N, CHECKPOINT_BATCH = 4_096, 256


# --------------------------------------------------------------------------- data
def load(workload: Workload, n: int | None = None) -> tuple[Array, Array]:
    """The workload's inputs X (n, N_0) as float32 and integer class labels (n,).

    Synthetic data are standard normal inputs labelled by the arg-max of a fixed random
    linear map (a learnable problem); digits are scikit-learn's 8x8 images scaled to [0, 1].
    """
    if workload.data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    n = workload.n if n is None else n
    X = rng.standard_normal((n, workload.sizes[0]), dtype=np.float32)
    projection = rng.standard_normal((workload.sizes[0], workload.sizes[-1]), dtype=np.float32)
    return X, np.argmax(X @ projection, axis=1).astype(np.int64)


def _one_hot(labels: Array, classes: int) -> Array:
    D = np.zeros((len(labels), classes), dtype=np.float32)
    D[np.arange(len(labels)), labels] = 1.0
    return D


# --------------------------------------------------------------------------- contenders
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


def _betaprop_epoch(workload: Workload, X: Array, labels: Array) -> Callable:
    import betaprop

    D = _one_hot(labels, workload.sizes[-1])
    net = betaprop.Network(
        workload.sizes, workload.activation, loss="cross_entropy", dtype="float32", seed=0
    )
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
            batch_size=workload.batch_size,
            seed=next(counter),
            optimizer_state=state,
        )

    return epoch


def _sklearn_epoch(workload: Workload, X: Array, labels: Array) -> Callable:
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


def _torch_epoch(workload: Workload, X: Array, labels: Array, threads: int) -> Callable:
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


# --------------------------------------------------------------------------- workers
def _peak_rss_bytes() -> int:
    """Peak resident memory of this process, in bytes.

    On Linux, VmHWM of /proc/self/status (``ru_maxrss`` would carry over the parent's peak
    through fork and exec); elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process; called in a child process by ``_spawn``."""
    from threadpoolctl import threadpool_limits

    threads = int(task["threads"])
    threadpool_limits(limits=threads)
    kind = task["kind"]
    if kind == "checkpoint":
        return _checkpoint_worker(task)
    if kind == "estimators":
        return _estimator_worker(task)
    if kind == "profile":
        return _profile_worker(task)
    workload = WORKLOADS[task["workload"]]
    X, labels = load(workload, task.get("n"))
    contender = task["contender"]
    if contender == "torch":
        import torch  # noqa: F401  (its libraries count as its memory, not as the data's)
    if contender == "sklearn":
        import sklearn.neural_network  # noqa: F401
    import betaprop  # noqa: F401

    baseline = _peak_rss_bytes()
    epoch: Callable[[], None]
    if contender == "betaprop":
        epoch = _betaprop_epoch(workload, X, labels)
    elif contender == "sklearn":
        epoch = _sklearn_epoch(workload, X, labels)
    elif contender == "torch":
        epoch = _torch_epoch(workload, X, labels, threads)
    else:
        layout = "rows" if contender == "bound_rows" else "columns"
        epoch = gemm_bound(workload.sizes, len(X), workload.batch_size, layout=layout)
    return _serve(epoch, baseline)


def _serve(epoch: Callable[[], None], baseline: int) -> dict[str, Any]:
    """Run a warm-up epoch, then one timed epoch per "epoch" line read from stdin.

    The parent asks each contender in turn, so that their epochs interleave: a change of
    load on a shared machine then hits all of them alike.
    """
    epoch()  # warm-up epoch: buffers, caches, thread pools
    print(_READY, flush=True)
    seconds = []
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        started = time.perf_counter()
        epoch()
        seconds.append(time.perf_counter() - started)
        print(f"{_READY} {seconds[-1]!r}", flush=True)
    peak = _peak_rss_bytes()
    return {"seconds": seconds, "peak_rss": peak, "over_data": peak - baseline}


def _checkpoint_worker(task: dict[str, Any]) -> dict[str, Any]:
    import betaprop

    rng = np.random.default_rng(0)
    n = int(task["n"])
    X = rng.standard_normal((n, CHECKPOINT_SIZES[0]), dtype=np.float32)
    D = _one_hot(rng.integers(0, CHECKPOINT_SIZES[-1], n), CHECKPOINT_SIZES[-1])
    baseline = _peak_rss_bytes()
    net = betaprop.Network(
        CHECKPOINT_SIZES, "tanh", loss="cross_entropy", seed=0, memory=task["memory"]
    )
    optimizer = betaprop.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM)
    state = optimizer.init(net.params)

    def epoch() -> None:
        betaprop.fit(
            net,
            X,
            D,
            optimizer=optimizer,
            epochs=1,
            batch_size=CHECKPOINT_BATCH,
            seed=1,
            optimizer_state=state,
        )

    result = _serve(epoch, baseline)
    result["work_bytes"] = net.buffers(CHECKPOINT_BATCH).nbytes
    result["param_bytes"] = int(net.params.nbytes)
    return result


PHASES = ("gather", "step 2", "loss", "steps 3-4", "step 5", "step 6")


def _profile_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Where an epoch of betaprop goes: fit's loop, timed phase by phase (wall clock).

    The same calls as ``fit`` (gather with np.take, steps 2-5 of the network, the SGD
    update), with a clock read between them. Each round times one such epoch, one plain
    ``fit`` epoch and one epoch of the GEMM bound, interleaved; every figure is the median
    over the rounds (after one warm-up round).
    """
    import betaprop

    workload = WORKLOADS[task["workload"]]
    X, labels = load(workload, task.get("n"))
    D = _one_hot(labels, workload.sizes[-1])
    net = betaprop.Network(workload.sizes, workload.activation, loss="cross_entropy", seed=0)
    optimizer = betaprop.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM)
    state = optimizer.init(net.params)
    n, batch_size = len(X), workload.batch_size
    x_batch = np.empty((batch_size, X.shape[1]), dtype=np.float32)
    d_batch = np.empty((batch_size, D.shape[1]), dtype=np.float32)
    order = np.arange(n)
    rng = np.random.default_rng(0)
    clock = time.perf_counter

    def profiled_epoch() -> dict[str, float]:
        totals = dict.fromkeys(PHASES, 0.0)
        rng.shuffle(order)
        for start in range(0, n, batch_size):
            t0 = clock()
            idx = order[start : start + batch_size]
            x, d = x_batch[: len(idx)], d_batch[: len(idx)]
            np.take(X, idx, axis=0, out=x, mode="clip")
            np.take(D, idx, axis=0, out=d, mode="clip")
            ws = net.buffers(len(idx))
            t1 = clock()
            net._forward(ws, x.T)
            t2 = clock()
            net._loss(ws, d.T)
            t3 = clock()
            net._backward(ws, d.T)
            t4 = clock()
            net._gradients(ws)
            t5 = clock()
            optimizer.update(net.params, net.grads, state, net.n_weights)
            t6 = clock()
            marks = (t0, t1, t2, t3, t4, t5, t6)
            for phase, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True):
                totals[phase] += b - a
        return totals

    fit_epoch = _betaprop_epoch(workload, X, labels)
    bound = gemm_bound(workload.sizes, n, batch_size)
    rounds: list[dict[str, float]] = []
    fit_seconds, bound_seconds = [], []
    for round_ in range(int(task["repeats"]) + 1):  # round 0 is a warm-up
        phases = profiled_epoch()
        started = clock()
        fit_epoch()
        middle = clock()
        bound()
        if round_:
            rounds.append(phases)
            fit_seconds.append(middle - started)
            bound_seconds.append(clock() - middle)
    return {
        "phases": {k: statistics.median(r[k] for r in rounds) for k in PHASES},
        "fit": statistics.median(fit_seconds),
        "bound": statistics.median(bound_seconds),
    }


def _profile(args: argparse.Namespace, threads: int, say: Callable[[str], None]) -> Any:
    """Print where betaprop's epoch goes, phase by phase, for each chosen workload."""
    out = {}
    for name in args.workloads:
        n = QUICK_N[name] if args.quick else WORKLOADS[name].n
        task = {"kind": "profile", "workload": name, "n": n, "repeats": args.repeats}
        result = _spawn({**task, "threads": threads})
        say("")
        if "error" in result:
            say(f"note: profile of {name} failed: {result['error']}")
            continue
        phases, total = result["phases"], sum(result["phases"].values())
        say(
            f"## profile, {name}: betaprop's epoch phase by phase (s/epoch, median of "
            f"{args.repeats}, interleaved with fit and bound epochs)"
        )
        say("| phase | s/epoch | share | ÷ bound |")
        say("|---|---|---|---|")
        for phase, seconds in phases.items():
            say(
                f"| {phase} | {seconds:.4f} | {seconds / total:.0%} | "
                f"{seconds / result['bound']:.2f} |"
            )
        say(
            f"| sum of phases | {total:.4f} | 100% | {total / result['bound']:.2f} |\n"
            f"| fit epoch (median) | {result['fit']:.4f} | | "
            f"{result['fit'] / result['bound']:.2f} |\n"
            f"| GEMM bound (median) | {result['bound']:.4f} | | 1.00 |"
        )
        out[name] = result
    return out


def _estimator_worker(task: dict[str, Any]) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier as SkMLP

    digits = load_digits()
    X = (digits.data / 16.0).astype(task["dtype"])
    y = digits.target
    max_iter = int(task["max_iter"])
    params: dict[str, Any] = {
        "hidden_layer_sizes": (64,),
        "activation": "relu",
        "solver": task["solver"],
        "alpha": 1e-4,
        "batch_size": 32,
        "learning_rate_init": 0.001 if task["solver"] == "adam" else 0.01,
        "max_iter": max_iter,
        "tol": 0.0,
        "n_iter_no_change": max_iter + 1,  # run exactly max_iter epochs
        "shuffle": True,
        "random_state": 0,
    }
    if task["solver"] == "sgd":
        params.update(momentum=MOMENTUM, nesterovs_momentum=False)
    out: dict[str, Any] = {}
    contenders: list[tuple[str, Any]] = [("betaprop", _estimator_class()), ("sklearn", SkMLP)]
    for name, cls in contenders:
        seconds, score = [], math.nan
        for _ in range(int(task["repeats"]) + 1):  # the first fit is a warm-up
            model = cls(**params)
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, y)
            seconds.append(time.perf_counter() - started)
            score = float(model.score(X, y))
        out[name] = {"seconds": seconds[1:], "train_accuracy": score}
    return out


_READY = "@@betaprop-bench"
_CHILD = "import json, sys; from betaprop.bench import _worker; " + (
    "print('\\n' + json.dumps(_worker(json.loads(sys.argv[1]))))"
)


def _interleaved(tasks: dict[str, dict[str, Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Time ``repeats`` epochs of every contender, round-robin, each in its own process.

    Every child builds its model and runs a warm-up epoch, then times one epoch each time
    it is asked; the order of the contenders rotates from round to round.
    """
    children: dict[str, subprocess.Popen] = {}
    failed: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(task)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if _read_ready(child) is None:
            failed[name] = {"error": _child_error(child)}
        else:
            children[name] = child
    names = list(children)
    for round_ in range(repeats):
        shift = round_ % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            child = children[name]
            if child.poll() is not None:
                continue
            assert child.stdin is not None
            child.stdin.write("epoch\n")
            child.stdin.flush()
            _read_ready(child)
            time.sleep(0.25)  # OpenBLAS workers spin ~0.1 s after their last call: let them stop
    results: dict[str, dict[str, Any]] = {}
    for name, child in children.items():
        out, err = child.communicate("done\n")
        lines = [line for line in out.strip().splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            results[name] = {"error": (err.strip().splitlines() or ["(no output)"])[-1]}
        else:
            results[name] = dict(json.loads(lines[-1]))
    return {**failed, **results}


def _read_ready(child: subprocess.Popen) -> str | None:
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(_READY):
            return line
    return None


def _child_error(child: subprocess.Popen) -> str:
    _, err = child.communicate()
    return (err.strip().splitlines() or ["(no output)"])[-1]


def _spawn(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``_worker(task)`` in a fresh Python process and return its result."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(task)], capture_output=True, text=True
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": last}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- report
def _stats(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
    }


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f}"


def machine() -> dict[str, Any]:
    """Where the benchmark ran: CPU, cores, library versions and the BLAS kernel."""
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = [
        f"{p.get('internal_api')} {p.get('version')} {p.get('architecture', '')} "
        f"({p.get('num_threads')} threads, {os.path.basename(p.get('filepath', ''))})"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    ]
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "environment": {
            k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
        },
    }
    for module, distribution in (("sklearn", "scikit-learn"), ("torch", "torch")):
        try:  # the version without importing (PyTorch's threads stay out of this process)
            info[module] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            info[module] = None
    return info


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            return int(pool["num_threads"])
    return os.cpu_count() or 1


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="betaprop bench",
        description="Time one training epoch of betaprop, scikit-learn, PyTorch and the GEMM "
        "bound; compare estimators and memory modes.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer examples and repeats")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {list(WORKLOADS)}"
    )
    parser.add_argument(
        "--contenders", default=",".join(CONTENDERS), help=f"comma list of {list(CONTENDERS)}"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed epochs (default 5, quick 3)"
    )
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: NumPy's)")
    parser.add_argument("--no-estimators", action="store_true", help="skip the estimator table")
    parser.add_argument("--no-checkpoint", action="store_true", help="skip the memory modes")
    parser.add_argument(
        "--profile", action="store_true", help="also time betaprop's epoch phase by phase"
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    for option, accepted in (("workloads", WORKLOADS), ("contenders", CONTENDERS)):
        chosen = [w for w in getattr(args, option).split(",") if w]
        for name in chosen:
            if name not in accepted:
                parser.error(f"--{option} must name some of {list(accepted)}, got {name!r}")
        setattr(args, option, chosen)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 1:
        parser.error(f"--repeats must be an integer >= 1, got {args.repeats!r}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be an integer >= 1, got {args.threads!r}")
    return args


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark sections chosen in ``args``; ``say`` prints each line."""
    threads = args.threads or _blas_threads()
    info = machine()
    results: dict[str, Any] = {"machine": info, "threads": threads, "workloads": {}}
    say(
        f"machine: {info['cpu']}, {info['cores']} cores; BLAS threads {threads}; "
        f"load average {_load()} (other processes share the cores: compare within one run)"
    )
    say(
        f"python {info['python']}, numpy {info['numpy']}, scikit-learn {info['sklearn']}, "
        f"torch {info['torch']}"
    )
    for line in info["blas"]:
        say(f"BLAS: {line}")
    if info["environment"]:
        say(f"note: {info['environment']} is set; it may slow OpenBLAS (unset it to benchmark)")
    contenders = list(args.contenders)
    if "torch" in contenders and info["torch"] is None:
        say("note: PyTorch is not installed; the torch contender is skipped")
        contenders.remove("torch")

    for name in args.workloads:
        workload = WORKLOADS[name]
        n = QUICK_N[name] if args.quick else workload.n
        say("")
        say(
            f"## {name}: {n} x {workload.sizes[0]}, {len(workload.sizes) - 2} hidden "
            f"({workload.activation}), sizes {_short(workload.sizes)}, "
            f"batch {workload.batch_size}, float32, SGD lr {LEARNING_RATE} momentum {MOMENTUM}; "
            f"{args.repeats} epochs after a warm-up"
        )
        rows: dict[str, Any] = {}
        tasks = {
            contender: {
                "kind": "epoch",
                "workload": name,
                "contender": contender,
                "threads": threads,
                "n": n,
            }
            for contender in contenders
        }
        for contender, result in _interleaved(tasks, args.repeats).items():
            if "error" in result or not result["seconds"]:
                say(f"note: {contender} failed: {result.get('error', 'no epoch timed')}")
                continue
            rows[contender] = {**result, **_stats(result["seconds"])}
        rows = {c: rows[c] for c in contenders if c in rows}
        _add_ratios(rows)
        unsteady = _unsteady(rows)
        results["workloads"][name] = {
            "n": n,
            "workload": asdict(workload),
            "rows": rows,
            "steady": not unsteady,
        }
        for line in _epoch_table(rows):
            say(line)
        for line in _target_lines(name, rows):
            say(line)
        if unsteady:
            spreads = ", ".join(f"{c} {spread:.2f}" for c, spread in unsteady.items())
            say(
                f"note: unsteady epochs (max ÷ min > {STEADY}: {spreads}): the machine's load "
                "changed during this workload, so its ratios are unreliable; run it again"
            )

    if args.profile:
        results["profile"] = _profile(args, threads, say)
    if not args.no_estimators:
        results["estimators"] = _estimators(args, threads, say)
    if not args.no_checkpoint:
        results["checkpoint"] = _checkpoint(args, threads, say)
    say("")
    say(f"load average at the end: {_load()}")
    return results


def _load() -> str:
    """The 1, 5 and 15 minute load averages, where the system reports them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "unknown"


def _short(sizes: Sequence[int]) -> str:
    if len(sizes) <= 6:
        return " -> ".join(map(str, sizes))
    return f"{sizes[0]} -> {len(sizes) - 2} x {sizes[1]} -> {sizes[-1]}"


def _unsteady(rows: dict[str, Any]) -> dict[str, float]:
    """The contenders whose slowest timed epoch took over STEADY times their fastest."""
    spreads = {name: row["max"] / row["min"] for name, row in rows.items()}
    return {name: spread for name, spread in spreads.items() if spread > STEADY}


def _add_ratios(rows: dict[str, Any]) -> None:
    for row in rows.values():
        for other in ("bound", "betaprop"):
            if other in rows:
                row[f"per_{other}"] = row["median"] / rows[other]["median"]


def _epoch_table(rows: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | s/epoch median | min | max | ÷ bound | ÷ betaprop | peak RSS MiB "
        "| over data MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        per_bound = f"{row['per_bound']:.2f}" if "per_bound" in row else "-"
        per_betaprop = f"{row['per_betaprop']:.2f}" if "per_betaprop" in row else "-"
        lines.append(
            f"| {name} | {row['median']:.4f} | {row['min']:.4f} | {row['max']:.4f} | "
            f"{per_bound} | {per_betaprop} | {_mib(row['peak_rss'])} | {_mib(row['over_data'])} |"
        )
    return lines


def _target_lines(name: str, rows: dict[str, Any]) -> list[str]:
    if "betaprop" not in rows or name not in TARGETS:
        return []
    parts, below = [], []
    for other, target in TARGETS[name].items():
        if other in rows:
            ratio = rows["betaprop"]["median"] / rows[other]["median"]
            verdict = "met" if ratio <= target else "missed"
            part = f"betaprop ÷ {other} = {ratio:.3f} (target <= {target}: {verdict}"
            if other != "bound" and "bound" in rows:
                # the target as a time: target x the contender's epoch, over the bound's
                needed = target * rows[other]["median"] / rows["bound"]["median"]
                part += f"; needs betaprop <= {needed:.2f} x bound"
                if needed < 1.0:
                    below.append(other)
            parts.append(part + ")")
    lines = ["targets: " + "; ".join(parts)] if parts else []
    if below:
        lines.append(
            f"note: in this run the target against {' and '.join(below)} asks for less time "
            "than the GEMM bound alone (the matrix products every contender performs)"
        )
    return lines


def _estimator_class() -> Any:
    """``betaprop.MLPClassifier`` where it exists (it is written separately), else None."""
    try:
        import betaprop

        return betaprop.MLPClassifier  # type: ignore[attr-defined]
    except (AttributeError, ImportError):
        return None


def _estimators(args: argparse.Namespace, threads: int, say: Callable[[str], None]) -> Any:
    say("")
    if _estimator_class() is None:
        say("## estimators: betaprop.MLPClassifier does not exist yet; table skipped")
        return None
    max_iter = 10 if args.quick else 30
    say(
        f"## estimators: digits (1797 x 64), hidden (64,), relu, batch 32, alpha 1e-4, "
        f"{max_iter} epochs, fit time median of {args.repeats} after a warm-up fit"
    )
    lines = [
        "| solver | input | betaprop fit s | sklearn fit s | betaprop ÷ sklearn "
        "| train accuracy betaprop / sklearn |",
        "|---|---|---|---|---|---|",
    ]
    table = []
    for solver in ("adam", "sgd"):
        for dtype in ("float64", "float32"):
            task = {
                "kind": "estimators",
                "solver": solver,
                "dtype": dtype,
                "max_iter": max_iter,
                "repeats": args.repeats,
                "threads": threads,
            }
            result = _spawn(task)
            if "error" in result:
                say(f"note: estimators {solver} {dtype} failed: {result['error']}")
                continue
            ours = statistics.median(result["betaprop"]["seconds"])
            theirs = statistics.median(result["sklearn"]["seconds"])
            table.append({"solver": solver, "dtype": dtype, **result, "ratio": ours / theirs})
            lines.append(
                f"| {solver} | {dtype} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} "
                f"(target <= 0.5) | {result['betaprop']['train_accuracy']:.3f} / "
                f"{result['sklearn']['train_accuracy']:.3f} |"
            )
    for line in lines:
        say(line)
    return table


def _checkpoint(args: argparse.Namespace, threads: int, say: Callable[[str], None]) -> Any:
    say("")
    n = 256 if args.quick else CHECKPOINT_N
    say(
        f"## memory modes: {n} x 128, {_short(CHECKPOINT_SIZES)} (Q = {len(CHECKPOINT_SIZES) - 1}),"
        f" tanh, batch {CHECKPOINT_BATCH}, float32; {args.repeats} epochs after a warm-up"
    )
    rows: dict[str, Any] = {}
    tasks = {
        memory: {"kind": "checkpoint", "memory": memory, "n": n, "threads": threads}
        for memory in ("all", "checkpoint")
    }
    for memory, result in _interleaved(tasks, args.repeats).items():
        if "error" in result or not result["seconds"]:
            say(f"note: memory={memory!r} failed: {result.get('error', 'no epoch timed')}")
            continue
        rows[memory] = {**result, **_stats(result["seconds"])}
    rows = {m: rows[m] for m in ("all", "checkpoint") if m in rows}
    lines = [
        "| memory | work buffers MiB | peak RSS MiB | over data MiB | s/epoch median | ÷ all |",
        "|---|---|---|---|---|---|",
    ]
    for memory, row in rows.items():
        ratio = row["median"] / rows["all"]["median"] if "all" in rows else math.nan
        row["per_all"] = ratio
        lines.append(
            f"| {memory} | {_mib(row['work_bytes'])} | {_mib(row['peak_rss'])} | "
            f"{_mib(row['over_data'])} | {row['median']:.4f} | {ratio:.2f} |"
        )
    for line in lines:
        say(line)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``betaprop bench``: run the benchmark and print its tables."""
    args = _parse(argv)
    results = run(args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
