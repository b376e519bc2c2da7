"""betaprop: multilayer perceptrons trained by backpropagation, in NumPy.

The code follows the textbook algorithm step by step (see docs/algorithm.md):
1 initialise, 2 forward pass, 3 output-layer error, 4 hidden-layer errors,
5 gradients, 6 update.
"""

from .engine import activations, losses, reference
from .engine.gradcheck import GradcheckReport, gradcheck
from .engine.network import Network
from .explain.diagnostics import Diagnostics
from .explain.trace_page import show as trace
from .files.model import ModelFileError, load, save
from .files.onnx import to_onnx
from .training import (
    Callback,
    DivergenceError,
    EarlyStopping,
    History,
    InterruptedWarning,
    TrainingState,
    evaluate,
    fit,
    optimizers,
    schedules,
    train_step,
)
from .training.stream import Stream  # fit(net, Stream(...)): data larger than memory

__version__ = "0.1.0"

__all__ = [
    "Network",
    "fit",
    "Stream",
    "train_step",
    "evaluate",
    "History",
    "Callback",
    "EarlyStopping",
    "DivergenceError",
    "InterruptedWarning",
    "TrainingState",
    "gradcheck",
    "GradcheckReport",
    "Diagnostics",
    "trace",
    "study_depth",
    "save",
    "load",
    "ModelFileError",
    "to_onnx",
    "activations",
    "losses",
    "optimizers",
    "schedules",
    "reference",
    "__version__",
    "MLPClassifier",
    "MLPRegressor",
]


def __getattr__(name: str) -> object:
    """``betaprop.MLPClassifier`` / ``MLPRegressor``, imported on first use (scikit-learn is slow
    to import and the engine does not need it)."""
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name == "study_depth":  # the depth study reads tables: imported on first use
        from .explain.study import study_depth

        return study_depth
    if name == "Preprocessing":  # tables for notebooks: fit(frame) / transform(frame)
        from .files.preprocessing import Preprocessing

        return Preprocessing
    raise AttributeError(f"module 'betaprop' has no attribute {name!r}")
