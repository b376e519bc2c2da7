"""What a run of ``fit`` records and keeps: History, TrainingState, callbacks, errors.

``History`` is what happened per epoch; ``TrainingState`` is where a run stands besides the
weights (all that a checkpoint needs to go on exactly); a ``Callback`` is told of every
mini-batch and epoch; ``EarlyStopping`` says when to stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .optimizers import Optimizer
from .schedules import Schedule

if TYPE_CHECKING:
    from ..engine.network import Network

__all__ = [
    "History",
    "Callback",
    "EarlyStopping",
    "TrainingState",
    "DivergenceError",
    "InterruptedWarning",
    "begin_run",
]

Array = np.ndarray


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
    stop_signal: int | None = None  # the signal that interrupted the last call (not saved)

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
    best_stats: Array | None = None  # its running statistics (batch normalisation)
    last_good: Array | None = None  # the weights at the start of epoch + 1, when position > 0
    params: Array | None = None  # the weights to go on from, when the network holds others
    stats: Array | None = None  # the running statistics to go on from, with params
    resumable: bool = True  # False after a hard interruption left the state inexact
    # The settings of the run, recorded by fit (a checkpoint stores them to resume):
    optimizer: Optimizer | None = None
    schedule: Schedule | None = None
    early_stopping: EarlyStopping | None = None
    batch_size: int = 0
    shuffle: bool = True
    final_epoch: int = 0  # the last epoch this run was asked to reach


def begin_run(
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
    for name in ("best_params", "last_good", "params", "best_stats", "stats"):
        array, like = getattr(run, name), net.stats if name.endswith("stats") else net.params
        if array is not None and array.shape != like.shape:
            raise ValueError(
                f"state.{name} must have shape {like.shape} for this network, got {array.shape}"
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
    if run.stats is not None:
        net.stats[...] = run.stats  # and from the running statistics it had reached
        run.stats = None
    run.resumable = True
    return run
