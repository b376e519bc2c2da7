"""Memory: memory="recompute" recomputes segments with bit-identical gradients in O(sqrt(Q))
work buffers, and a training step allocates nothing after warm-up."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import betaprop as bp
from betaprop import activations
from betaprop import optimizers as opt


def _pair(sizes, **kwargs) -> tuple[bp.Network, bp.Network]:
    return (
        bp.Network(sizes, seed=3, **kwargs),
        bp.Network(sizes, seed=3, memory="recompute", **kwargs),
    )


def _data(rng, n, sizes, dtype="float64"):
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    D = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    return X, D


@pytest.mark.parametrize("Q", [1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 26])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_recompute_gradients_are_bit_identical_to_all(Q: int, dtype: str) -> None:
    """Every layer count around the segment edges (k = ceil(sqrt(Q))), widths varying."""
    rng = np.random.default_rng(Q)
    sizes = [6] + [int(rng.integers(2, 9)) for _ in range(Q - 1)] + [3]
    full, lean = _pair(sizes, activation="tanh", loss="cross_entropy", dtype=dtype)
    X, D = _data(rng, 11, sizes, dtype)
    loss_full, loss_lean = full.loss_and_gradients(X, D), lean.loss_and_gradients(X, D)
    assert loss_full == loss_lean
    np.testing.assert_array_equal(lean.grads, full.grads)
    assert np.any(full.grads != 0)
    # the input-side layer errors (computed last, still in their buffer) are the same too
    np.testing.assert_array_equal(lean.workspace(11).beta[1], full.beta[1])


@pytest.mark.parametrize("hidden", activations.names(hidden_only=True))
def test_recompute_is_bit_identical_for_every_hidden_activation(hidden: str) -> None:
    """Over the whole activation registry, with the general (unfused) step 3 chain."""
    rng = np.random.default_rng(1)
    sizes = [5, 7, 6, 7, 6, 7, 2]  # Q = 6, k = 3
    full, lean = _pair(sizes, activation=hidden, output="sigmoid", loss="squared_error")
    X = rng.standard_normal((9, 5))
    D = rng.uniform(size=(9, 2))
    assert not full.loss.fuses(full.f[full.Q])
    assert full.loss_and_gradients(X, D) == lean.loss_and_gradients(X, D)
    np.testing.assert_array_equal(lean.grads, full.grads)


def test_recompute_gradients_pass_the_finite_difference_check() -> None:
    """An independent oracle, not only agreement with memory="all"."""
    rng = np.random.default_rng(2)
    sizes = [4, 5, 5, 5, 5, 5, 3]
    net = bp.Network(
        sizes, activation="tanh", loss="cross_entropy", dtype="float64", seed=0, memory="recompute"
    )
    X, D = _data(rng, 6, sizes)
    report = bp.gradcheck(net, X, D)
    assert report.passed, str(report)
    assert report.max_error < 1e-6


def test_recompute_training_follows_the_same_trajectory() -> None:
    """Several epochs of fit: the same losses and the same final weights, bit for bit."""
    rng = np.random.default_rng(3)
    sizes = [8] + [16] * 11 + [4]  # Q = 12, k = 4
    X, D = _data(rng, 200, sizes, "float32")
    histories, params = [], []
    for memory in ("all", "recompute"):
        net = bp.Network(sizes, activation="relu", loss="cross_entropy", seed=0, memory=memory)
        history = bp.fit(
            net, X, D, optimizer=opt.SGD(0.05, momentum=0.9), epochs=3, batch_size=32, seed=1
        )
        histories.append(history.loss)
        params.append(net.params)
    assert histories[0] == histories[1]
    np.testing.assert_array_equal(params[0], params[1])


def _count_buffer_bytes(Q: int, memory: str, n: int = 4, width: int = 8) -> int:
    net = bp.Network([width] * (Q + 1), activation="tanh", memory=memory)
    return net.work_bytes(n)


def test_recompute_work_buffers_grow_as_the_square_root_of_depth() -> None:
    """Quadrupling Q multiplies the work buffers by about 4 with "all", about 2 with
    "recompute" (k + Q/k buffers of s and y, two of beta, one scratch), plus one scratch
    buffer of the output layer (the loss's terms)."""
    width, n, item = 8, 4, 4
    one = width * n * item  # bytes of one (N_q, n) float32 buffer
    for Q in (16, 64, 256):
        k = math.ceil(math.sqrt(Q))
        all_bytes = _count_buffer_bytes(Q, "all")
        lean_bytes = _count_buffer_bytes(Q, "recompute")
        rows = 3 * n * item  # two rows of scratch and the ones vector 1_n
        spare = width * n * item  # the output layer's second scratch (N_Q = width here)
        assert all_bytes == (3 * Q + 1) * one + spare + rows  # s, y, beta per layer, scratch
        assert lean_bytes == (2 * (Q // k + k - 1) + 3) * one + spare + rows
    growth_all = _count_buffer_bytes(256, "all") / _count_buffer_bytes(64, "all")
    growth_lean = _count_buffer_bytes(256, "recompute") / _count_buffer_bytes(64, "recompute")
    assert growth_all > 3.9
    assert growth_lean < 2.1


def test_memory_is_validated_and_kept_by_copies() -> None:
    with pytest.raises(
        ValueError, match=r"memory must be one of \['all', 'recompute'\], got 'some'"
    ):
        bp.Network([2, 3, 1], memory="some")
    net = bp.Network([2, 3, 3, 1], memory="recompute")
    assert net.copy(memory="recompute").memory == "recompute"
    assert net.astype("float64", memory="recompute").memory == "recompute"


def test_recompute_hides_the_shared_layer_buffers_and_copies_keep_every_layer() -> None:
    """With memory="recompute", net.s / net.y / net.beta would show shared buffers: they raise;
    a copy (memory="all" by default, as diagnostics and traces use) shows every layer."""
    rng = np.random.default_rng(5)
    sizes = [3, 4, 4, 4, 4, 2]
    lean = bp.Network(sizes, activation="tanh", loss="cross_entropy", seed=0, memory="recompute")
    X, D = _data(rng, 5, sizes, "float32")
    lean.loss_and_gradients(X, D)
    for name in ("s", "y", "beta"):
        with pytest.raises(RuntimeError, match=rf"net.{name} is not kept for every layer"):
            getattr(lean, name)
    full = lean.copy()
    assert full.memory == "all" and lean.astype("float64").memory == "all"
    full.loss_and_gradients(X, D)
    np.testing.assert_array_equal(full.grads, lean.grads)
    assert full.beta[1].shape == (4, 5)


def _allocated_by_steps(step, repeats: int = 5) -> int:
    step()
    step()  # warm-up: buffers and optimizer scratch are allocated here
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(repeats):
            step()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("memory", ["all", "recompute"])
@pytest.mark.parametrize("optimizer", [opt.SGD(0.01, momentum=0.9), opt.Adam(1e-3)])
def test_a_training_step_allocates_nothing_after_warm_up(memory: str, optimizer) -> None:
    """The step of fit: gather a batch with np.take(out=), steps 2-5, the update (step 6).

    The bound is half the smallest work buffer: any temporary array of a layer's batch,
    or of the parameters, would exceed it; NumPy's casting buffer (8192 elements, for
    [s > 0] written as floats) stays below it.
    """
    rng = np.random.default_rng(0)
    sizes = [64, 128, 96, 128, 96, 16]
    net = bp.Network(sizes, activation="relu", loss="cross_entropy", seed=0, memory=memory)
    X, D = _data(rng, 3000, sizes, "float32")
    n = 2048
    x, d = np.empty((n, sizes[0]), np.float32), np.empty((n, sizes[-1]), np.float32)
    state = optimizer.init(net.params)
    order = rng.permutation(len(X))[:n]

    def step() -> None:
        np.take(X, order, axis=0, out=x, mode="clip")
        np.take(D, order, axis=0, out=d, mode="clip")
        bp.train_step(net, optimizer, state, x.T, d.T)

    allocated = _allocated_by_steps(step)
    bound = min(sizes[1:]) * n * 4 // 2
    assert allocated < bound, f"{allocated} bytes allocated per 5 steps"
    assert net.params.nbytes > bound  # a parameter-sized temporary would be caught


def test_the_allocation_check_catches_a_temporary() -> None:
    """The measuring method fails a step that makes one layer-sized temporary."""
    sizes = [32, 64, 10]
    net = bp.Network(sizes, loss="cross_entropy", seed=0, memory="recompute")
    x, d = np.ones((32, 256), np.float32), np.ones((10, 256), np.float32)

    def step() -> None:
        net.forward_columns(x)
        net.backward(d)
        _ = net.workspace(256).s[1] * 2.0  # (64, 256) float32 temporary

    assert _allocated_by_steps(step) >= 64 * 256 * 4
