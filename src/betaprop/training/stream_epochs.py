"""The epochs of ``fit(net, stream)``: parts in shuffled order, a shuffle buffer, K ranks.

``StreamBatches`` is what ``fit`` works with in place of ``Batches`` when its data is a
``Stream`` (``training.stream``): every epoch it shuffles the part order with the run's
generator (``TrainingState.order`` holds the part order, so a checkpoint keeps it), draws
one more seed from it for the buffer's draws, and yields the epoch's mini-batches; ``fit``
runs ``train_step`` (or ``DataParallel.step``) on each. Memory: one part, the buffer of S
(S / K) rows and one mini-batch, whatever n.

A stop signal in the middle of an epoch (Ctrl-C) finishes the mini-batch; the state then
holds the epoch's start (its generator and part order), the parts opened (``position``) and
the batches done (``batch``). Resuming from it (``fit(..., state=)``, a checkpoint) replays
the epoch's part reads and buffer draws up to that batch, reads only, no training, and goes
on: bit for bit the uninterrupted run. A stream of one part cannot mark a position (it must
be below the number of parts): there the run goes back to the epoch's start instead (its
weights, statistics, optimizer state and generators) and the epoch is trained again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .stream import PartRows, ShuffleBuffer, Stream, batch_plan, batch_rows, fifo, owned_parts

__all__ = [
    "StreamBatches",
    "check_stream",
    "stream_batches",
    "stream_parallel",
    "epoch_row_order",
]

Array = np.ndarray


def share(batch_size: int, rank: int, size: int) -> int:
    """B_r: rank r's rows of a global batch of B (shares differ by at most one row)."""
    base, extra = divmod(batch_size, size)
    return base + (rank < extra)


class StreamBatches:
    """This rank's parts, its shuffle buffer and batch buffers, and the epoch over them.

    ``widths`` = (N_0, N_Q); ``least``: the fewest columns a training step takes (2 with
    batch normalisation), which every rank's share must reach; ``parallel``: the run's
    ``DataParallel`` under K ranks (None in one process); ``ranks`` = (r, K) without it (to
    list rank r's draws). Every rank's batch plan follows from the part counts and B alone,
    so the ranks agree on the epoch's global batch count without communicating.
    """

    def __init__(
        self,
        stream: Stream,
        widths: tuple[int, int],
        dtype: Any,
        batch_size: int,
        shuffle: bool,
        least: int = 1,
        parallel: Any = None,
        ranks: tuple[int, int] = (0, 1),
    ) -> None:
        self.stream, self.widths, self.dtype, self.parallel = stream, widths, dtype, parallel
        if parallel is not None:
            ranks = (parallel.comm.Get_rank(), parallel.comm.Get_size())
        self.rank, self.size = ranks
        if batch_size < least * self.size:
            raise ValueError(
                f"batch_size must be at least {least * self.size} to stream on {self.size} "
                f"ranks (each takes its own rows, {least} or more a batch), got {batch_size}"
            )
        self.plans = []  # every rank's (batch plan, B_r): n_r rows taken B_r at a time
        for rank in range(self.size):
            n_r = sum(stream.rows[k] for k in owned_parts(stream.rows, rank, self.size))
            b_r = share(batch_size, rank, self.size)
            self.plans.append((batch_plan(n_r, b_r, merge_single=least > 1), b_r))
        self.mine = set(owned_parts(stream.rows, self.rank, self.size))
        self.plan, self.b = self.plans[self.rank]
        self.count = max(plan[0] for plan, _ in self.plans)  # the epoch's global batches
        room = max(self.b + (least > 1), least)
        capacity = max(-(-stream.shuffle_buffer // self.size), room)  # S / K, >= a batch
        self.buffer = ShuffleBuffer(capacity, widths, dtype) if shuffle else None
        self.x = np.zeros((room, widths[0]), dtype=dtype)
        self.d = np.zeros((room, widths[1]), dtype=dtype)
        self.ids = np.empty(room, dtype=np.int64)
        self.w = np.empty((1, room), dtype=dtype)
        self.least = least
        self.shard = None if parallel is None else parallel.batches_made
        self.reading: Any = None  # the epoch's PartRows (the parts it has opened)

    def batches(self, state: Any) -> Iterator[tuple[int, int]]:
        """The epoch's global batches: yields (m_r, W) for each, with this rank's m_r rows
        in the first rows of ``self.x``, ``self.d`` and their global numbers in
        ``self.ids``; W is the global batch's rows. Shuffles ``state.order`` (the parts)
        and draws from ``state.rng`` first, as ``fit`` shuffles its examples."""
        rng = None
        if state.shuffle:
            state.rng.shuffle(state.order)
            seed = int(state.rng.integers(2**63))
            rng = np.random.default_rng([seed, self.rank])  # this rank's draws
        order = [int(k) for k in state.order if k in self.mine]
        rows = PartRows(self.stream, order, self.widths, self.dtype)
        self.reading = rows  # (how many parts it has opened: a checkpoint's position)
        if self.buffer is not None:
            self.buffer.filled = 0
            self.buffer.fill(rows)
        for j in range(self.count):
            m = batch_rows(self.plan, self.b, j)
            if m and self.buffer is not None:
                assert rng is not None
                self.buffer.draw(rng, m, rows, self.x, self.d, self.ids)
            elif m:
                fifo(rows, m, self.x, self.d, self.ids)
            yield m, sum(batch_rows(plan, b, j) for plan, b in self.plans)

    def columns(self, m: int, W: int, j: int) -> tuple[Array, Array, Array | None, float]:
        """Batch j as ``train_step`` takes it: columns x (N_0, m), d (N_Q, m), weights and
        the batch's total weight. Under K ranks the weights are m_r / W a column (this
        rank's share of the mean); a rank without rows gives ``least`` stand-in columns of
        weight 0, which add zeros to every sum (``DataParallel.step``)."""
        if self.parallel is None:
            return self.x[:m].T, self.d[:m].T, None, float(m)
        assert self.shard is not None
        before = sum(batch_rows(plan, b, j) for plan, b in self.plans[: self.rank])
        self.shard.rows = slice(before, before + m)  # this rank's columns of the batch
        self.shard.batch_sum.n, self.shard.batch_sum.empty = W, m == 0
        if m == 0:
            self.x[: self.least] = 0.0
            self.d[: self.least] = 0.0
            w = self.w[:, : self.least]
            w.fill(0.0)
            return self.x[: self.least].T, self.d[: self.least].T, w, float(W)
        w = self.w[:, :m]
        w.fill(m / W)
        return self.x[:m].T, self.d[:m].T, w, float(W)

    def epoch(self, net: Any, run: Any, epoch: int, after_batch: Callable) -> tuple[float, int]:
        """One streamed epoch of ``fit``: (summed loss, batches).

        A stop signal in the middle (``_stop``) leaves the run where it is and the state at
        the epoch's start with the batches done (``state.batch``); continuing from that
        state replays the epoch's reads and draws up to there (no training: the buffer is
        rebuilt as it was) and goes on, bit for bit the uninterrupted run.
        """
        state = run.state
        done, total = state.batch, state.epoch_loss if state.position else 0.0
        start = _EpochStart(net, state)  # before the part order is shuffled
        state.position = state.batch = 0
        batch = done
        for j, (m, W) in enumerate(self.batches(state)):
            if j < done:
                continue  # replayed: the rows this run already trained on
            x, d, w, weight = self.columns(m, W, j)
            loss = run.step(net, run.optimizer, state.optimizer_state, x, d, w, run.penalty, weight)
            batch = j + 1
            after_batch(net, run, loss, epoch, batch)
            total += loss * W
            if run.guard.requested and batch < self.count:
                self._stop(net, run, start, batch, total)
                break
        return total, batch

    def _stop(self, net: Any, run: Any, start: _EpochStart, batch: int, total: float) -> None:
        """Stopped after ``batch`` of ``self.count``: the state keeps the epoch's start (its
        generator and part order) with ``position`` (parts opened, >= 1) and ``batch``, and
        ``last_good``, as ``fit`` keeps an interrupted epoch in memory. With one part
        ``position`` cannot be told from 0: the run goes back to the epoch's start."""
        state, parts = run.state, len(self.stream.parts)
        if parts == 1:
            start.restore(net, run)
            run.rewound = True
            return
        state.rng.bit_generator.state = start.rng
        state.order[...] = start.order
        state.position = min(max(self.reading.next_part, 1), parts - 1)
        state.batch, state.epoch_loss, state.last_good = batch, total, run.last_good


class _EpochStart:
    """What a streamed run had at the start of an epoch, besides the weights (which ``fit``
    keeps as ``last_good``): to go back there after a stop in the middle of the epoch."""

    def __init__(self, net: Any, state: Any) -> None:
        self.rng = state.rng.bit_generator.state
        self.order = state.order.copy()
        self.stats = net.stats.copy()
        self.optimizer = copy.deepcopy(state.optimizer_state)
        self.dropout = net.dropout_rng.bit_generator.state

    def restore(self, net: Any, run: Any) -> None:
        state = run.state
        net.params[...] = run.last_good
        net.stats[...] = self.stats
        state.rng.bit_generator.state = self.rng
        state.order[...] = self.order
        state.optimizer_state.clear()
        state.optimizer_state.update(self.optimizer)
        net.dropout_rng.bit_generator.state = self.dropout


def check_stream(stream: Stream, D: object, sample_weight: object, rows: object) -> None:
    """``fit(net, stream)``: D, ``sample_weight`` and ``rows`` must be None (the parts hold
    the rows and targets; each process finds its own parts), and the stream a row."""
    for name, value in (("D", D), ("sample_weight", sample_weight), ("rows", rows)):
        if value is not None:
            raise TypeError(
                f"{name} must be None when X is a Stream (its parts hold the rows), got "
                f"{type(value).__name__}"
            )
    if stream.n_rows < 1:
        raise ValueError(f"the stream must hold at least one row, got {stream!r}")


def stream_batches(
    net: Any, stream: Stream, batch_size: int, shuffle: bool, parallel: Any
) -> StreamBatches:
    """The ``StreamBatches`` of ``fit(net, stream)``: widths and dtype from the network, and
    its least columns a step (2 with batch normalisation)."""
    least = max(op.min_batch for ops in net.ops for op in ops)
    widths = (net.sizes[0], net.sizes[-1])
    return StreamBatches(stream, widths, net.dtype, batch_size, shuffle, least, parallel)


def stream_parallel(comm: Any, net: Any, stream: Stream, settings: dict) -> Any:
    """The ``DataParallel`` of a streamed run on K ranks: it checks that the ranks agree on
    the settings and the parts (their row counts), broadcasts rank 0's weights and draws one
    dropout stream. It is given a stand-in table of B zero rows (no rank holds the data);
    its batch-norm hook and batch shares (``batches_made``) are set batch by batch by
    ``StreamBatches.columns``."""
    from .distributed import DataParallel

    B = settings["batch_size"]
    X = np.zeros((B, net.sizes[0]), dtype=net.dtype)
    D = np.zeros((B, net.sizes[-1]), dtype=net.dtype)
    parallel = DataParallel(comm, net, X, D, dict(settings, parts=stream.rows))
    parallel.batches(net, X, D, None, B)  # sets parallel.batches_made
    return parallel


def epoch_row_order(
    stream: Stream,
    seed: int,
    epochs: int,
    batch_size: int,
    shuffle: bool,
    ranks: tuple[int, int] = (0, 1),
    least: int = 1,
) -> list[list[Array]]:
    """``Stream.row_order``: the global rows of rank r's share of each mini-batch of each
    epoch of ``fit(net, stream, seed=seed, ...)`` on K ranks, ``ranks`` = (r, K)."""
    from .state import TrainingState

    first = next(k for k, count in enumerate(stream.rows) if count)
    X, D = stream.read(stream.parts[first])
    widths = (np.shape(X)[1], 1 if np.ndim(D) == 1 else np.shape(D)[1])
    batch_size = min(batch_size, stream.n_rows)
    batches = StreamBatches(stream, widths, np.float64, batch_size, shuffle, least, ranks=ranks)
    state = TrainingState(rng=np.random.default_rng(seed), order=np.arange(len(stream.parts)))
    state.shuffle = shuffle
    return [[batches.ids[:m].copy() for m, _ in batches.batches(state)] for _ in range(epochs)]
