"""Checkpoints: everything a run of ``fit`` needs to go on exactly, in one atomic file.

A checkpoint uses the container of model files (``files.container``) and holds

- the weights training goes on from, named as in a model file (``"0.weight"``, ``"0.bias"``,
  ...), every array of the optimizer's state (``"optimizer.m"``, ``"optimizer.v"``, ...),
  the example order kept across epochs (``"training.order"``), the weights of the best
  epoch (``"training.best_params"``) and, after an interruption in the middle of an epoch,
  those at its start (``"training.last_good"``);
- in a JSON document (``"betaprop-checkpoint"``) the network's ``spec()``, the optimizer
  (registry name, hyperparameters, and every number of its state), the schedule and its
  state, the early-stopping settings, the batch size, the epoch reached and the position
  inside the next one, the random generator's state (``bit_generator.state``), that of the
  network's dropout generator (``net.dropout_rng``, under ``"dropout_rng"``), the history
  and the caller's metadata. A network with batch normalisation keeps gamma, shift and its
  running statistics among the weights, named as in a model file.

Saving is atomic, so a crash or SIGKILL during a save leaves the previous checkpoint whole.
``load_checkpoint`` checks everything and raises ``CheckpointError`` (a
``ModelFileError``) for a damaged, truncated, foreign or edited file. ``resume`` continues
the run: with the same data it ends with bit for bit the weights and history (all but the
wall-clock ``seconds``) of one uninterrupted run with the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.network import Network
from ..training.loop import fit
from ..training.optimizers import Optimizer
from ..training.schedules import SCHEDULES, Schedule
from ..training.state import Callback, History, TrainingState
from . import checkpoint_fields as fields
from .container import Contents, Format, document, read, write
from .model import MODEL, ModelFileError, layer_tensors, read_network

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointFile",
    "save_checkpoint",
    "load_checkpoint",
    "resume",
    "FILENAME",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "betaprop-checkpoint"
FORMAT_VERSION = 1
FILENAME = "checkpoint.safetensors"  # the file a Checkpoint callback writes in its folder

Array = np.ndarray


class CheckpointError(ModelFileError):
    """A file that is not a valid, intact betaprop checkpoint; the message says why."""


CHECKPOINT = Format(
    name=FORMAT,
    key=FORMAT,
    version=FORMAT_VERSION,
    noun="checkpoint",
    error=CheckpointError,
    loader="betaprop.files.checkpoint.load_checkpoint",
)


@dataclass
class CheckpointFile:
    """What ``load_checkpoint`` found.

    ``network`` holds the weights training goes on from (not the best epoch's: those are
    ``state.best_params``); ``state`` the rest of the run, its settings included (the
    optimizer, schedule and early stopping are None when they were not from the
    registries); ``metadata`` the caller's.
    """

    network: Network
    state: TrainingState
    history: History
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def remaining_epochs(self) -> int:
        """Epochs still to run, the interrupted one (if any) included."""
        return self.state.final_epoch - self.state.epoch

    @property
    def finished(self) -> bool:
        """True when the run had reached its last epoch or stopped early."""
        return self.history.stopped_early or self.remaining_epochs <= 0


# ------------------------------------------------------------------------------ saving
def save_checkpoint(
    path: str | os.PathLike[str],
    net: Network,
    state: TrainingState,
    history: History,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write a checkpoint of a run to ``path``, atomically.

    Parameters
    ----------
    path : the file to write (replaced atomically if it exists).
    net : the network being trained; its weights are saved unless ``state.params`` holds
        the weights training goes on from (after ``fit`` restored the best epoch's).
    state : the run's ``TrainingState`` (a callback's ``training_state``).
    history : the run's history.
    metadata : JSON-serialisable mapping stored with the checkpoint (for the command line:
        its arguments and the data's preprocessing).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a betaprop.Network, got {type(net).__name__}")
    if not isinstance(state, TrainingState) or state.rng is None or state.order is None:
        raise ValueError("state must be the TrainingState of a run of fit, got one never run")
    if state.optimizer_state is None:
        raise ValueError("state must hold the optimizer's state, got None")
    if state.params is not None:  # the weights to go on from are not the network's
        held, net = net, Network.from_spec(net.spec())
        net.params[...] = state.params
        net.stats[...] = held.stats if state.stats is None else state.stats
        net.dropout_rng.bit_generator.state = held.dropout_rng.bit_generator.state
    optimizer, optimizer_tensors = fields.optimizer_fields(state.optimizer, state.optimizer_state)
    tensors = layer_tensors(net) | optimizer_tensors
    tensors["training.order"] = np.asarray(state.order, dtype=np.int64)
    if state.best_params is not None:
        tensors["training.best_params"] = state.best_params
    if state.best_stats is not None and state.best_stats.size:
        tensors["training.best_stats"] = state.best_stats
    if state.position and state.last_good is not None:
        tensors["training.last_good"] = state.last_good
    contents = document(
        CHECKPOINT,
        network=net.spec(),
        optimizer=optimizer,
        schedule=fields.describe(state.schedule, SCHEDULES),
        early_stopping=(
            dataclasses.asdict(state.early_stopping) if state.early_stopping is not None else None
        ),
        training={name: getattr(state, name) for name in _TRAINING_FIELDS},
        rng=state.rng.bit_generator.state,
        dropout_rng=net.dropout_rng.bit_generator.state,
        history=dataclasses.asdict(history),
        metadata=dict(metadata) if metadata is not None else {},
    )
    try:
        text = json.dumps(contents, default=fields.plain)  # key order kept: history.extra's
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"history.extra and metadata must be JSON-serialisable, got an error: {error}"
        ) from None
    write(path, CHECKPOINT, text, tensors)


# The TrainingState fields saved as JSON under "training" (the others are tensors or parts).
_TRAINING_FIELDS = (
    "epoch",
    "position",
    "batch",
    "epoch_loss",
    "reference",
    "best_value",
    "bad_epochs",
    "batch_size",
    "shuffle",
    "final_epoch",
)


# ------------------------------------------------------------------------------ loading
def load_checkpoint(path: str | os.PathLike[str]) -> CheckpointFile:
    """Read and verify a checkpoint; raises ``CheckpointError`` for any bad file.

    A folder is read as the checkpoint a ``Checkpoint`` callback writes in it
    (``FILENAME``). Checks, in order: the safetensors structure, the format and its
    version, the SHA-256 over metadata and tensors, then every field against the network
    and the registries.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, FILENAME)
    contents = read(path, CHECKPOINT, others=(MODEL,))
    try:
        net = read_network(contents)
        if "dropout_rng" in contents.document:  # checkpoints before dropout lack it
            net.dropout_rng = fields.read_generator(
                contents.document["dropout_rng"], contents.fail, "dropout_rng"
            )
        state = _training_state(contents, net)
        contents.refuse_unused()
        history = fields.read_history(contents.document.get("history"), state.epoch, contents.fail)
        return CheckpointFile(net, state, history, contents.metadata(), contents.where)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
        # Reached only by a file edited with its digest recomputed: a field the checks
        # let through but the constructors refuse.
        raise contents.fail(f"a checkpoint field is invalid: {error}") from None


def _training_state(contents: Contents, net: Network) -> TrainingState:
    """The run's state from a verified checkpoint, every field checked."""
    fail, document, P = contents.fail, contents.document, net.n_params
    training = fields.json_object(document.get("training"), "training", fail)
    epoch = fields.integer(training, "epoch", 0, fail)
    position = fields.integer(training, "position", 0, fail)
    order = _order(contents, position)
    optimizer, optimizer_state = fields.read_optimizer(contents, P, net.dtype)
    return TrainingState(
        rng=fields.read_generator(document.get("rng"), fail),
        order=order,
        optimizer_state=optimizer_state,
        epoch=epoch,
        position=position,
        batch=fields.integer(training, "batch", 0, fail),
        epoch_loss=fields.number(training, "epoch_loss", fail),
        reference=fields.number(training, "reference", fail, optional=True),
        best_value=fields.number(training, "best_value", fail, infinite=True),
        bad_epochs=fields.integer(training, "bad_epochs", 0, fail),
        best_params=contents.tensor("training.best_params", (P,), net.dtype, required=False),
        best_stats=contents.tensor(
            "training.best_stats", net.stats.shape, net.dtype, required=False
        ),
        last_good=contents.tensor("training.last_good", (P,), net.dtype, required=position > 0),
        optimizer=optimizer,
        schedule=fields.read_schedule(document.get("schedule"), fail),
        early_stopping=fields.read_early_stopping(document.get("early_stopping"), fail),
        batch_size=fields.integer(training, "batch_size", 1, fail),
        shuffle=fields.boolean(training, "shuffle", fail),
        final_epoch=fields.integer(training, "final_epoch", epoch, fail),
    )


def _order(contents: Contents, position: int) -> Array:
    """The example order: a permutation of 0..n-1, with the position inside it."""
    order = contents.tensors.get("training.order")
    if order is None or order.dtype != np.int64 or order.ndim != 1 or len(order) == 0:
        raise contents.fail("tensor 'training.order' must be a 1-D int64 array of example indices")
    contents.used.add("training.order")
    n = len(order)
    if not np.array_equal(np.sort(order), np.arange(n)):
        raise contents.fail(f"tensor 'training.order' must be a permutation of 0..{n - 1}")
    if position >= n:
        raise contents.fail(f"training position must be in [0, {n}), got {position}")
    return order


# ------------------------------------------------------------------------------ resuming
def resume(
    path: str | os.PathLike[str],
    X: Array,
    D: Array,
    *,
    validation_data: tuple[Array, Array] | None = None,
    callbacks: Sequence[Callback] = (),
    optimizer: Optimizer | str | None = None,
    schedule: Schedule | str | None = None,
) -> tuple[Network, History]:
    """Continue the run saved in a checkpoint (a file, or a ``Checkpoint`` callback's folder).

    The optimizer, schedule, early stopping, batch size, shuffling and the number of epochs
    come from the checkpoint; pass ``optimizer``/``schedule`` only when the run used ones
    that are not in the registries. X, D and ``validation_data`` must be the run's data.
    Returns the network and the history; a finished run is returned as is (with the best
    epoch's weights when the run restored them).
    """
    saved = load_checkpoint(path)
    state, net, history = saved.state, saved.network, saved.history
    if optimizer is None and state.optimizer is None:
        raise ValueError(
            "optimizer must be given: the checkpoint's optimizer is not from the registry"
        )
    if schedule is None and state.schedule is None:
        raise ValueError(
            "schedule must be given: the checkpoint's schedule is not from the registry"
        )
    if saved.finished:
        stopper = state.early_stopping
        if stopper is not None and stopper.restore_best and state.best_params is not None:
            if history.best_epoch is not None:
                net.params[...] = state.best_params
                if state.best_stats is not None:
                    net.stats[...] = state.best_stats
        return net, history
    fit(
        net,
        X,
        D,
        optimizer=optimizer if optimizer is not None else state.optimizer,  # type: ignore[arg-type]
        epochs=saved.remaining_epochs,
        batch_size=state.batch_size,
        shuffle=state.shuffle,
        validation_data=validation_data,
        early_stopping=state.early_stopping,
        schedule=schedule if schedule is not None else state.schedule,
        callbacks=callbacks,
        history=history,
        state=state,
    )
    return net, history


# ------------------------------------------------------------------------------ the callback
class Checkpoint(Callback):
    """Save a checkpoint in ``directory`` every ``every`` epochs and when training ends.

    The file is ``directory/FILENAME``, replaced atomically each time, so
    the folder always holds one whole checkpoint, at worst ``every`` epochs old. At the end
    of training (completed, stopped early, or interrupted by Ctrl-C in the middle of an
    epoch) it is written once more, so ``resume`` goes on from exactly there. After a
    divergence the last checkpoint, with finite weights, is left as it was.

    Parameters
    ----------
    directory : folder for the checkpoint (created if needed).
    every : save after every ``every``-th epoch; None: only when training ends.
    metadata : JSON-serialisable mapping stored in every checkpoint.
    final : save when training ends normally too; if False, only after Ctrl-C.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        every: int | None = 1,
        metadata: Mapping[str, Any] | None = None,
        final: bool = True,
    ) -> None:
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ValueError(f"every must be an integer >= 1 or None, got {every!r}")
        self.directory = os.fspath(directory)
        self.every = every
        self.final = final
        self.metadata = dict(metadata) if metadata is not None else {}
        self.path = os.path.join(self.directory, FILENAME)
        self.saved: int = 0  # how many checkpoints this callback wrote

    def on_train_begin(self, net: Network, history: History) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> bool | None:
        if self.every is not None and epoch % self.every == 0:
            self._save(net, history)
        return None

    def on_train_end(self, net: Network, history: History) -> None:
        state = self.training_state
        if state is not None and state.resumable and (self.final or history.interrupted):
            self._save(net, history)

    def _save(self, net: Network, history: History) -> None:
        if self.training_state is None:
            raise RuntimeError("Checkpoint must be used as a callback of betaprop.fit")
        save_checkpoint(self.path, net, self.training_state, history, self.metadata)
        self.saved += 1
