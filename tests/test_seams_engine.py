"""The engine where it meets threads, processes and its own constructor (issue 22).

- One network (or fitted estimator) predicting from 8 threads at once gives, call by call,
  exactly what the same call gives alone; training one network from two threads at once is
  refused; separate networks trained in separate threads equal sequential runs bit for bit.
- A network pickles (default and highest protocol, a spawned process pool, joblib's loky
  workers) and predicts the same on the other side; ``copy.deepcopy`` still works.
- Every constructor argument's error names that argument ("seed must be ..., got -1").

Threads are started together by a ``threading.Barrier``; nothing waits on time.
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import joblib
import numpy as np
import pytest
import scipy.sparse

import betaprop as bp
from betaprop.estimators import MLPClassifier
from betaprop.training.optimizers import Adam

THREADS, CALLS = 8, 25  # 200 calls in all


def _at_once(calls: list[Callable[[], Any]], threads: int = THREADS) -> list[Any]:
    """Run ``calls`` from ``threads`` threads, started together; results in call order."""
    barrier = threading.Barrier(threads, timeout=120)  # a thread that fails breaks it
    results: list[Any] = [None] * len(calls)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(k, len(calls), threads):
            results[i] = calls[i]()

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, k) for k in range(threads)]:
            future.result()
    return results


def _assert_as_alone(calls: list[Callable[[], np.ndarray]], rounds: int = 3) -> None:
    """Each call, run from 8 threads at once with the others, gives exactly its result alone
    (in each of ``rounds`` rounds: a race that corrupts a few calls of 200 shows in one)."""
    alone = [f() for f in calls]
    for _ in range(rounds):
        together = _at_once(calls)
        differ = [i for i in range(len(calls)) if not np.array_equal(together[i], alone[i])]
        assert differ == [], f"{len(differ)} of {len(calls)} calls differ from the call alone"


def _inputs(n_features: int, count: int, sparse: bool = False) -> list[Any]:
    """``count`` different inputs: most with the same number of rows (the same buffer
    shapes), the others of other sizes (1 row, a few, more than one chunk of 64)."""
    rng = np.random.default_rng(7)
    rows = [48 if i % 3 else (1, 5, 130, 48, 300)[i % 5] for i in range(count)]
    inputs = [rng.normal(size=(n, n_features)) for n in rows]
    if sparse:
        inputs = [scipy.sparse.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0)) for X in inputs]
    return inputs


NETWORKS = {
    "plain": dict(sizes=[20, 64, 64, 5], activation="tanh", loss="cross_entropy"),
    "batch_norm_dropout": dict(
        sizes=[20, 48, 32, 3], normalization="batch", dropout=0.3, loss="cross_entropy"
    ),
    "recompute_float64": dict(sizes=[20, 32, 32, 32, 32, 2], dtype="float64", memory="recompute"),
}


def _trained(name: str) -> bp.Network:
    """A network of NETWORKS[name] after one epoch (the running statistics are not 1, 0)."""
    net = bp.Network(**NETWORKS[name], seed=3)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, net.sizes[0]))
    D = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], 96)]
    bp.fit(net, X, D, epochs=1, batch_size=32, seed=0)
    return net


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_one_network_predicts_from_eight_threads_as_alone(name: str, sparse: bool) -> None:
    net = _trained(name)
    inputs = _inputs(net.sizes[0], THREADS * CALLS, sparse)

    def call(i: int) -> Callable[[], np.ndarray]:
        X = inputs[i]
        if i % 4 == 1:
            return lambda: net.predict(X, batch_size=64)  # chunks of 64 rows
        if i % 4 == 2 and not sparse:
            return lambda: net.forward(X)  # step 2 in the training layout, at inference
        return lambda: net.predict(X)

    _assert_as_alone([call(i) for i in range(len(inputs))])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fitted_classifier_predicts_proba_from_eight_threads_as_alone() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 20)), rng.integers(0, 4, 300)
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=5, random_state=0).fit(X, y)
    inputs = _inputs(20, THREADS * CALLS)
    _assert_as_alone([lambda X=X: clf.predict_proba(X) for X in inputs])


def test_each_thread_reads_its_own_last_pass() -> None:
    """``net.y`` after ``forward`` is the calling thread's pass, whatever others ran since."""
    net = _trained("plain")
    inputs = _inputs(20, THREADS * CALLS)

    def forward_then_read(X: np.ndarray) -> bool:
        out = net.forward(X)
        same_input = np.array_equal(net.y[0].T, X.astype(net.dtype))
        return np.array_equal(net.y[net.Q].T, out) and same_input

    for _ in range(3):
        assert all(_at_once([lambda X=X: forward_then_read(X) for X in inputs]))


class _Pause(bp.Callback):
    """Stops ``fit`` after its first mini-batch until ``resume`` is set (no timing)."""

    def __init__(self) -> None:
        self.inside, self.resume = threading.Event(), threading.Event()

    def on_batch_end(self, net: bp.Network, epoch: int, batch: int, loss: float) -> None:
        self.inside.set()
        assert self.resume.wait(timeout=120)


def test_training_one_network_from_two_threads_is_refused() -> None:
    net = bp.Network([6, 8, 2], seed=0)
    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(64, 6)), rng.normal(size=(64, 2))
    pause = _Pause()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(bp.fit, net, X, D, epochs=1, batch_size=16, callbacks=[pause])
        assert pause.inside.wait(timeout=120)  # the other thread is inside fit
        try:
            message = "this network is already being trained in another thread"
            before = net.params.copy()
            with pytest.raises(RuntimeError, match=message):
                bp.fit(net, X, D, epochs=1)
            with pytest.raises(RuntimeError, match=message):
                bp.train_step(net, Adam(), Adam().init(net.params), X[:8].T, D[:8].T)
            with pytest.raises(RuntimeError, match=message):
                net.loss_and_gradients(X, D)
            np.testing.assert_array_equal(net.params, before)  # nothing touched
        finally:
            pause.resume.set()
        first.result()
    bp.fit(net, X, D, epochs=1)  # free again once the first fit returned


@pytest.mark.parametrize("shared_optimizer", [False, True], ids=["own", "shared_optimizer"])
def test_separate_networks_train_in_threads_as_one_after_the_other(
    shared_optimizer: bool,
) -> None:
    """Eight networks, one per thread, equal the same eight fits run in turn, bit for bit
    (also when the threads share one optimizer object, whose scratch is per thread)."""
    rng = np.random.default_rng(2)
    X, D = rng.normal(size=(1200, 30)), rng.normal(size=(1200, 3))
    optimizer = Adam(0.01)

    def train(seed: int) -> np.ndarray:
        net = bp.Network([30, 96, 96, 3], normalization="batch", dropout=0.1, seed=seed)
        bp.fit(net, X, D, epochs=1, batch_size=32, seed=seed,
               optimizer=optimizer if shared_optimizer else "adam")  # fmt: skip
        return net.params

    seeds = range(THREADS)
    alone = [train(seed) for seed in seeds]
    for _ in range(3):
        together = _at_once([lambda seed=seed: train(seed) for seed in seeds])
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------ pickling
def _network_with_state() -> tuple[bp.Network, np.ndarray]:
    """A trained network with batch normalisation and dropout (running statistics moved,
    the dropout generator advanced), and inputs to predict."""
    net = _trained("batch_norm_dropout")
    return net, np.random.default_rng(5).normal(size=(40, net.sizes[0]))


def _same_network(twin: bp.Network, net: bp.Network, X: np.ndarray) -> None:
    assert type(twin) is type(net) and twin.spec() == net.spec()
    assert twin.memory == net.memory
    np.testing.assert_array_equal(twin.params, net.params)
    np.testing.assert_array_equal(twin.stats, net.stats)
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    # the dropout generator goes on where it was: the next training pass is the same
    D = np.eye(net.sizes[-1])[np.arange(len(X)) % net.sizes[-1]]
    assert twin.loss_and_gradients(X, D) == net.loss_and_gradients(X, D)
    np.testing.assert_array_equal(twin.grads, net.grads)
    np.testing.assert_array_equal(twin.stats, net.stats)


@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_a_network_pickles_and_predicts_the_same(protocol: int) -> None:
    net, X = _network_with_state()
    twin = pickle.loads(pickle.dumps(net, protocol=protocol))
    _same_network(twin, net, X)


def test_a_recompute_network_pickles_with_its_memory_plan() -> None:
    net = _trained("recompute_float64")
    X = np.random.default_rng(5).normal(size=(40, net.sizes[0]))
    twin = pickle.loads(pickle.dumps(net))
    assert twin.memory == "recompute" and twin.dtype == "float64"
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))


def test_deepcopy_gives_an_independent_equal_network() -> None:
    net, X = _network_with_state()
    net.loss_and_gradients(X, np.zeros((len(X), net.sizes[-1])))
    twin = copy.deepcopy(net)
    np.testing.assert_array_equal(twin.grads, net.grads)
    _same_network(twin, net, X)
    twin.params[...] = 0.0
    assert np.abs(net.params).max() > 0  # independent arrays


def test_a_network_predicts_the_same_in_a_spawned_process_pool() -> None:
    net, X = _network_with_state()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        there = pool.submit(net.predict, X).result(timeout=300)
    np.testing.assert_array_equal(there, net.predict(X))


def test_a_network_predicts_the_same_in_joblib_workers() -> None:
    net, X = _network_with_state()
    parts = np.array_split(X, 4)
    there = joblib.Parallel(n_jobs=2)(joblib.delayed(net.predict)(part) for part in parts)
    for part, result in zip(parts, there, strict=True):
        np.testing.assert_array_equal(result, net.predict(part))


# ------------------------------------------------------------------------ constructor
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"seed": -1}, r"seed must be None or an integer >= 0, got -1"),
        ({"seed": 1.5}, r"seed must be None or an integer >= 0, got 1.5"),
        ({"seed": "7"}, r"seed must be None or an integer >= 0, got '7'"),
        ({"seed": True}, r"seed must be None or an integer >= 0, got True"),
        ({"output": "bogus"}, r"output activation must be one of \[.*'softmax'.*\], got 'bogus'"),
        ({"output": 3}, r"output activation must be a string, got 3"),
    ],
)
def test_a_bad_constructor_argument_is_named(arguments: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        bp.Network([3, 4, 2], **arguments)


def test_an_integer_seed_of_numpy_is_kept_as_an_int() -> None:
    net = bp.Network([3, 4, 2], seed=np.int64(5))
    assert net.seed == 5 and type(net.spec()["seed"]) is int
    np.testing.assert_array_equal(net.params, bp.Network([3, 4, 2], seed=5).params)


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_fit_names_a_bad_seed(seed: Any) -> None:
    net = bp.Network([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match=r"^seed must be None or an integer >= 0, got "):
        bp.fit(net, np.zeros((4, 2)), np.zeros((4, 1)), seed=seed, epochs=1)


def test_sparse_input_trains_data_parallel_as_in_one_process() -> None:
    """fit(sparse X, comm=...) (it failed on len(X)): one rank of COMM_SELF equals no comm."""
    MPI = pytest.importorskip("mpi4py.MPI")
    rng = np.random.default_rng(0)
    X = scipy.sparse.random(60, 12, density=0.3, format="csr", random_state=1)
    D = rng.normal(size=(60, 2))
    alone, parallel = (bp.Network([12, 8, 2], seed=0, dtype="float64") for _ in range(2))
    bp.fit(alone, X, D, epochs=2, batch_size=16, seed=0)
    bp.fit(parallel, X, D, epochs=2, batch_size=16, seed=0, comm=MPI.COMM_SELF)
    np.testing.assert_allclose(parallel.params, alone.params, rtol=0, atol=1e-12)


def test_a_softmax_over_one_output_is_refused_by_the_library() -> None:
    """softmax over one output is e^s / e^s = 1 whatever the input: fit would run and the
    network would predict 1 for everything (the command refused it; the library did not)."""
    with pytest.raises(ValueError, match=r"^output activation softmax needs at least 2 outputs"):
        bp.Network([3, 4, 1], output="softmax", loss="cross_entropy")
    assert bp.Network([3, 4, 1], output="sigmoid", loss="binary_cross_entropy").sizes[-1] == 1
