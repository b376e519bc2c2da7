"""Step 6: the one training step, and the loop over epochs and mini-batches around it.

``train_step`` is the one mini-batch step: steps 2-5 of the network, an optional penalty,
one optimizer update. ``fit`` calls it for every mini-batch (and so do the estimators'
stochastic solvers and the benchmark's epochs, through ``fit``). ``fit``
shuffles the examples each epoch, gathers mini-batches into buffers allocated once
(``np.take(..., out=)``), and after each epoch records the history, validates, steps the
schedule and checks early stopping. Library code never prints: ``fit`` returns a
``History`` and calls the callbacks, which may print (a progress bar) or record.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.checks import check_seed, finite_weights
from ..engine.network import Network
from .batches import Batches
from .interrupt import InterruptGuard
from .optimizers import Optimizer, get_optimizer
from .run_checks import check_finite as _check_finite
from .run_checks import check_positive_int as _check_positive_int
from .run_checks import monitor as _monitor
from .run_checks import monitored as _monitored
from .run_checks import trim as _trim
from .schedules import Schedule, get_schedule
from .state import (
    Callback,
    DivergenceError,
    EarlyStopping,
    History,
    InterruptedWarning,
    TrainingState,
    begin_run,
)
from .stream import Stream
from .stream_epochs import check_stream, stream_batches, stream_parallel

__all__ = ["train_step", "fit", "evaluate", "Penalty", "EXPLOSION_FACTOR"]

Array = np.ndarray
# A penalty term: penalty(net, loss, weight) adds its gradient to net.grads and returns the
# loss with its value added; weight is the mini-batch's total sample weight (m without).
Penalty = Callable[[Network, float, float], float]

# A loss this many times its value on the first batch (or non-finite) is a divergence.
EXPLOSION_FACTOR = 1e4


def train_step(
    net: Network,
    optimizer: Optimizer,
    state: dict,
    x: Array,
    d: Array,
    w: Array | None = None,
    penalty: Penalty | None = None,
    weight: float | None = None,
) -> float:
    """Steps 2-6 on one mini-batch of columns x (N_0, m), d (N_Q, m); returns its loss.

    ``w`` (1, m): per-example weights (the loss and gradient are then those of
    (1/m) sum_i w_i E_i); ``penalty`` adds a term (e.g. L2) to the loss and ``net.grads``,
    given the batch's total sample weight ``weight`` (m by default). The optimizer then
    updates ``net.params`` with ``state`` (its learning rate is ``state["lr"]``), unless
    the loss is not finite: the caller decides what a diverged step means. Refused with
    RuntimeError while another thread trains ``net`` (``Network.training_lock``).
    """
    with net.training_lock():  # another thread training net at the same time: refused
        net.forward_columns(x, training=True)  # step 2
        loss = net.loss_value(d, w)
        net.backward(d, w)  # steps 3-5
        total = x.shape[1] if weight is None else weight
        return update_step(net, optimizer, state, loss, penalty, total)  # step 6


def update_step(
    net: Network,
    optimizer: Optimizer,
    state: dict,
    loss: float,
    penalty: Penalty | None,
    weight: float,
) -> float:
    """Step 6 once ``net.grads`` hold the batch's gradient: the penalty's term (for the
    batch's total sample weight ``weight``), then the optimizer's update unless the loss is
    not finite. Returns the loss with the penalty."""
    if penalty is not None:
        loss = penalty(net, loss, weight)
    if math.isfinite(loss):
        optimizer.update(net.params, net.grads, state, net.n_weights)  # step 6
    return loss


def evaluate(net: Network, X: Array, D: Array, batch_size: int = 4096) -> tuple[float, float]:
    """(mean loss, score) of ``net`` on X (n, N_0), D (n, N_Q): accuracy or R²."""
    X = net.check_X(X)
    D = net.check_D(D, X.shape[0])
    total, n = 0.0, X.shape[0]
    predictions = np.empty((n, net.sizes[-1]), dtype=net.dtype)
    for start in range(0, n, batch_size):
        x, d = X[start : start + batch_size].T, D[start : start + batch_size].T
        predictions[start : start + x.shape[1]] = net.forward_columns(x).T
        total += net.loss_value(d) * x.shape[1]
    return total / n, net.loss.score(predictions, D)


@dataclass
class _Run:
    """What one call of ``fit`` works with, besides the network."""

    state: TrainingState
    optimizer: Optimizer
    schedule: Schedule
    stopper: EarlyStopping | None
    monitor: str
    batches: Batches
    validation: tuple[Array, Array] | None
    callbacks: Sequence[Callback]
    penalty: Penalty | None
    history: History
    guard: InterruptGuard
    last_good: Array
    best: Array
    best_stats: Array
    n: int
    stop: bool = False
    stream: Any = None  # StreamBatches when the data are a Stream (training/stream_epochs.py)
    rewound: bool = False  # a streamed epoch stopped in the middle went back to its start
    step: Callable[..., float] = train_step  # DataParallel.step under comm=
    evaluate: Callable[..., tuple[float, float]] = evaluate  # DataParallel.evaluate under comm=


def fit(
    net: Network,
    X: Any,  # an array (n, N_0), a SciPy sparse matrix or a Stream
    D: Any = None,
    *,
    optimizer: Optimizer | str = "adam",
    epochs: int = 10,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    validation_data: tuple[Array, Array] | None = None,
    early_stopping: EarlyStopping | int | None = None,
    schedule: Schedule | str | None = None,
    callbacks: Sequence[Callback] = (),
    history: History | None = None,
    optimizer_state: dict | None = None,
    state: TrainingState | None = None,
    sample_weight: Array | None = None,
    penalty: Penalty | None = None,
    comm: Any = None,
    rows: Array | None = None,
) -> History:
    """Train ``net`` on X (n, N_0) and targets D (n, N_Q) by mini-batch backpropagation.

    Each epoch shuffles the examples (``np.random.default_rng(seed)``) and runs
    ``train_step`` (steps 2-6) on each mini-batch; after it the schedule sets the learning
    rate, validation loss and score are recorded and early stopping is checked. A
    non-finite or exploded loss (``EXPLOSION_FACTOR`` times the first batch's), or
    non-finite weights, raise ``DivergenceError`` after restoring the last good epoch.

    Ctrl-C (SIGINT) in the main thread finishes the mini-batch, warns "Training interrupted
    by user." (``InterruptedWarning``), sets ``history.interrupted`` and returns usable
    weights (the best epoch's when validating or early stopping with ``restore_best``); a
    second Ctrl-C raises ``KeyboardInterrupt`` at once, with the last good epoch's weights.

    ``state`` (a ``TrainingState``, updated in place) continues a run exactly, even from the
    middle of an interrupted epoch: bit for bit one uninterrupted run, with the same data and
    settings (``seed`` None when the state holds a generator; ``epochs`` counts from the
    state's epoch). ``history`` and ``optimizer_state`` continue an earlier run's record and
    optimizer without the rest of a state.

    ``sample_weight`` (n,): each mini-batch's loss and gradient are its weighted mean (a
    batch whose weights sum to <= 0 is skipped). ``penalty(net, loss, weight)`` adds a term
    such as L2 (see ``train_step``). X may be a SciPy sparse matrix, used as it is. ``comm``:
    an MPI communicator: data parallel over its processes (``training.distributed``).
    ``rows`` (with ``comm``): each process passes only its own rows, X and D (maybe none),
    and their global row numbers 0..n-1 (sharded: ``training.sharding``); the sample
    weights and ``validation_data`` are then this process's rows too.

    ``fit(net, stream)``: X may be a ``Stream`` (``training.stream``; D None), training rows
    read part by part through a shuffle buffer, for data larger than memory; with ``comm``
    each process streams its own parts (docs/streaming.md).
    """
    stream, X, D, validation_data = _inputs(net, X, D, validation_data, sample_weight, rows, comm)
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    seed = check_seed(seed)
    n = X.shape[0] if stream is None else stream.n_rows  # (a sparse X has no len)
    w = None if sample_weight is None else finite_weights(sample_weight, n, "sample_weight")
    with net.training_lock():  # another thread training net at the same time: refused
        parallel = None
        if comm is not None:  # data parallel over MPI: training/distributed.py
            from .distributed import DataParallel

            settings = dict(batch_size=batch_size, epochs=epochs, shuffle=shuffle, seed=seed)
            if stream is not None:  # each process streams its own parts
                parallel = stream_parallel(comm, net, stream, settings)
            else:
                parallel = DataParallel(comm, net, X, D, settings, rows)
                n = parallel.n  # all processes' rows
            if state is None or state.rng is None:
                seed = parallel.seed(seed)
        batch_size = min(batch_size, n)
        history = History() if history is None else history
        optimizer = get_optimizer(optimizer)
        ordered = n if stream is None else len(stream.parts)  # what state.order orders
        state = begin_run(net, ordered, seed, optimizer, optimizer_state, state, history)
        state.optimizer, state.schedule = optimizer, get_schedule(schedule)
        state.early_stopping = (
            EarlyStopping(early_stopping) if isinstance(early_stopping, int) else early_stopping
        )
        state.batch_size, state.shuffle = batch_size, shuffle
        state.final_epoch = state.epoch + epochs
        if stream is None:
            batches = parallel.batches if parallel else Batches
            examples: Any = batches(net, X, D, w, batch_size)
        else:
            examples = stream_batches(net, stream, batch_size, shuffle, parallel)
        run = _start(net, state, examples, validation_data, history, callbacks, penalty)
        if stream is not None:
            run.n, run.stream = n, examples
        if parallel is not None:
            run.guard, run.step, run.evaluate = parallel.guard, parallel.step, parallel.evaluate
        with parallel.attached(net) if parallel else contextlib.nullcontext():
            _train(net, run, epochs)
        _finish(net, run)
        return history


def _inputs(
    net: Network, X: Any, D: Any, validation_data: Any, sample_weight: Any, rows: Any, comm: Any
) -> tuple[Stream | None, Any, Any, tuple[Array, Array] | None]:
    """fit's data, checked: (the stream or None, X, D, the validation data)."""
    stream = X if isinstance(X, Stream) else None
    if stream is not None:  # rows read part by part: training/stream_epochs.py
        check_stream(stream, D, sample_weight, rows)
        validation_data = _checked_validation(net, validation_data)
    elif rows is None:
        X = net.check_X(X)
        D = net.check_D(D, X.shape[0])
        validation_data = _checked_validation(net, validation_data)
    else:  # this process's own rows, maybe none: training.distributed
        from .sharding import own_rows

        X, D, validation_data = own_rows(net, X, D, validation_data, comm)
    return stream, X, D, validation_data


def _start(
    net: Network,
    state: TrainingState,
    batches: Batches,
    validation_data: tuple[Array, Array] | None,
    history: History,
    callbacks: Sequence[Callback],
    penalty: Penalty | None,
) -> _Run:
    """What ``fit`` works with: the validation data, monitor, weights to fall back to."""
    validation = validation_data
    assert state.optimizer is not None and state.schedule is not None
    run = _Run(
        state,
        state.optimizer,
        state.schedule,
        state.early_stopping,
        _monitor(state.early_stopping, validation is not None),
        batches,
        validation,
        callbacks,
        penalty,
        history,
        InterruptGuard(),
        net.params.copy() if state.last_good is None else state.last_good,
        net.params.copy() if state.best_params is None else state.best_params,
        net.stats.copy() if state.best_stats is None else state.best_stats,
        len(state.order) if state.order is not None else 0,  # n: all processes' rows
    )
    state.last_good, state.best_params, state.best_stats = None, run.best, run.best_stats
    return run


def _train(net: Network, run: _Run, epochs: int) -> None:
    """The epochs of ``fit``, under the Ctrl-C guard; a hard interruption keeps the last good."""
    run.history.interrupted, run.history.stop_signal = False, None
    for callback in run.callbacks:
        if isinstance(callback, Callback):
            callback.training_state = run.state
        callback.on_train_begin(net, run.history)
    first = run.state.epoch + 1
    with run.guard:
        try:
            for epoch in range(first, first + epochs):
                started = time.perf_counter()
                if run.stream is None:
                    total, batch = _epoch(net, run, epoch)
                else:
                    total, batch = run.stream.epoch(net, run, epoch, _after_batch)
                if run.state.position or run.rewound:  # Ctrl-C in the middle of this epoch
                    break
                _end_epoch(net, run, epoch, total, batch, started)
                if run.stop or run.guard.requested:
                    break
        except KeyboardInterrupt:
            net.params[...] = run.last_good  # the interrupted update may be half done
            if run.guard.installed:  # a second Ctrl-C: stop at once
                raise
            run.history.interrupted = True
            run.state.resumable = False
            _trim(run.history)
        if run.guard.requested:
            run.history.interrupted = True
            run.history.stop_signal = run.guard.signal


def _epoch(net: Network, run: _Run, epoch: int) -> tuple[float, int]:
    """One epoch's mini-batches (from where an interrupted epoch stopped); (summed loss, batch)."""
    state, n = run.state, run.n
    assert state.rng is not None and state.order is not None and state.optimizer_state
    if state.position == 0:
        if state.shuffle:
            state.rng.shuffle(state.order)
        total = 0.0
    else:  # resuming in the middle of this epoch
        total = state.epoch_loss
    first_start, batch = state.position, state.batch
    state.position = state.batch = 0
    size, optimizer_state = state.batch_size, state.optimizer_state
    for start, stop in _bounds(first_start, n, size, merge_single=any(net.normalized)):
        batch += 1
        idx = state.order[start:stop]
        x, d, w, weight = run.batches.gather(idx)
        loss = 0.0
        if weight:  # a mini-batch without weight teaches nothing
            loss = run.step(net, run.optimizer, optimizer_state, x, d, w, run.penalty, weight)
        _after_batch(net, run, loss, epoch, batch)
        total += loss * len(idx)
        if run.guard.requested and start + len(idx) < n:  # Ctrl-C: stop mid-epoch
            _check_finite(net, run.last_good, epoch, batch, run.history, optimizer_state["lr"])
            state.position, state.batch, state.epoch_loss = start + len(idx), batch, total
            state.last_good = run.last_good
            break
    return total, batch


def _checked_validation(
    net: Network, validation_data: tuple[Array, Array] | None
) -> tuple[Array, Array] | None:
    """``validation_data`` as checked arrays (X as ``check_X``, D as ``check_D``), or None."""
    if validation_data is None:
        return None
    Xv = net.check_X(validation_data[0])
    return Xv, net.check_D(validation_data[1], Xv.shape[0], "validation D")


def _after_batch(net: Network, run: _Run, loss: float, epoch: int, batch: int) -> None:
    """After each mini-batch: the divergence check, then the callbacks."""
    _check_loss(net, run, loss, epoch, batch)
    for callback in run.callbacks:
        run.stop = bool(callback.on_batch_end(net, epoch, batch, loss)) or run.stop


def _bounds(first: int, n: int, size: int, merge_single: bool) -> list[tuple[int, int]]:
    """The [start, stop) rows of each mini-batch from ``first`` on; with ``merge_single``, a
    last batch of one example joins the batch before it (batch normalisation needs two)."""
    starts = list(range(first, n, size))
    if merge_single and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n], strict=True))


def _check_loss(net: Network, run: _Run, loss: float, epoch: int, batch: int) -> None:
    """A non-finite or exploded loss: the last good epoch's weights back, DivergenceError."""
    state = run.state
    if state.reference is None:
        state.reference = max(abs(loss), 1.0)
    if math.isfinite(loss) and loss <= EXPLOSION_FACTOR * state.reference:
        return
    net.params[...] = run.last_good
    lr = state.optimizer_state["lr"] if state.optimizer_state else math.nan
    raise DivergenceError(
        f"training diverged in epoch {epoch}, batch {batch}: the loss became {loss!r} (it "
        f"started at {state.reference:.4g}); the weights of the last good epoch were "
        f"restored. Try a smaller learning rate (now {lr:.4g}).",
        epoch,
        batch,
        run.history,
        loss,
    )


def _end_epoch(
    net: Network, run: _Run, epoch: int, total: float, batch: int, started: float
) -> None:
    """After an epoch: history, validation, schedule, best weights, early stopping, callbacks."""
    state, history, stopper = run.state, run.history, run.stopper
    optimizer_state = state.optimizer_state
    assert optimizer_state is not None
    _check_finite(net, run.last_good, epoch, batch, history, optimizer_state["lr"])
    np.copyto(run.last_good, net.params)
    history.epoch.append(epoch)
    history.loss.append(total / run.n)
    history.learning_rate.append(optimizer_state["lr"])
    if run.validation is not None:
        val_loss, val_score = run.evaluate(net, *run.validation)
        history.val_loss.append(val_loss)
        history.val_score.append(val_score)
    history.seconds.append(time.perf_counter() - started)
    state.epoch, state.epoch_loss = epoch, 0.0
    value = _monitored(history, run.monitor)
    optimizer_state["lr"] = run.schedule.step(
        run.optimizer.learning_rate, len(history.epoch), value
    )
    if value < state.best_value - (stopper.min_delta if stopper else 0.0):
        state.best_value, state.bad_epochs, history.best_epoch = value, 0, epoch
        np.copyto(run.best, net.params)
        np.copyto(run.best_stats, net.stats)
    else:
        state.bad_epochs += 1
    if stopper is not None and state.bad_epochs >= stopper.patience:
        history.stopped_early = run.stop = True
    for callback in run.callbacks:
        run.stop = bool(callback.on_epoch_end(net, epoch, history)) or run.stop


def _finish(net: Network, run: _Run) -> None:
    """After the epochs: the interruption warning, the best weights where asked, callbacks."""
    history, stopper = run.history, run.stopper
    if history.interrupted:
        warnings.warn("Training interrupted by user.", InterruptedWarning, stacklevel=3)
    if stopper is not None:
        restore = stopper.restore_best
    else:
        restore = history.interrupted and run.validation is not None
    if restore and history.best_epoch is not None:
        if run.state.resumable:
            run.state.params = net.params.copy()  # training goes on from here, not the best
            run.state.stats = net.stats.copy()
        net.params[...] = run.best
        net.stats[...] = run.best_stats
    for callback in run.callbacks:
        callback.on_train_end(net, history)
