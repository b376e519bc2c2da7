"""scikit-learn's ``ConvergenceWarning`` attributed as scikit-learn's MLP attributes it."""

from __future__ import annotations

import sys
import warnings

from sklearn.exceptions import ConvergenceWarning

__all__ = ["SKLEARN_MODULE", "convergence_warning"]

# scikit-learn issues its MLP's convergence warnings from this module (the lbfgs one with
# stacklevel=2 from sklearn.utils.optimize, the stochastic one with none), so
# ``warnings.filterwarnings(..., module="sklearn")`` (as its gallery does) hides them.
SKLEARN_MODULE = "sklearn.neural_network._multilayer_perceptron"
_registry: dict = {}  # "default" filters show each text once, as for a module's warnings


def convergence_warning(message: str, category: type[Warning] = ConvergenceWarning) -> None:
    """Warn with the module scikit-learn's warning has, shown at the user's call site."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("betaprop.", "sklearn.")
    ):
        frame = frame.f_back
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=SKLEARN_MODULE,
        registry=_registry,
    )
