"""fit(net, Stream): rows read part by part through a shuffle buffer (training/stream.py).

Oracles: the rows themselves (each row carries its number in a feature, so a batch's content
says which rows it holds); ``fit(net, X, D, shuffle=False)`` on the same rows in the same
order (the streamed training must be that training exactly); a bundled table trained in
memory (accuracy within noise).
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import betaprop as bp
from betaprop.training.optimizers import get_optimizer
from betaprop.training.state import TrainingState
from betaprop.training.stream import Stream, owned_parts
from betaprop.training.stream_epochs import StreamBatches


def tagged(n: int, width: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """X (n, width) whose column 0 is the row's number; D a 0/1 label from the others."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, width))
    X[:, 0] = np.arange(n)
    D = (X[:, 1:2] + 0.5 * X[:, 2:3] > 0).astype(float)
    return X, D


def split(X: np.ndarray, D: np.ndarray, cuts: list[int], buffer: int) -> Stream:
    bounds = [0, *cuts, len(X)]
    pieces = [(X[a:b], D[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    return Stream.from_arrays(pieces, shuffle_buffer=buffer)


LAYOUTS = {  # part boundaries of 1000 rows: one part, equal parts, uneven with empty parts
    "one": [],
    "ten": list(range(100, 1000, 100)),
    "uneven": [1, 1, 300, 301, 650, 650, 999],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("buffer", [1, 31, 250, 1000, 5000])
@pytest.mark.parametrize("batch_size", [1, 32, 999])
def test_every_row_exactly_once_an_epoch(layout, buffer, batch_size):
    X, D = tagged(1000)
    stream = split(X, D, LAYOUTS[layout], buffer)
    batches = StreamBatches(stream, (3, 1), np.float64, batch_size, shuffle=True)
    state = TrainingState(rng=np.random.default_rng(7), order=np.arange(len(stream.parts)))
    expected = [batch_size] * (1000 // batch_size) + [1000 % batch_size] * bool(1000 % batch_size)
    orders = []
    for _ in range(3):
        seen, sizes = [], []
        for m, W in batches.batches(state):
            assert m == W
            np.testing.assert_array_equal(batches.x[:m, 0], batches.ids[:m])  # content = ids
            np.testing.assert_array_equal(batches.d[:m], D[batches.ids[:m]])
            seen.append(batches.x[:m, 0].astype(int))
            sizes.append(m)
        rows = np.concatenate(seen)
        np.testing.assert_array_equal(np.sort(rows), np.arange(1000))
        assert sizes == expected
        orders.append(rows)
    if len(stream.parts) > 1 or max(buffer, batch_size) > 1:  # else S = 1: rows as they come
        assert not np.array_equal(orders[0], orders[1])  # each epoch draws anew


def test_a_buffer_of_all_rows_is_a_full_shuffle():
    """One part, S >= n: every row is equally likely anywhere. Over 40 epochs the mean
    position of every row is (n - 1) / 2 within 6 standard deviations, and a row's position
    is uncorrelated with its number; with the least buffer (S = B) rows barely move."""
    X, D = tagged(500)
    full = split(X, D, [], 500).row_order(seed=3, epochs=40, batch_size=25)
    positions = np.empty((40, 500))
    for epoch, batches in enumerate(full):
        positions[epoch, np.concatenate(batches)] = np.arange(500)
    sd = np.sqrt((500**2 - 1) / 12 / 40)
    assert np.all(np.abs(positions.mean(axis=0) - 249.5) < 6 * sd)
    assert abs(np.corrcoef(np.arange(500), positions.mean(axis=0))[0, 1]) < 0.2
    least = np.concatenate(split(X, D, [], 1).row_order(seed=3, epochs=1, batch_size=25)[0])
    assert np.corrcoef(np.arange(500), np.argsort(least))[0, 1] > 0.99
    assert not np.array_equal(least, np.arange(500))


def test_small_buffers_keep_rows_near_their_part():
    """S rows of buffer: a row of the part read k-th cannot come out before k parts' rows
    minus S were trained on (it was not read yet), the bound of a bounded shuffle."""
    X, D = tagged(1000)
    stream = split(X, D, LAYOUTS["ten"], 50)
    batches = stream.row_order(seed=1, epochs=1, batch_size=10)[0]
    rows = np.concatenate(batches)
    part = rows // 100
    first_seen = {p: int(np.flatnonzero(part == p)[0]) for p in range(10)}
    opened = sorted(first_seen, key=first_seen.get)  # the parts in the order they were read
    for k, p in enumerate(opened):
        assert first_seen[p] >= 100 * k - 50


def network(normalization=None, dropout=0.0, seed=0):
    return bp.Network(
        [3, 8, 8, 1],
        loss="binary_cross_entropy",
        dtype="float64",
        seed=seed,
        normalization=normalization,
        dropout=dropout,
    )


@pytest.mark.parametrize("normalization,dropout", [(None, 0.0), ("batch", 0.0), (None, 0.3)])
@pytest.mark.parametrize("batch_size", [32, 37])  # 1000 = 27 * 37 + 1: a last row joins
@pytest.mark.parametrize("layout,buffer", [("one", 1000), ("uneven", 64), ("ten", 128)])
def test_streamed_training_is_fit_on_the_rows_it_draws(
    normalization, dropout, batch_size, layout, buffer
):
    """fit(net, stream) = fit(net, X[rows], D[rows], shuffle=False) epoch by epoch, where
    rows is the order the stream drew (Stream.row_order, checked above): to 1e-12."""
    X, D = tagged(1000)
    stream = split(X, D, LAYOUTS[layout], buffer)
    streamed = network(normalization, dropout)
    history = bp.fit(streamed, stream, epochs=3, seed=5, batch_size=batch_size)
    least = 2 if normalization else 1
    order = stream.row_order(seed=5, epochs=3, batch_size=batch_size, least=least)
    oracle = network(normalization, dropout)
    record, moments = bp.History(), get_optimizer("adam").init(oracle.params)
    for batches in order:
        assert len(batches[-1]) == (38 if batch_size == 37 and normalization else len(batches[-1]))
        rows = np.concatenate(batches)
        bp.fit(oracle, X[rows], D[rows], epochs=1, shuffle=False, batch_size=batch_size,
               history=record, optimizer_state=moments)  # fmt: skip
    np.testing.assert_allclose(streamed.params, oracle.params, rtol=0, atol=1e-12)
    np.testing.assert_allclose(history.loss, record.loss, rtol=0, atol=1e-12)


def test_unshuffled_stream_is_fit_without_shuffling():
    X, D = tagged(1000)
    streamed, memory = network(), network()
    bp.fit(streamed, split(X, D, LAYOUTS["uneven"], 10), epochs=2, shuffle=False, batch_size=30)
    bp.fit(memory, X, D, epochs=2, shuffle=False, batch_size=30)
    np.testing.assert_allclose(streamed.params, memory.params, rtol=0, atol=1e-12)


def test_streamed_accuracy_matches_in_memory_on_digits():
    """The bundled digits (1 797 rows), parts of 150 rows, S = 256: test accuracy over 3
    seeds within noise of in-memory training (the streamed order is a weaker shuffle)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    Dtr = np.eye(10)[ytr]
    pieces = [(Xtr[a : a + 150], Dtr[a : a + 150]) for a in range(0, len(Xtr), 150)]
    scores = {"memory": [], "stream": []}
    for seed in range(3):
        for how in scores:
            net = bp.Network([64, 64, 10], loss="cross_entropy", seed=seed)
            stream = Stream.from_arrays(pieces, shuffle_buffer=256)
            data = (Xtr, Dtr) if how == "memory" else (stream,)
            bp.fit(net, *data, epochs=15, batch_size=32, seed=seed)
            scores[how].append(np.mean(net.predict(Xte).argmax(axis=1) == yte))
    memory, stream = np.mean(scores["memory"]), np.mean(scores["stream"])
    assert memory > 0.9
    # the test set's binomial noise on one accuracy: sqrt(p (1 - p) / 540) ~ 0.009
    assert abs(memory - stream) < 0.03, scores


class Interrupt(bp.Callback):
    """SIGINT to this process after a given batch of a given epoch (no timing)."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_end(self, net, epoch, batch, loss):
        if (epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("cuts", [[200, 400], []])  # three parts; one part
def test_stop_signal_mid_epoch_resumes_exactly(cuts):
    """SIGINT in epoch 2: with several parts the state keeps the epoch's start, the parts
    opened and the batches done, and resuming replays the reads and draws: the weights of 3
    uninterrupted epochs, bit for bit (dropout's masks and Adam's moments included). One part
    cannot mark a position: the run goes back to epoch 1's end (= a one-epoch run)."""
    X, D = tagged(600)
    stream = split(X, D, cuts, 100)
    stopped, state = network(dropout=0.2), TrainingState()
    with pytest.warns(bp.InterruptedWarning):
        history = bp.fit(stopped, stream, epochs=3, seed=2, batch_size=20, state=state,
                         callbacks=[Interrupt(2, 5)])  # fmt: skip
    assert history.interrupted and history.epoch == [1]
    one = network(dropout=0.2)
    bp.fit(one, stream, epochs=1, seed=2, batch_size=20)
    if cuts:
        assert state.batch == 5 and 1 <= state.position < 3
        assert not np.array_equal(stopped.params, one.params)  # 5 batches into epoch 2
    else:
        assert state.batch == 0 and state.position == 0
        np.testing.assert_array_equal(stopped.params, one.params)
    bp.fit(stopped, stream, epochs=2, batch_size=20, state=state, history=history)
    whole = network(dropout=0.2)
    whole_history = bp.fit(whole, stream, epochs=3, seed=2, batch_size=20)
    np.testing.assert_array_equal(stopped.params, whole.params)
    assert history.epoch == [1, 2, 3]
    np.testing.assert_allclose(history.loss, whole_history.loss, rtol=1e-14)


def test_errors_name_what_was_wrong():
    X, D = tagged(100)
    stream = split(X, D, [50], 10)
    with pytest.raises(TypeError, match="D must be None when X is a Stream"):
        bp.fit(network(), stream, D)
    with pytest.raises(ValueError, match="shuffle_buffer must be an integer >= 1, got 0"):
        Stream.from_arrays([(X, D)], shuffle_buffer=0)
    bad = Stream.from_arrays([(X[:50], D[:50]), (X[50:, :2], D[50:])])
    with pytest.raises(ValueError, match=r"part 1 \(1\): X must have shape \(50, N_0 = 3\)"):
        bp.fit(network(), bad, epochs=1)
    with pytest.raises(ValueError, match="rows must give a count >= 0 for each of the 2 parts"):
        Stream([0, 1], lambda k: (X, D), rows=[100])


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_every_part_has_one_owner(size):
    rows = [0, 100, 7, 0, 300, 1, 1, 250]
    owned = [owned_parts(rows, rank, size) for rank in range(size)]
    assert sorted(k for parts in owned for k in parts) == list(range(len(rows)))
    n, firsts = sum(rows), np.concatenate([[0], np.cumsum(rows)[:-1]])
    for rank, parts in enumerate(owned):  # a part's first row lies in its owner's block
        for k in parts:
            assert rank * n <= firsts[k] * size < (rank + 1) * n


def test_column_major_arrays_train_alike_without_a_copy_a_batch():
    """A DataFrame's to_numpy() is column-major: fit on it equals fit on the C-ordered array
    bit for bit, and no batch copies the whole X (np.take did: tracemalloc's peak over an
    epoch stays below a tenth of X)."""
    import tracemalloc

    X, D = tagged(20_000, width=20)
    X[:, 0] = 0.0
    Cn = bp.Network([20, 8, 1], loss="binary_cross_entropy", dtype="float64", seed=0)
    Fn = bp.Network([20, 8, 1], loss="binary_cross_entropy", dtype="float64", seed=0)
    bp.fit(Cn, X, D, epochs=1, seed=4, batch_size=64)
    XF, DF = np.asfortranarray(X), np.asfortranarray(D)
    tracemalloc.start()
    try:
        bp.fit(Fn, XF, DF, epochs=1, seed=4, batch_size=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(Cn.params, Fn.params)
    assert peak < X.nbytes / 10, (peak, X.nbytes)


def test_a_checkpoint_of_a_stopped_stream_resumes_exactly(tmp_path):
    """The Checkpoint callback writes the mid-epoch state (the part order, position, batch);
    checkpoint.resume(folder, stream, None) reads the file back and ends where 3
    uninterrupted epochs end."""
    from betaprop.files.checkpoint import Checkpoint, load_checkpoint, resume

    X, D = tagged(600)
    stream = split(X, D, [150, 300, 450], 64)
    stopped = network(normalization="batch")
    with pytest.warns(bp.InterruptedWarning):
        bp.fit(stopped, stream, epochs=3, seed=9, batch_size=24,
               callbacks=[Checkpoint(str(tmp_path)), Interrupt(2, 11)])  # fmt: skip
    saved = load_checkpoint(str(tmp_path)).state
    assert (saved.epoch, saved.batch) == (1, 11) and saved.position > 0
    net, history = resume(str(tmp_path), stream, None)
    whole = network(normalization="batch")
    bp.fit(whole, stream, epochs=3, seed=9, batch_size=24)
    np.testing.assert_array_equal(net.params, whole.params)
    np.testing.assert_array_equal(net.stats, whole.stats)
    assert history.epoch == [1, 2, 3]
