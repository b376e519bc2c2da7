"""The parts of a checkpoint's JSON document: each written, and read back with every field checked.

``files.checkpoint`` assembles the document from these parts and rebuilds a
``TrainingState`` from them. Every reader takes ``fail(message)``, which makes the
checkpoint's error naming the file, and refuses any value a constructor would reject later.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..training.optimizers import OPTIMIZERS, Optimizer
from ..training.schedules import SCHEDULES, Schedule
from ..training.state import EarlyStopping, History
from .container import Contents

Fail = Callable[[str], Exception]
Array = np.ndarray

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
HISTORY_SERIES = ("epoch", "loss", "val_loss", "val_score", "learning_rate", "seconds")
OPTIMIZER_PREFIX = "optimizer."  # the optimizer state's arrays are tensors "optimizer.<key>"


# ------------------------------------------------------------------------------ writing
def describe(component: Any, registry: Mapping[str, type]) -> dict[str, Any]:
    """Registry name and every dataclass field (settings and state) of an optimizer/schedule."""
    if component is None:
        return {"name": None, "settings": {}}
    names = [key for key, cls in registry.items() if type(component) is cls]
    settings = {f.name: getattr(component, f.name) for f in dataclasses.fields(component)}
    return {"name": names[0] if names else None, "settings": settings}


def optimizer_fields(
    optimizer: Optimizer | None, state: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Array]]:
    """The optimizer's JSON part and its state's arrays: every array and number it holds."""
    tensors: dict[str, Array] = {}
    scalars: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            tensors[OPTIMIZER_PREFIX + key] = value
        else:
            scalars[key] = value.item() if isinstance(value, np.generic) else value
    return describe(optimizer, OPTIMIZERS) | {"scalars": scalars}, tensors


def plain(value: Any) -> Any:
    """JSON for NumPy values that callbacks record in ``history.extra``."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# ------------------------------------------------------------------------------ plain fields
def json_object(value: Any, name: str, fail: Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def integer(fields: dict[str, Any], name: str, low: int, fail: Fail) -> int:
    value = fields.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def number(
    fields: dict[str, Any], name: str, fail: Fail, optional: bool = False, infinite: bool = False
) -> Any:
    value: Any = fields.get(name)
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or math.isnan(value) or (math.isinf(value) and not infinite):
        raise fail(f"{name} must be a finite number, got {value!r}")
    return float(value)


def boolean(fields: dict[str, Any], name: str, fail: Fail) -> bool:
    value = fields.get(name)
    if not isinstance(value, bool):
        raise fail(f"{name} must be true or false, got {value!r}")
    return value


# ------------------------------------------------------------------------------ the parts
def read_generator(spec: Any, fail: Fail, name: str = "rng") -> np.random.Generator:
    """The random generator in the state it was saved in (``bit_generator.state``)."""
    if not isinstance(spec, dict) or spec.get("bit_generator") not in BIT_GENERATORS:
        raise fail(f"{name} must be the state of one of {list(BIT_GENERATORS)}")
    bit_generator = getattr(np.random, spec["bit_generator"])()
    try:
        bit_generator.state = spec
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise fail(f"{name} state is invalid: {error}") from None
    return np.random.Generator(bit_generator)


def read_optimizer(
    contents: Contents, n_params: int, dtype: str
) -> tuple[Optimizer | None, dict[str, Any]]:
    """The optimizer (None if not from the registry) and its state.

    For a registry optimizer the state must have the keys, kinds and shapes of
    ``optimizer.init`` on the parameters; for another, every saved number and every
    ``(P,)`` array is taken as it is.
    """
    fail = contents.fail
    spec = json_object(contents.document.get("optimizer"), "optimizer", fail)
    name, settings = spec.get("name"), json_object(spec.get("settings"), "optimizer settings", fail)
    scalars = json_object(spec.get("scalars"), "optimizer scalars", fail)
    optimizer = None
    if name is not None:
        if name not in OPTIMIZERS:
            raise fail(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
        try:
            optimizer = OPTIMIZERS[name](**settings)
        except (TypeError, ValueError) as error:
            raise fail(f"optimizer settings are invalid: {error}") from None
    arrays = [
        key.removeprefix(OPTIMIZER_PREFIX)
        for key in contents.tensors
        if key.startswith(OPTIMIZER_PREFIX)
    ]
    template: dict[str, Any]
    if optimizer is None:
        template = {key: np.empty(n_params, dtype) for key in arrays} | dict(scalars)
    else:
        template = optimizer.init(np.zeros(n_params, dtype))
        if set(template) != set(arrays) | set(scalars):
            raise fail(
                f"optimizer state must hold {sorted(template)} for {name}, "
                f"got {sorted(set(arrays) | set(scalars))}"
            )
    state: dict[str, Any] = {}
    for key, like in template.items():
        if isinstance(like, np.ndarray):
            state[key] = contents.tensor(OPTIMIZER_PREFIX + key, like.shape, like.dtype.name)
        else:
            state[key] = _scalar(key, scalars.get(key), like, fail)
    return optimizer, state


def _scalar(key: str, value: Any, like: Any, fail: Fail) -> int | float:
    """A number of the optimizer state: finite, >= 0, an integer where ``like`` is one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"optimizer scalar {key!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise fail(f"optimizer scalar {key!r} must be finite and >= 0, got {value!r}")
    if isinstance(like, int) and not isinstance(value, int):
        raise fail(f"optimizer scalar {key!r} must be an integer, got {value!r}")
    return value if isinstance(like, int) else float(value)


def read_schedule(spec: Any, fail: Fail) -> Schedule | None:
    """The schedule with its state (ReduceOnPlateau's best value, count, ...)."""
    spec = json_object(spec, "schedule", fail)
    name, settings = spec.get("name"), json_object(spec.get("settings"), "schedule settings", fail)
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


def read_early_stopping(spec: Any, fail: Fail) -> EarlyStopping | None:
    if spec is None:
        return None
    spec = json_object(spec, "early_stopping", fail)
    try:
        stopper = EarlyStopping(**spec)
    except (TypeError, ValueError) as error:
        raise fail(f"early_stopping settings are invalid: {error}") from None
    if not isinstance(stopper.min_delta, (int, float)) or not isinstance(
        stopper.restore_best, bool
    ):
        raise fail("early_stopping min_delta must be a number and restore_best true or false")
    return stopper


def read_history(spec: Any, epoch: int, fail: Fail) -> History:
    """The history up to the checkpoint's ``epoch``: one value per epoch in every series."""
    spec = json_object(spec, "history", fail)
    series: dict[str, list[Any]] = {}
    for name in HISTORY_SERIES:
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
    extra = json_object(spec.get("extra", {}), "history extra", fail)
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
