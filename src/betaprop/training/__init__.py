"""Step 6: optimizers, schedules, the one training step and the loop over epochs."""

from .loop import EXPLOSION_FACTOR, Penalty, evaluate, fit, train_step
from .state import (
    Callback,
    DivergenceError,
    EarlyStopping,
    History,
    InterruptedWarning,
    TrainingState,
)

__all__ = [
    "train_step",
    "fit",
    "evaluate",
    "Penalty",
    "EXPLOSION_FACTOR",
    "Callback",
    "DivergenceError",
    "EarlyStopping",
    "History",
    "InterruptedWarning",
    "TrainingState",
]
