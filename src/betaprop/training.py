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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .network import Network, _as_matrix
from .optimizers import Optimizer, Schedule, get_optimizer, get_schedule

__all__ = ["fit", "History", "Callback", "EarlyStopping", "DivergenceError", "evaluate"]

Array = np.ndarray

# A loss this many times its value on the first batch (or non-finite) is a divergence.
EXPLOSION_FACTOR = 1e4


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became non-finite or exploded.

    The network holds the weights of the last good epoch; ``history`` the epochs before.
    """

    def __init__(self, message: str, epoch: int, batch: int, history: History) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.history = history


@dataclass
class History:
    """What happened per epoch: training loss, validation loss and score, learning rate.

    ``val_score`` is the accuracy for classification losses and R² for squared error.
    ``extra`` holds the series that callbacks record (for example per-layer sizes of beta).
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
    """Hooks called by ``fit``; override what you need. A hook that returns True stops."""

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


def evaluate(net: Network, X: Array, D: Array, batch_size: int = 4096) -> tuple[float, float]:
    """(mean loss, score) of ``net`` on X (n, N_0), D (n, N_Q): accuracy or R²."""
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
) -> History:
    """Train ``net`` on X (n, N_0) and targets D (n, N_Q) by mini-batch backpropagation.

    Each epoch shuffles the examples (with ``np.random.default_rng(seed)``), and for each
    mini-batch runs steps 2-5 and one optimizer step (step 6). After every epoch the
    schedule sets the learning rate, the validation loss and score are recorded, and
    early stopping is checked.

    A non-finite loss, or one ``EXPLOSION_FACTOR`` times the first batch's, raises
    ``DivergenceError`` naming the epoch and batch, after restoring the weights of the last
    good epoch. Pass ``history`` and ``optimizer_state`` to continue an earlier run.
    """
    X = net._check_X(X)
    D = net._check_D(D, X.shape[0])
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    optimizer = get_optimizer(optimizer)
    schedule = get_schedule(schedule)
    stopper = EarlyStopping(early_stopping) if isinstance(early_stopping, int) else early_stopping
    validation = None
    if validation_data is not None:
        Xv, Dv = validation_data
        Xv = net._check_X(Xv)
        validation = (Xv, net._check_D(_as_matrix(Dv, "validation D", net.dtype), Xv.shape[0]))
    monitor = _monitor(stopper, validation is not None)

    n = X.shape[0]
    batch_size = min(batch_size, n)
    rng = np.random.default_rng(seed)
    state = optimizer.init(net.params) if optimizer_state is None else optimizer_state
    history = History() if history is None else history
    x_batch = np.empty((batch_size, X.shape[1]), dtype=net.dtype)
    d_batch = np.empty((batch_size, D.shape[1]), dtype=net.dtype)
    order = np.arange(n)
    last_good = net.params.copy()
    best = net.params.copy()
    best_value, bad_epochs = math.inf, 0
    reference: float | None = None
    first_epoch = history.epoch[-1] + 1 if history.epoch else 1

    for callback in callbacks:
        callback.on_train_begin(net, history)
    stop = False
    for epoch in range(first_epoch, first_epoch + epochs):
        started = time.perf_counter()
        if shuffle:
            rng.shuffle(order)
        total = 0.0
        for batch, start in enumerate(range(0, n, batch_size), start=1):
            idx = order[start : start + batch_size]
            m = len(idx)
            x, d = x_batch[:m], d_batch[:m]
            np.take(X, idx, axis=0, out=x, mode="clip")
            np.take(D, idx, axis=0, out=d, mode="clip")
            loss = net._loss_and_gradients(x.T, d.T)  # steps 2-5
            if reference is None:
                reference = max(abs(loss), 1.0)
            if not math.isfinite(loss) or loss > EXPLOSION_FACTOR * reference:
                net.params[...] = last_good
                raise DivergenceError(
                    f"training diverged in epoch {epoch}, batch {batch}: the loss became "
                    f"{loss!r} (it started at {reference:.4g}); the weights of the last good "
                    f"epoch were restored. Try a smaller learning rate (now {state['lr']:.4g}).",
                    epoch,
                    batch,
                    history,
                )
            optimizer.update(net.params, net.grads, state, net.n_weights)  # step 6
            total += loss * m
            for callback in callbacks:
                stop = bool(callback.on_batch_end(net, epoch, batch, loss)) or stop
        np.copyto(last_good, net.params)

        history.epoch.append(epoch)
        history.loss.append(total / n)
        history.learning_rate.append(state["lr"])
        if validation is not None:
            val_loss, val_score = evaluate(net, *validation)
            history.val_loss.append(val_loss)
            history.val_score.append(val_score)
        history.seconds.append(time.perf_counter() - started)
        value = _monitored(history, monitor)
        state["lr"] = schedule.step(optimizer.learning_rate, len(history.epoch), value)
        if value < best_value - (stopper.min_delta if stopper else 0.0):
            best_value, bad_epochs, history.best_epoch = value, 0, epoch
            np.copyto(best, net.params)
        else:
            bad_epochs += 1
        for callback in callbacks:
            stop = bool(callback.on_epoch_end(net, epoch, history)) or stop
        if stopper is not None and bad_epochs >= stopper.patience:
            history.stopped_early = True
            stop = True
        if stop:
            break
    if stopper is not None and stopper.restore_best and history.best_epoch is not None:
        net.params[...] = best
    for callback in callbacks:
        callback.on_train_end(net, history)
    return history


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
