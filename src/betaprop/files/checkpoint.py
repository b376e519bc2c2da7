"""Checkpoints: everything a run of ``fit`` needs to go on exactly, in one atomic file.

A checkpoint is a safetensors file, like a model file (``betaprop.serialization``), holding

- the weights training goes on from, named as in a model file (``"0.weight"``, ``"0.bias"``,
  ...), the optimizer's state arrays (``"optimizer.m"``, ``"optimizer.v"``, ...; keys
  starting with ``_`` are scratch and never saved), the example order kept across epochs
  (``"training.order"``), the weights of the best epoch (``"training.best_params"``) and,
  after an interruption in the middle of an epoch, those at its start
  (``"training.last_good"``);
- in the header's ``__metadata__``, a JSON document (``"betaprop-checkpoint"``) with the
  network's description, the optimizer (registry name, hyperparameters, learning rate and
  step count), the schedule and its state, the early-stopping settings, the batch size,
  the epoch reached and the position inside the next one, the random generator's state
  (``bit_generator.state``), the history and the caller's metadata; and a SHA-256
  (``"sha256"``) over that text and every tensor.

Saving goes through ``serialization.atomic_write`` (temporary file, fsync, rename), so a
crash or SIGKILL during a save leaves the previous checkpoint whole. ``load_checkpoint``
checks everything and raises ``CheckpointError`` (a ``ModelFileError``) for a damaged,
truncated, foreign or edited file. ``resume`` continues the run: with the same data it ends
with bit for bit the weights and history (all but the wall-clock ``seconds``) of one
uninterrupted run with the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.network import Network
from ..training.optimizers import OPTIMIZERS, SCHEDULES, Optimizer, Schedule
from .model import (
    ModelFileError,
    _digest,
    _network,
    atomic_write,
    describe_network,
    read_file,
    read_verified,
    tensor_names,
)
from ..training.loop import Callback, EarlyStopping, History, TrainingState, fit

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
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_HISTORY_SERIES = ("epoch", "loss", "val_loss", "val_score", "learning_rate", "seconds")

Array = np.ndarray


class CheckpointError(ModelFileError):
    """A file that is not a valid, intact betaprop checkpoint; the message says why."""


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
    from safetensors.numpy import save as serialize

    from .. import __version__

    if not isinstance(net, Network):
        raise TypeError(f"net must be a betaprop.Network, got {type(net).__name__}")
    if not isinstance(state, TrainingState) or state.rng is None or state.order is None:
        raise ValueError("state must be the TrainingState of a run of fit, got one never run")
    if state.optimizer_state is None:
        raise ValueError("state must hold the optimizer's state, got None")
    params = net.params if state.params is None else state.params
    tensors: dict[str, Array] = {}
    W, b = net._layer_views(params)
    for q in range(1, net.Q + 1):
        weight, bias = tensor_names(q)
        tensors[weight] = np.ascontiguousarray(W[q])
        tensors[bias] = np.ascontiguousarray(b[q][:, 0])
    scalars: dict[str, Any] = {}
    for key, value in state.optimizer_state.items():
        if key.startswith("_"):  # scratch space, not state
            continue
        if isinstance(value, np.ndarray):
            tensors[f"optimizer.{key}"] = np.ascontiguousarray(value)
        else:
            scalars[key] = value.item() if isinstance(value, np.generic) else value
    tensors["training.order"] = np.ascontiguousarray(state.order, dtype=np.int64)
    if state.best_params is not None:
        tensors["training.best_params"] = np.ascontiguousarray(state.best_params)
    if state.position and state.last_good is not None:
        tensors["training.last_good"] = np.ascontiguousarray(state.last_good)
    for name, tensor in tensors.items():
        if tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
            raise ValueError(f"checkpoint tensor {name!r} must be finite to be saved")

    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "betaprop_version": __version__,
        "network": describe_network(net),
        "optimizer": _describe(state.optimizer, OPTIMIZERS) | {"scalars": scalars},
        "schedule": _describe(state.schedule, SCHEDULES),
        "early_stopping": (
            dataclasses.asdict(state.early_stopping) if state.early_stopping is not None else None
        ),
        "training": {
            "epoch": state.epoch,
            "position": state.position,
            "batch": state.batch,
            "epoch_loss": state.epoch_loss,
            "reference": state.reference,
            "best_value": state.best_value,
            "bad_epochs": state.bad_epochs,
            "batch_size": state.batch_size,
            "shuffle": state.shuffle,
            "final_epoch": state.final_epoch,
        },
        "rng": state.rng.bit_generator.state,
        "history": dataclasses.asdict(history),
        "metadata": dict(metadata) if metadata is not None else {},
    }
    try:
        text = json.dumps(document, default=_plain)  # key order kept: history.extra's columns
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"history.extra and metadata must be JSON-serialisable, got an error: {error}"
        ) from None
    data = serialize(tensors, metadata={FORMAT: text, "sha256": _digest(text, tensors)})
    atomic_write(path, data)


def _describe(component: Any, registry: Mapping[str, type]) -> dict[str, Any]:
    """Registry name and every dataclass field (settings and state) of an optimizer/schedule."""
    if component is None:
        return {"name": None, "settings": {}}
    names = [key for key, cls in registry.items() if type(component) is cls]
    settings = {f.name: getattr(component, f.name) for f in dataclasses.fields(component)}
    return {"name": names[0] if names else None, "settings": settings}


def _plain(value: Any) -> Any:
    """JSON for NumPy values that callbacks record in ``history.extra``."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


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
    where = path
    data = read_file(path, "checkpoint", CheckpointError)
    document, tensors, _ = read_verified(
        data,
        where,
        key=FORMAT,
        fmt=FORMAT,
        version=FORMAT_VERSION,
        noun="checkpoint",
        error=CheckpointError,
    )
    try:
        return _read(document, tensors, where)
    except CheckpointError:
        raise
    except ModelFileError as error:
        raise CheckpointError(str(error)) from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
        # Reached only by a file edited with its digest recomputed: a field the checks
        # below let through but the constructors refuse.
        raise CheckpointError(f"{where}: a checkpoint field is invalid: {error}") from None


def _read(document: dict[str, Any], tensors: dict[str, Array], where: str) -> CheckpointFile:
    """Rebuild network, state and history from a verified document, checking every field."""

    def fail(message: str) -> CheckpointError:
        return CheckpointError(f"{where}: {message}")

    model = {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "training."))}
    net = _network(document.get("network"), model, where)
    P = net.n_params

    def flat(name: str, required: bool) -> Array | None:
        tensor = tensors.get(name)
        if tensor is None:
            if required:
                raise fail(f"tensor {name!r} is missing")
            return None
        if tensor.shape != (P,) or tensor.dtype != np.dtype(net.dtype):
            raise fail(
                f"tensor {name!r} must be {net.dtype} of shape ({P},), got {tensor.dtype} "
                f"of shape {tensor.shape}"
            )
        if not np.isfinite(tensor).all():
            raise fail(f"tensor {name!r} holds non-finite values")
        return tensor

    training = _object(document.get("training"), "training", fail)
    epoch = _integer(training, "epoch", 0, fail)
    position = _integer(training, "position", 0, fail)
    batch_size = _integer(training, "batch_size", 1, fail)
    order = tensors.get("training.order")
    if order is None or order.dtype != np.int64 or order.ndim != 1 or len(order) == 0:
        raise fail("tensor 'training.order' must be a 1-D int64 array of example indices")
    n = len(order)
    if not np.array_equal(np.sort(order), np.arange(n)):
        raise fail(f"tensor 'training.order' must be a permutation of 0..{n - 1}")
    if position >= n:
        raise fail(f"training position must be in [0, {n}), got {position}")

    optimizer, optimizer_state = _optimizer(document.get("optimizer"), tensors, net, fail)
    state = TrainingState(
        rng=_generator(document.get("rng"), fail),
        order=order,
        optimizer_state=optimizer_state,
        epoch=epoch,
        position=position,
        batch=_integer(training, "batch", 0, fail),
        epoch_loss=_number(training, "epoch_loss", fail),
        reference=_number(training, "reference", fail, optional=True),
        best_value=_number(training, "best_value", fail, infinite=True),
        bad_epochs=_integer(training, "bad_epochs", 0, fail),
        best_params=flat("training.best_params", required=False),
        last_good=flat("training.last_good", required=position > 0),
        optimizer=optimizer,
        schedule=_schedule(document.get("schedule"), fail),
        early_stopping=_early_stopping(document.get("early_stopping"), fail),
        batch_size=batch_size,
        shuffle=_boolean(training, "shuffle", fail),
        final_epoch=_integer(training, "final_epoch", epoch, fail),
    )
    known = {"training.order", "training.best_params", "training.last_good"}
    known |= {f"optimizer.{k}" for k in optimizer_state}
    extra = sorted(
        k for k in tensors if k.startswith(("optimizer.", "training.")) and k not in known
    )
    if extra:
        raise fail(f"unexpected tensors {extra}")
    history = _history(document.get("history"), epoch, fail)
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise fail("the metadata field must be a JSON object")
    return CheckpointFile(net, state, history, metadata, where)


def _object(value: Any, name: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def _integer(fields: dict[str, Any], name: str, low: int, fail: Any) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _number(
    fields: dict[str, Any], name: str, fail: Any, optional: bool = False, infinite: bool = False
) -> Any:
    value: Any = fields.get(name)
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or (math.isinf(value) and not infinite):
        raise fail(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _boolean(fields: dict[str, Any], name: str, fail: Any) -> bool:
    value = fields.get(name)
    if not isinstance(value, bool):
        raise fail(f"{name} must be true or false, got {value!r}")
    return value


def _generator(spec: Any, fail: Any) -> np.random.Generator:
    """The random generator in the state it was saved in."""
    if not isinstance(spec, dict) or spec.get("bit_generator") not in _BIT_GENERATORS:
        raise fail(f"rng must be the state of one of {list(_BIT_GENERATORS)}")
    bit_generator = getattr(np.random, spec["bit_generator"])()
    try:
        bit_generator.state = spec
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise fail(f"rng state is invalid: {error}") from None
    return np.random.Generator(bit_generator)


def _optimizer(
    spec: Any, tensors: Mapping[str, Array], net: Network, fail: Any
) -> tuple[Optimizer | None, dict[str, Any]]:
    """The optimizer (None if not from the registry) and its state, scratch keys left out."""
    spec = _object(spec, "optimizer", fail)
    name, settings = spec.get("name"), _object(spec.get("settings"), "optimizer settings", fail)
    scalars = _object(spec.get("scalars"), "optimizer scalars", fail)
    optimizer = None
    if name is not None:
        if name not in OPTIMIZERS:
            raise fail(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
        try:
            optimizer = OPTIMIZERS[name](**settings)
        except (TypeError, ValueError) as error:
            raise fail(f"optimizer settings are invalid: {error}") from None
    state: dict[str, Any] = {}
    for key, value in scalars.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"optimizer scalar {key!r} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise fail(f"optimizer scalar {key!r} must be finite and >= 0, got {value!r}")
        state[key] = value
    for key, tensor in tensors.items():
        if key.startswith("optimizer."):
            if tensor.shape != (net.n_params,) or tensor.dtype != np.dtype(net.dtype):
                raise fail(
                    f"tensor {key!r} must be {net.dtype} of shape ({net.n_params},), got "
                    f"{tensor.dtype} of shape {tensor.shape}"
                )
            if not np.isfinite(tensor).all():
                raise fail(f"tensor {key!r} holds non-finite values")
            state[key.removeprefix("optimizer.")] = tensor
    if optimizer is not None:
        expected = {k for k in optimizer.init(np.zeros(1, net.dtype)) if not k.startswith("_")}
        if set(state) != expected:
            raise fail(
                f"optimizer state must hold {sorted(expected)} for {name}, got {sorted(state)}"
            )
    if not isinstance(state.get("t"), int) or not isinstance(state.get("lr"), (int, float)):
        raise fail("optimizer state must hold an integer step count 't' and a number 'lr'")
    return optimizer, state


def _schedule(spec: Any, fail: Any) -> Schedule | None:
    """The schedule with its state (ReduceOnPlateau's best value, count, ...)."""
    spec = _object(spec, "schedule", fail)
    name, settings = spec.get("name"), _object(spec.get("settings"), "schedule settings", fail)
    if name is None:
        return None
    if name not in SCHEDULES:
        raise fail(f"schedule must be one of {sorted(SCHEDULES)}, got {name!r}")
    cls = SCHEDULES[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise fail(f"schedule {name} has no settings {unknown}")
    try:
        schedule = cls(**{k: v for k, v in settings.items() if fields[k].init})
    except (TypeError, ValueError) as error:
        raise fail(f"schedule settings are invalid: {error}") from None
    for key, value in settings.items():
        if not fields[key].init:
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise fail(f"schedule state {key!r} must be a number, got {value!r}")
            setattr(schedule, key, value)
    return schedule


def _early_stopping(spec: Any, fail: Any) -> EarlyStopping | None:
    if spec is None:
        return None
    spec = _object(spec, "early_stopping", fail)
    try:
        stopper = EarlyStopping(**spec)
    except (TypeError, ValueError) as error:
        raise fail(f"early_stopping settings are invalid: {error}") from None
    if not isinstance(stopper.min_delta, (int, float)) or not isinstance(
        stopper.restore_best, bool
    ):
        raise fail("early_stopping min_delta must be a number and restore_best true or false")
    return stopper


def _history(spec: Any, epoch: int, fail: Any) -> History:
    spec = _object(spec, "history", fail)
    series: dict[str, list[Any]] = {}
    for name in _HISTORY_SERIES:
        values = spec.get(name)
        kinds = (int,) if name == "epoch" else (int, float)
        if not isinstance(values, list) or not all(
            isinstance(v, kinds) and not isinstance(v, bool) for v in values
        ):
            raise fail(f"history {name} must be a list of numbers")
        series[name] = values
    epochs = series["epoch"]
    for name in ("loss", "learning_rate", "seconds"):
        if len(series[name]) != len(epochs):
            raise fail(f"history {name} must have one value per epoch ({len(epochs)})")
    for name in ("val_loss", "val_score"):
        if series[name] and len(series[name]) != len(epochs):
            raise fail(f"history {name} must be empty or have one value per epoch")
    if (epochs[-1] if epochs else 0) != epoch:
        raise fail(f"history must end at the checkpoint's epoch {epoch}")
    extra = _object(spec.get("extra", {}), "history extra", fail)
    if not all(isinstance(v, list) for v in extra.values()):
        raise fail("history extra must map names to lists")
    best_epoch = spec.get("best_epoch")
    if best_epoch is not None and best_epoch not in epochs:
        raise fail(f"history best_epoch must be one of its epochs, got {best_epoch!r}")
    flags = {name: spec.get(name, False) for name in ("stopped_early", "interrupted")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise fail("history stopped_early and interrupted must be true or false")
    return History(
        epoch=series["epoch"],
        loss=series["loss"],
        val_loss=series["val_loss"],
        val_score=series["val_score"],
        learning_rate=series["learning_rate"],
        seconds=series["seconds"],
        extra=extra,
        best_epoch=best_epoch,
        stopped_early=flags["stopped_early"],
        interrupted=flags["interrupted"],
    )


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

    The file is ``directory/checkpoint.safetensors``, replaced atomically each time, so
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
