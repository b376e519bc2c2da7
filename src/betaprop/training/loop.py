"""Step 6: the training loop over epochs and mini-batches.

``fit`` shuffles the examples each epoch, cuts them into mini-batches, and for each batch
runs steps 2-5 (``Network._loss_and_gradients``) and one optimizer update. Mini-batch rows
are gathered into buffers allocated once (``np.take(..., out=)``), so after the first step
a training step allocates no new arrays. Library code never prints: ``fit`` returns a
``History`` and calls the callbacks, which may print (a progress bar) or record
(diagnostics).
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse

from ..engine.network import Network, _as_matrix
from .optimizers import Optimizer, Schedule, get_optimizer, get_schedule

__all__ = [
    "fit",
    "History",
    "Callback",
    "EarlyStopping",
    "DivergenceError",
    "InterruptedWarning",
    "TrainingState",
    "evaluate",
]

Array = np.ndarray

# A loss this many times its value on the first batch (or non-finite) is a divergence.
EXPLOSION_FACTOR = 1e4


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became non-finite or exploded.

    The network holds the weights of the last good epoch; ``history`` the epochs before.
    ``loss`` is the batch loss that diverged (None when the weights became non-finite).
    """

    def __init__(
        self, message: str, epoch: int, batch: int, history: History, loss: float | None = None
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.history = history
        self.loss = loss


class InterruptedWarning(UserWarning):
    """Issued by ``fit`` when Ctrl-C (SIGINT) ended training early: "Training interrupted by user."

    ``History.interrupted`` is set too; the network keeps usable weights (see ``fit``).
    """


@dataclass
class History:
    """What happened per epoch: training loss, validation loss and score, learning rate.

    ``val_score`` is the accuracy for classification losses and R² for squared error.
    ``extra`` holds the series that callbacks record (for example per-layer sizes of beta).
    ``interrupted`` is True when Ctrl-C ended the last call of ``fit`` early.
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    extra: dict[str, list[Any]] = field(default_factory=dict)
    best_epoch: int | None = None
    stopped_early: bool = False
    interrupted: bool = False

    def columns(self) -> dict[str, list]:
        """The per-epoch series as a column table (for CSV files and plots)."""
        table: dict[str, list] = {"epoch": self.epoch, "loss": self.loss}
        if self.val_loss:
            table["val_loss"] = self.val_loss
            table["val_score"] = self.val_score
        table["learning_rate"] = self.learning_rate
        table["seconds"] = self.seconds
        for key, values in self.extra.items():
            if len(values) == len(self.epoch) and all(np.isscalar(v) for v in values):
                table[key] = values
        return table


class Callback:
    """Hooks called by ``fit``; override what you need. A hook that returns True stops.

    While ``fit`` runs, ``self.training_state`` is its ``TrainingState`` (what a checkpoint
    saves besides the weights); it is set before ``on_train_begin``.
    """

    training_state: TrainingState | None = None

    def on_train_begin(self, net: Network, history: History) -> None:
        pass

    def on_batch_end(self, net: Network, epoch: int, batch: int, loss: float) -> bool | None:
        return None

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> bool | None:
        return None

    def on_train_end(self, net: Network, history: History) -> None:
        pass


@dataclass
class EarlyStopping:
    """Stop when the monitored value has not improved by ``min_delta`` for ``patience`` epochs.

    ``monitor`` is "val_loss" (default when validation data is given), "val_score" or "loss".
    With ``restore_best`` the network ends with the weights of the best epoch.
    """

    patience: int = 10
    min_delta: float = 0.0
    monitor: str | None = None
    restore_best: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {self.patience!r}")
        if self.monitor not in (None, "loss", "val_loss", "val_score"):
            raise ValueError(
                f"monitor must be one of ['loss', 'val_loss', 'val_score'], got {self.monitor!r}"
            )


@dataclass
class TrainingState:
    """Where a run of ``fit`` stands, besides the weights: all it needs to go on exactly.

    ``fit`` fills a fresh state (or continues the one passed as ``state``) and keeps it
    current; callbacks see it as ``training_state``; ``betaprop.checkpoint`` saves and loads
    it. Continuing with the state, the same data and the same settings gives bit for bit
    the weights and history of one uninterrupted run. Fields left None are created by
    ``fit``: the generator from ``seed``, the order as 0..n-1, a fresh optimizer state.
    """

    rng: np.random.Generator | None = None  # shuffles the examples every epoch
    order: Array | None = None  # the example order, shuffled in place, kept across epochs
    optimizer_state: dict | None = None
    epoch: int = 0  # the last completed epoch
    position: int = 0  # examples of epoch + 1 already trained on (after an interruption)
    batch: int = 0  # mini-batches of epoch + 1 already done
    epoch_loss: float = 0.0  # their summed loss, sum of (batch mean loss * batch size)
    reference: float | None = None  # the first batch's loss: the scale of an explosion
    best_value: float = math.inf  # the best monitored value so far (minimised)
    bad_epochs: int = 0  # epochs since it last improved
    best_params: Array | None = None  # the weights of the best epoch
    last_good: Array | None = None  # the weights at the start of epoch + 1, when position > 0
    params: Array | None = None  # the weights to go on from, when the network holds others
    resumable: bool = True  # False after a hard interruption left the state inexact
    # The settings of the run, recorded by fit (a checkpoint stores them to resume):
    optimizer: Optimizer | None = None
    schedule: Schedule | None = None
    early_stopping: EarlyStopping | None = None
    batch_size: int = 0
    shuffle: bool = True
    final_epoch: int = 0  # the last epoch this run was asked to reach


class _InterruptGuard:
    """While active in the main thread, the first Ctrl-C (SIGINT) only sets ``requested``.

    ``fit`` checks the flag after every mini-batch. A second Ctrl-C raises
    ``KeyboardInterrupt`` at once. The previous handler is restored on exit. Nothing is
    installed outside the main thread, when SIGINT is ignored, or when the previous
    handler was not installed from Python (it could not be restored).
    """

    def __init__(self) -> None:
        self.requested = False
        self.installed = False
        self.previous: Any = None

    def __enter__(self) -> _InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            previous = signal.getsignal(signal.SIGINT)
            if previous is None or previous is signal.SIG_IGN:
                return self
            signal.signal(signal.SIGINT, self._handle)
        except (ValueError, OSError):  # no signals here (an embedded interpreter)
            return self
        self.previous, self.installed = previous, True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
            self.installed = False


def evaluate(net: Network, X: Array, D: Array, batch_size: int = 4096) -> tuple[float, float]:
    """(mean loss, score) of ``net`` on X (n, N_0), D (n, N_Q): accuracy or R²."""
    X = net.check_X(X)
    D = net.check_D(D, X.shape[0])
    total, n = 0.0, X.shape[0]
    predictions = np.empty((n, net.sizes[-1]), dtype=net.dtype)
    for start in range(0, n, batch_size):
        x, d = X[start : start + batch_size].T, D[start : start + batch_size].T
        ws = net.buffers(x.shape[1])
        predictions[start : start + x.shape[1]] = net._forward(ws, x).T
        total += net._loss(ws, d) * x.shape[1]
    return total / n, _score(net, predictions, D)


def _score(net: Network, P: Array, D: Array) -> float:
    if net.loss.classification:
        if P.shape[1] == 1 or net.loss.name == "binary_cross_entropy":
            return float(np.mean(np.all((P > 0.5) == (D > 0.5), axis=1)))
        return float(np.mean(P.argmax(axis=1) == D.argmax(axis=1)))
    residual = float(np.sum((D - P) ** 2))
    spread = float(np.sum((D - D.mean(axis=0)) ** 2))
    return 1.0 - residual / spread if spread > 0 else 0.0


def fit(
    net: Network,
    X: Array,
    D: Array,
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
    penalty: Callable[[float, float], float] | None = None,
) -> History:
    """Train ``net`` on X (n, N_0) and targets D (n, N_Q) by mini-batch backpropagation.

    Each epoch shuffles the examples (with ``np.random.default_rng(seed)``), and for each
    mini-batch runs steps 2-5 and one optimizer step (step 6). After every epoch the
    schedule sets the learning rate, the validation loss and score are recorded, and
    early stopping is checked.

    A non-finite loss, or one ``EXPLOSION_FACTOR`` times the first batch's, or non-finite
    weights at the end of an epoch, raise ``DivergenceError`` naming the epoch and batch,
    after restoring the weights of the last good epoch. Pass ``history`` and
    ``optimizer_state`` to continue an earlier run.

    Ctrl-C (SIGINT) while ``fit`` runs in the main thread finishes the current mini-batch;
    ``fit`` then warns "Training interrupted by user." (``InterruptedWarning``), sets
    ``history.interrupted`` and returns. The network keeps usable weights: the best
    epoch's when validating or early stopping (with ``restore_best``), else those after the
    last batch. A second Ctrl-C raises ``KeyboardInterrupt`` at once, after restoring the
    weights of the last good epoch. Where no handler can be installed (another thread),
    a ``KeyboardInterrupt`` is caught instead and the last good epoch's weights are kept.

    ``state`` (a ``TrainingState``, updated in place) continues a run exactly, even from
    the middle of an interrupted epoch: with the same data and settings the weights and
    history end bit for bit as those of one uninterrupted run. ``seed`` must then be None
    if the state already holds a generator, and ``epochs`` counts from the state's epoch
    (the interrupted epoch included).

    ``sample_weight`` (n,) makes each mini-batch's loss and gradients its weighted mean
    sum_i w_i E_i / sum_i w_i; a mini-batch whose weights sum to 0 or less is skipped (no update).
    ``penalty(loss, weight)``, called after steps 2-5 of each mini-batch with its mean loss
    and total weight (m without sample weights), may add a term's gradient to ``net.grads``
    and returns the loss to record. X may be a SciPy sparse matrix, densified one
    mini-batch at a time.
    """
    sparse = scipy.sparse.issparse(X)
    X = _check_sparse(net, X) if sparse else net.check_X(X)
    D = net.check_D(D, X.shape[0])
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    optimizer = get_optimizer(optimizer)
    schedule = get_schedule(schedule)
    stopper = EarlyStopping(early_stopping) if isinstance(early_stopping, int) else early_stopping
    validation = None
    if validation_data is not None:
        Xv, Dv = validation_data
        Xv = net.check_X(Xv)
        validation = (Xv, net.check_D(_as_matrix(Dv, "validation D", net.dtype), Xv.shape[0]))
    monitor = _monitor(stopper, validation is not None)
    w = None if sample_weight is None else _check_sample_weight(sample_weight, X.shape[0])

    n = X.shape[0]
    batch_size = min(batch_size, n)
    history = History() if history is None else history
    run = _start_run(net, n, seed, optimizer, optimizer_state, state, history)
    run.optimizer, run.schedule, run.early_stopping = optimizer, schedule, stopper
    run.batch_size, run.shuffle = batch_size, shuffle
    first_epoch = run.epoch + 1
    run.final_epoch = first_epoch + epochs - 1
    rng, order, state_ = run.rng, run.order, run.optimizer_state
    assert rng is not None and order is not None and state_ is not None
    x_batch = np.empty((batch_size, X.shape[1]), dtype=net.dtype)
    d_batch = np.empty((batch_size, D.shape[1]), dtype=net.dtype)
    if w is not None:
        w_batch, w_cols = np.empty(batch_size), np.empty((1, batch_size), dtype=net.dtype)
    last_good = net.params.copy() if run.last_good is None else run.last_good
    best = net.params.copy() if run.best_params is None else run.best_params
    run.last_good, run.best_params = None, best
    history.interrupted = False

    for callback in callbacks:
        if isinstance(callback, Callback):
            callback.training_state = run
        callback.on_train_begin(net, history)
    stop = False
    with _InterruptGuard() as guard:
        try:
            for epoch in range(first_epoch, first_epoch + epochs):
                started = time.perf_counter()
                if run.position == 0:
                    if shuffle:
                        rng.shuffle(order)
                    total = 0.0
                else:  # resuming in the middle of this epoch
                    total = run.epoch_loss
                first_start, first_batch = run.position, run.batch + 1
                run.position = run.batch = 0
                batch = first_batch - 1
                for batch, start in enumerate(range(first_start, n, batch_size), first_batch):
                    idx = order[start : start + batch_size]
                    m = len(idx)
                    x, d = x_batch[:m], d_batch[:m]
                    if sparse:
                        x[...] = X[idx].toarray()
                    else:
                        X.take(idx, axis=0, out=x, mode="clip")  # np.take without its wrapper
                    D.take(idx, axis=0, out=d, mode="clip")
                    weight = float(m)
                    if w is None:
                        loss = net._loss_and_gradients(x.T, d.T)  # steps 2-5
                    else:
                        weight = _batch_weights(w, idx, w_batch[:m], w_cols[0, :m])
                        loss = net._loss_and_gradients(x.T, d.T, w_cols[:, :m]) if weight else 0.0
                    if penalty is not None and weight:
                        loss = penalty(loss, weight)
                    if run.reference is None:
                        run.reference = max(abs(loss), 1.0)
                    if not math.isfinite(loss) or loss > EXPLOSION_FACTOR * run.reference:
                        net.params[...] = last_good
                        raise DivergenceError(
                            f"training diverged in epoch {epoch}, batch {batch}: the loss "
                            f"became {loss!r} (it started at {run.reference:.4g}); the "
                            "weights of the last good epoch were restored. Try a smaller "
                            f"learning rate (now {state_['lr']:.4g}).",
                            epoch,
                            batch,
                            history,
                            loss,
                        )
                    if weight:  # a mini-batch without weight teaches nothing
                        optimizer.update(net.params, net.grads, state_, net.n_weights)  # step 6
                    total += loss * m
                    for callback in callbacks:
                        stop = bool(callback.on_batch_end(net, epoch, batch, loss)) or stop
                    if guard.requested and start + m < n:  # Ctrl-C: stop mid-epoch
                        _check_finite(net, last_good, epoch, batch, history, state_["lr"])
                        run.position, run.batch, run.epoch_loss = start + m, batch, total
                        run.last_good = last_good
                        break
                if run.position:
                    break
                _check_finite(net, last_good, epoch, batch, history, state_["lr"])
                np.copyto(last_good, net.params)

                history.epoch.append(epoch)
                history.loss.append(total / n)
                history.learning_rate.append(state_["lr"])
                if validation is not None:
                    val_loss, val_score = evaluate(net, *validation)
                    history.val_loss.append(val_loss)
                    history.val_score.append(val_score)
                history.seconds.append(time.perf_counter() - started)
                run.epoch, run.epoch_loss = epoch, 0.0
                value = _monitored(history, monitor)
                state_["lr"] = schedule.step(optimizer.learning_rate, len(history.epoch), value)
                if value < run.best_value - (stopper.min_delta if stopper else 0.0):
                    run.best_value, run.bad_epochs, history.best_epoch = value, 0, epoch
                    np.copyto(best, net.params)
                else:
                    run.bad_epochs += 1
                if stopper is not None and run.bad_epochs >= stopper.patience:
                    history.stopped_early = True
                    stop = True
                for callback in callbacks:
                    stop = bool(callback.on_epoch_end(net, epoch, history)) or stop
                if stop or guard.requested:
                    break
        except KeyboardInterrupt:
            net.params[...] = last_good  # the interrupted update may be half done
            if guard.installed:  # a second Ctrl-C: stop at once
                raise
            history.interrupted = True
            run.resumable = False
            _trim(history)
        if guard.requested:
            history.interrupted = True
    if history.interrupted:
        warnings.warn("Training interrupted by user.", InterruptedWarning, stacklevel=2)
    if stopper is not None:
        restore = stopper.restore_best
    else:
        restore = history.interrupted and validation is not None
    if restore and history.best_epoch is not None:
        if run.resumable:
            run.params = net.params.copy()  # training goes on from here, not from the best
        net.params[...] = best
    for callback in callbacks:
        callback.on_train_end(net, history)
    return history


def _check_sparse(net: Network, X: Any) -> Any:
    """A sparse X (n, N_0) with finite values, in CSR form (rows are gathered per batch)."""
    X = scipy.sparse.csr_matrix(X)
    if X.shape[0] == 0 or X.shape[1] != net.sizes[0]:
        raise ValueError(f"X must have shape (n, N_0) = (n, {net.sizes[0]}), got {X.shape}")
    if not np.isfinite(X.data).all():
        raise ValueError("X must be finite, got a non-finite stored value")
    return X


def _check_sample_weight(sample_weight: Any, n: int) -> Array:
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all():
        raise ValueError(
            f"sample_weight must be {n} finite values (one per example), got {sample_weight!r}"
        )
    return w


def _batch_weights(w: Array, idx: Array, sw: Array, out: Array) -> float:
    """Gather the batch's weights into sw; out = m w_i / sum w (mean 1); returns sum w or 0."""
    np.take(w, idx, out=sw, mode="clip")
    total = float(sw.sum())
    if total <= 0:
        return 0.0
    np.multiply(sw, len(idx) / total, out=out)
    return total


def _start_run(
    net: Network,
    n: int,
    seed: int | None,
    optimizer: Optimizer,
    optimizer_state: dict | None,
    state: TrainingState | None,
    history: History,
) -> TrainingState:
    """The state ``fit`` goes on from: ``state`` checked against the network and data, or new."""
    run = TrainingState() if state is None else state
    if run.rng is None:
        run.rng = np.random.default_rng(seed)
    elif seed is not None:
        raise ValueError(
            f"seed must be None when state.rng is set (the state's generator goes on), got {seed!r}"
        )
    if run.order is None:
        run.order = np.arange(n)
    elif run.order.shape != (n,) or not np.array_equal(np.sort(run.order), np.arange(n)):
        raise ValueError(
            f"state.order must be a permutation of the n = {n} examples, got an array of shape "
            f"{run.order.shape}"
        )
    if optimizer_state is not None and run.optimizer_state is not None:
        raise ValueError("optimizer_state must be None when state.optimizer_state is set")
    given = optimizer_state if optimizer_state is not None else run.optimizer_state
    if given is None:
        run.optimizer_state = optimizer.init(net.params)
    else:
        # the keys of a fresh state, from one parameter (full-size arrays only where missing)
        fresh = optimizer.init(net.params[:1])
        missing = [key for key in fresh if key not in given]
        if missing:
            full = optimizer.init(net.params)
            given.update({key: full[key] for key in missing})
        for key, value in fresh.items():
            if isinstance(value, np.ndarray) and np.shape(given[key]) != net.params.shape:
                raise ValueError(
                    f"optimizer_state[{key!r}] must have shape {net.params.shape} for this "
                    f"network, got {np.shape(given[key])}"
                )
        run.optimizer_state = given
    for name in ("best_params", "last_good", "params"):
        array = getattr(run, name)
        if array is not None and array.shape != net.params.shape:
            raise ValueError(
                f"state.{name} must have shape {net.params.shape} for this network, "
                f"got {array.shape}"
            )
    last = history.epoch[-1] if history.epoch else 0
    if run.epoch not in (0, last) or (run.position and run.epoch != last):
        raise ValueError(
            f"state.epoch must be the last epoch of history ({last}), got {run.epoch!r}"
        )
    if not 0 <= run.position < n:
        raise ValueError(f"state.position must be in [0, {n}), got {run.position!r}")
    run.epoch = last
    if run.params is not None:
        net.params[...] = run.params  # go on from the weights training had reached
        run.params = None
    run.resumable = True
    return run


def _check_finite(
    net: Network, last_good: Array, epoch: int, batch: int, history: History, lr: float
) -> None:
    """Divergence check of the weights themselves (cheap test first, allocation-free)."""
    if math.isfinite(float(np.dot(net.params, net.params))):
        return
    if np.isfinite(net.params).all():  # finite, only the sum of squares overflowed
        return
    net.params[...] = last_good
    raise DivergenceError(
        f"training diverged in epoch {epoch}, batch {batch}: the weights became non-finite; "
        "the weights of the last good epoch were restored. Try a smaller learning rate "
        f"(now {lr:.4g}).",
        epoch,
        batch,
        history,
    )


def _trim(history: History) -> None:
    """Cut the per-epoch series to their common length (after a hard interruption)."""
    series: list[list[Any]] = [history.epoch, history.loss, history.learning_rate]
    series.append(history.seconds)
    if history.val_loss or history.val_score:
        series += [history.val_loss, history.val_score]
    shortest = min(len(values) for values in series)
    for values in series:
        del values[shortest:]


def _monitor(stopper: EarlyStopping | None, validating: bool) -> str:
    monitor = stopper.monitor if stopper is not None and stopper.monitor else None
    if monitor is None:
        return "val_loss" if validating else "loss"
    if monitor.startswith("val_") and not validating:
        raise ValueError(f"early_stopping monitor {monitor!r} needs validation_data, got None")
    return monitor


def _monitored(history: History, monitor: str) -> float:
    """The monitored value of the last epoch, as something to minimise."""
    if monitor == "val_score":
        return -history.val_score[-1]
    return float(getattr(history, monitor)[-1])


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
