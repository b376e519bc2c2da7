"""The child side: one measurement per Python process (its thread pools, its memory).

A child runs ``worker(task)``: it builds what the task names, runs a warm-up epoch, then
times one epoch for each "epoch" line read from stdin (``serve``) and prints its result as
one JSON line. betaprop is used only through its public API: ``fit``, ``Network``'s
column-layout methods (``forward_columns``, ``loss_value``, ``backward``, ``work_bytes``)
and the optimizer's ``update``.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.contenders import (
    betaprop_epoch,
    betaprop_network,
    fit_epoch,
    gemm_bound,
    sklearn_epoch,
    torch_epoch,
)
from benchmarks.workloads import (
    LEARNING_RATE,
    MEMORY_ACTIVATION,
    MEMORY_BATCH,
    MEMORY_SIZES,
    MOMENTUM,
    WORKLOADS,
    Workload,
    load,
    load_memory,
    one_hot,
)

READY = "@@betaprop-bench"  # the line a child prints when it is ready for the next request
PHASES = ("gather", "step 2", "loss", "steps 3-5", "step 6")


def peak_rss_bytes() -> int:
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


def worker(task: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process; called in a child process (see ``processes``)."""
    from threadpoolctl import threadpool_limits

    threads = int(task["threads"])
    threadpool_limits(limits=threads)
    kind = task["kind"]
    if kind == "memory":
        return memory_worker(task)
    if kind == "estimators":
        return estimator_worker(task)
    if kind == "profile":
        return profile_worker(task)
    return epoch_worker(task, threads)


def epoch_worker(task: dict[str, Any], threads: int) -> dict[str, Any]:
    """One contender's epochs on one workload, served on request."""
    workload = WORKLOADS[task["workload"]]
    X, labels = load(workload, task.get("n"))
    contender = task["contender"]
    if contender == "torch":
        import torch  # noqa: F401  (its libraries count as its memory, not as the data's)
    if contender == "sklearn":
        import sklearn.neural_network  # noqa: F401
    import betaprop  # noqa: F401

    baseline = peak_rss_bytes()
    epoch: Callable[[], None]
    if contender == "betaprop":
        epoch = betaprop_epoch(workload, X, labels)
    elif contender == "sklearn":
        epoch = sklearn_epoch(workload, X, labels)
    elif contender == "torch":
        epoch = torch_epoch(workload, X, labels, threads)
    else:
        layout = "rows" if contender == "bound_rows" else "columns"
        epoch = gemm_bound(workload.sizes, len(X), workload.batch_size, layout=layout)
    return serve(epoch, baseline)


def serve(epoch: Callable[[], None], baseline: int) -> dict[str, Any]:
    """Run a warm-up epoch, then one timed epoch per "epoch" line read from stdin.

    The parent asks each contender in turn, so that their epochs interleave: a change of
    load on a shared machine then hits all of them alike.
    """
    epoch()  # warm-up epoch: buffers, caches, thread pools
    print(READY, flush=True)
    seconds = []
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        started = time.perf_counter()
        epoch()
        seconds.append(time.perf_counter() - started)
        print(f"{READY} {seconds[-1]!r}", flush=True)
    peak = peak_rss_bytes()
    return {"seconds": seconds, "peak_rss": peak, "over_data": peak - baseline}


def memory_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Epochs of the Q = 256 network with ``task["memory"]``, and its work buffers' bytes."""
    import betaprop  # noqa: F401  (the library's own memory is not the network's)

    X, D = load_memory(int(task["n"]))
    baseline = peak_rss_bytes()
    workload = Workload("memory", MEMORY_SIZES, MEMORY_ACTIVATION, MEMORY_BATCH, len(X))
    net = betaprop_network(workload, memory=task["memory"])
    result = serve(fit_epoch(net, X, D, MEMORY_BATCH), baseline)
    result["work_bytes"] = int(net.work_bytes(MEMORY_BATCH))
    result["param_bytes"] = int(net.params.nbytes)
    return result


def _phase_epoch(workload: Workload, X: np.ndarray, D: np.ndarray) -> Callable[[], dict]:
    """An epoch of fit's loop, timed phase by phase (``PHASES``); returns the totals."""
    import betaprop

    net = betaprop_network(workload)
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
            t1 = clock()
            net.forward_columns(x.T)  # step 2
            t2 = clock()
            net.loss_value(d.T)
            t3 = clock()
            net.backward(d.T)  # steps 3-5
            t4 = clock()
            optimizer.update(net.params, net.grads, state, net.n_weights)  # step 6
            t5 = clock()
            marks = (t0, t1, t2, t3, t4, t5)
            for phase, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True):
                totals[phase] += b - a
        return totals

    return profiled_epoch


def profile_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Where an epoch of betaprop goes: fit's loop, timed phase by phase (wall clock).

    The same calls as ``fit`` (gather with np.take, steps 2-5 of the network, the SGD
    update), with a clock read between them. Each round times one such epoch, one plain
    ``fit`` epoch and one epoch of the GEMM bound, interleaved; every figure is the median
    over the rounds (after one warm-up round).
    """
    workload = WORKLOADS[task["workload"]]
    X, labels = load(workload, task.get("n"))
    profiled_epoch = _phase_epoch(workload, X, one_hot(labels, workload.sizes[-1]))
    fit = betaprop_epoch(workload, X, labels)
    bound = gemm_bound(workload.sizes, len(X), workload.batch_size)
    rounds: list[dict[str, float]] = []
    fit_seconds, bound_seconds = [], []
    clock = time.perf_counter
    for round_ in range(int(task["repeats"]) + 1):  # round 0 is a warm-up
        phases = profiled_epoch()
        started = clock()
        fit()
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


def estimator_class() -> Any:
    """``betaprop.MLPClassifier`` where it exists (it is written separately), else None."""
    try:
        import betaprop

        return betaprop.MLPClassifier  # type: ignore[attr-defined]
    except (AttributeError, ImportError):
        return None


def estimator_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Fit times (wall and CPU) and train accuracy of betaprop's and scikit-learn's
    MLPClassifier (digits), the two contenders' fits interleaved."""
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
    contenders: dict[str, Any] = {"betaprop": estimator_class(), "sklearn": SkMLP}
    out: dict[str, Any] = {
        name: {"seconds": [], "cpu_seconds": [], "train_accuracy": math.nan} for name in contenders
    }
    # the fits alternate, in turn reversed each round, so that load from elsewhere falls on
    # both contenders alike; round 0 is a warm-up
    for round_ in range(int(task["repeats"]) + 1):
        order = list(contenders) if round_ % 2 == 0 else list(contenders)[::-1]
        for name in order:
            model = contenders[name](**params)
            started, cpu = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, y)
            if round_:
                out[name]["seconds"].append(time.perf_counter() - started)
                out[name]["cpu_seconds"].append(time.process_time() - cpu)
            out[name]["train_accuracy"] = float(model.score(X, y))
    return out
