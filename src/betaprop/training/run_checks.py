"""Checks of a run of ``fit`` between its steps: finite weights, the monitored value, the
per-epoch series after a hard interruption, positive integers (kept apart from ``loop``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .state import DivergenceError, EarlyStopping, History

if TYPE_CHECKING:
    from ..engine.network import Network

__all__ = ["check_finite", "trim", "monitor", "monitored", "check_positive_int"]

Array = np.ndarray


def check_finite(
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


def trim(history: History) -> None:
    """Cut the per-epoch series to their common length (after a hard interruption)."""
    series: list[list[Any]] = [history.epoch, history.loss, history.learning_rate]
    series.append(history.seconds)
    if history.val_loss or history.val_score:
        series += [history.val_loss, history.val_score]
    shortest = min(len(values) for values in series)
    for values in series:
        del values[shortest:]


def monitor(stopper: EarlyStopping | None, validating: bool) -> str:
    monitor = stopper.monitor if stopper is not None and stopper.monitor else None
    if monitor is None:
        return "val_loss" if validating else "loss"
    if monitor.startswith("val_") and not validating:
        raise ValueError(f"early_stopping monitor {monitor!r} needs validation_data, got None")
    return monitor


def monitored(history: History, monitor: str) -> float:
    """The monitored value of the last epoch, as something to minimise."""
    if monitor == "val_score":
        return -history.val_score[-1]
    return float(getattr(history, monitor)[-1])


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
