"""Training (step 6): it learns, it stops safely, it allocates nothing per step."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import betaprop as bp
from betaprop import activations
from betaprop import optimizers as opt


def test_xor_is_solved_with_the_seeds_setting() -> None:
    """The classic 2-2-1 sigmoid net with squared error (the seed's step 3 as written)."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    D = np.array([[0.0], [1.0], [1.0], [0.0]])
    net = bp.Network(
        [2, 2, 1],
        activation="sigmoid",
        output="sigmoid",
        loss="squared_error",
        dtype="float64",
        seed=3,
    )
    assert not net.loss.fuses(
        net.f[net.Q]
    )  # sigmoid with squared error goes through the general chain
    history = bp.fit(
        net, X, D, optimizer=opt.SGD(0.5, momentum=0.9), epochs=3000, batch_size=4, shuffle=False
    )
    prediction = net.predict(X)
    np.testing.assert_array_equal(prediction > 0.5, D > 0.5)
    assert np.abs(prediction - D).max() < 0.1
    assert history.loss[-1] < 0.01 * history.loss[0]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def test_digits_reach_97_percent(digits: tuple[np.ndarray, ...]) -> None:
    X_train, X_test, y_train, y_test = digits
    net = bp.Network([64, 128, 10], loss="cross_entropy", seed=0)
    history = bp.fit(
        net,
        X_train,
        np.eye(10)[y_train],
        optimizer=opt.Adam(1e-3),
        epochs=30,
        batch_size=32,
        seed=0,
        validation_data=(X_test, np.eye(10)[y_test]),
    )
    accuracy = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    assert accuracy >= 0.97
    assert history.val_score[-1] == pytest.approx(accuracy)
    assert len(history.loss) == 30 and history.loss[-1] < history.loss[0]


@pytest.mark.parametrize(
    "make",
    [
        lambda: opt.SGD(1e4, momentum=0.9),
        lambda: opt.Adam(1e6),
        lambda: opt.AdamW(1e6),
        lambda: opt.RMSprop(1e6),
    ],
)
def test_divergence_stops_and_restores_last_good_epoch(make, digits) -> None:
    X_train, _, y_train, _ = digits
    X, D = X_train[:256], np.eye(10)[y_train[:256]] * 1.0
    net = bp.Network(
        [64, 32, 10], activation="relu", output="identity", loss="squared_error", seed=1
    )
    bp.fit(net, X, D, optimizer=opt.SGD(1e-3), epochs=1, batch_size=32, seed=0)
    good = net.params.copy()
    with pytest.raises(
        bp.DivergenceError,
        match=r"diverged in epoch 1, batch \d+: .*smaller "
        r"learning rate",
    ) as caught:
        bp.fit(net, X, D, optimizer=make(), epochs=5, batch_size=32, seed=0)
    np.testing.assert_array_equal(net.params, good)
    assert np.isfinite(net.params).all()
    assert caught.value.epoch == 1 and caught.value.batch >= 1


def test_early_stopping_restores_the_best_epoch(digits) -> None:
    X_train, X_test, y_train, y_test = digits
    net = bp.Network([64, 64, 10], loss="cross_entropy", seed=2)
    snapshots = {}

    class Snapshot(bp.Callback):
        def on_epoch_end(self, net, epoch, history):
            snapshots[epoch] = net.params.copy()

    history = bp.fit(
        net,
        X_train[:300],
        np.eye(10)[y_train[:300]],
        optimizer=opt.Adam(0.01),
        epochs=200,
        batch_size=16,
        seed=0,
        early_stopping=3,
        callbacks=[Snapshot()],
        validation_data=(X_test, np.eye(10)[y_test]),
    )
    assert history.stopped_early and len(history.epoch) < 200
    best = int(np.argmin(history.val_loss)) + 1
    assert history.best_epoch == best
    assert len(history.epoch) == best + 3  # patience 3 after the best epoch
    np.testing.assert_array_equal(net.params, snapshots[best])


def test_a_callback_can_stop_training() -> None:
    class StopAfterTwo(bp.Callback):
        def on_epoch_end(self, net, epoch, history):
            return epoch == 2

    net = bp.Network([2, 3, 1], seed=0)
    history = bp.fit(net, np.ones((8, 2)), np.ones((8, 1)), epochs=10, callbacks=[StopAfterTwo()])
    assert history.epoch == [1, 2]


def test_same_seed_same_weights_different_seed_differs() -> None:
    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(100, 5)), rng.normal(size=(100, 2))

    def run(seed: int) -> np.ndarray:
        net = bp.Network([5, 8, 2], activation="tanh", seed=seed)
        bp.fit(net, X, D, optimizer=opt.SGD(0.05, momentum=0.9), epochs=3, batch_size=10, seed=seed)
        return net.params

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


# ------------------------------------------------------------------------ allocations
STEP_ACTIVATIONS = [a for a in activations.names(hidden_only=True) if a != "gelu"]


@pytest.mark.parametrize("hidden", STEP_ACTIVATIONS)
@pytest.mark.parametrize(
    "optimizer",
    [
        opt.SGD(0.01, momentum=0.9, nesterov=True, weight_decay=1e-4),
        opt.Adam(1e-3, weight_decay=1e-4),
        opt.AdamW(1e-3),
        opt.RMSprop(1e-3, momentum=0.5, centered=True),
    ],
    ids=lambda o: type(o).__name__,
)
def test_training_step_allocates_nothing_after_warm_up(hidden: str, optimizer) -> None:
    """Steps 2-6 on a batch, repeated: tracemalloc sees no new arrays after the first step.

    What may come and go: Python's small objects (array views, keyword dicts, a few KiB) and
    NumPy's fixed iterator buffer for a broadcasting ufunc (8192 elements, 32 KiB in
    float32, whatever the array sizes). Any array of the step would be at least the
    smallest work buffer, 128 KiB here, so the bound is 64 KiB.
    gelu is left out: its exact derivative needs one temporary (documented in activations).
    """
    rng = np.random.default_rng(0)
    for loss in ("cross_entropy", "binary_cross_entropy", "squared_error"):
        net = bp.Network([20, 64, 32, 16], activation=hidden, loss=loss, seed=0)
        X, D = (
            rng.normal(size=(2048, 20)).astype(np.float32),
            np.eye(16, dtype=np.float32)[rng.integers(0, 16, 2048)],
        )
        x, d = X.T, D.T
        state = optimizer.init(net.params)
        for _ in range(2):  # warm-up: buffers are allocated here
            bp.train_step(net, optimizer, state, x, d)
        smallest_buffer = 16 * 2048 * 4  # bytes of the smallest (N_q, n) float32 buffer
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(5):
                bp.train_step(net, optimizer, state, x, d)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak - before < smallest_buffer // 2, f"{loss}: {peak - before} bytes allocated"


def test_allocation_check_detects_an_allocating_step() -> None:
    """The measuring method itself catches a step that makes a temporary array."""
    net = bp.Network([20, 32, 4], seed=0)
    x, d = np.ones((20, 50), np.float32), np.ones((4, 50), np.float32)
    net.forward_columns(x)
    net.backward(d)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    net.forward_columns(x)
    net.backward(d)
    _ = net.params * 2.0  # a temporary the size of the parameters
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak - before >= net.params.nbytes


def test_fit_gathers_batches_without_allocating_per_step() -> None:
    """A whole epoch of fit() allocates only a bounded amount, independent of the batch count."""
    rng = np.random.default_rng(1)
    X, D = (
        rng.normal(size=(4000, 30)).astype(np.float32),
        rng.normal(size=(4000, 3)).astype(np.float32),
    )
    net = bp.Network([30, 64, 3], seed=0)
    bp.fit(net, X, D, optimizer=opt.SGD(0.001, momentum=0.9), epochs=1, batch_size=50, seed=0)
    tracemalloc.start()
    bp.fit(net, X, D, optimizer=opt.SGD(0.001, momentum=0.9), epochs=2, batch_size=50, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    per_epoch_batches = 4000 // 50
    fixed = 5 * net.params.nbytes + X.nbytes // 4 + 50 * (30 + 3) * 4 * 2 + 64 * 50 * 4 * 4
    assert peak < fixed, f"{peak} bytes for {per_epoch_batches} batches per epoch"


def test_float32_and_float64_agree_to_float32_precision() -> None:
    rng = np.random.default_rng(3)
    X, D = rng.normal(size=(40, 6)), np.eye(3)[rng.integers(0, 3, 40)]
    net64 = bp.Network(
        [6, 10, 8, 3], activation=["tanh", "relu"], loss="cross_entropy", dtype="float64", seed=0
    )
    net32 = net64.astype("float32")
    loss64, loss32 = net64.loss_and_gradients(X, D), net32.loss_and_gradients(X, D)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    scale = np.abs(net64.grads).max()
    np.testing.assert_allclose(net32.grads, net64.grads, rtol=1e-4, atol=1e-5 * scale)
    bp.fit(net64, X, D, optimizer=opt.SGD(0.1), epochs=3, batch_size=8, seed=1)
    bp.fit(net32, X, D, optimizer=opt.SGD(0.1), epochs=3, batch_size=8, seed=1)
    np.testing.assert_allclose(net32.params, net64.params, rtol=1e-4, atol=1e-4)
    assert math.isfinite(float(net32.params.sum()))


@pytest.mark.parametrize(
    ("activation", "limit"),
    [
        ("tanh", lambda i, o: math.sqrt(6 / (i + o))),
        ("sigmoid", lambda i, o: math.sqrt(6 / (i + o))),
        ("relu", lambda i, o: math.sqrt(6 / i)),
        ("elu", lambda i, o: math.sqrt(6 / i)),
    ],
)
def test_step_1_initialisation_glorot_or_he(activation: str, limit) -> None:
    net = bp.Network([300, 200, 100], activation=activation, output="identity", seed=5)
    W = net.W[1]
    a = limit(300, 200)
    assert np.abs(W).max() <= a
    # U(-a, a) has standard deviation a / sqrt(3); 60,000 draws pin it within 1 %
    assert np.std(W) == pytest.approx(a / math.sqrt(3), rel=0.01)
    assert np.all(net.b[1] == 0)
    np.testing.assert_array_equal(
        bp.Network(net.sizes, activation, "identity", seed=5).params, net.params
    )
