"""scikit-learn's ``ConvergenceWarning`` attributed as scikit-learn's MLP attributes it; the
warning that an estimator is fitted in each of several MPI processes."""

from __future__ import annotations

import os
import sys
import warnings

from sklearn.exceptions import ConvergenceWarning

__all__ = ["SKLEARN_MODULE", "convergence_warning", "mpi_world_size", "warn_if_under_mpi"]

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


# The process count that launchers put in each process's environment: MPICH / Intel MPI
# (Hydra's PMI), Open MPI, MVAPICH.
_WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_warned_mpi = False


def mpi_world_size() -> int:
    """How many processes ``mpiexec`` started with this one (1 outside MPI).

    From mpi4py's COMM_WORLD where mpi4py.MPI is already imported, else from the launcher's
    environment; never imports mpi4py (that would start MPI in every process that fits).
    """
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        try:
            return int(mpi.COMM_WORLD.Get_size())
        except Exception:  # noqa: BLE001 - MPI finalized or not initialized: ask the launcher
            pass
    for name in _WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def warn_if_under_mpi(estimator: str) -> None:
    """Warn once per process when an estimator's fit runs in one of several MPI processes:
    each process would train its own full copy, silently."""
    global _warned_mpi
    size = mpi_world_size()
    if size <= 1 or _warned_mpi:
        return
    _warned_mpi = True
    warnings.warn(
        f"{estimator}.fit runs in each of the {size} MPI processes: each trains its own full "
        "copy of the model on the data it was given. To train one model data-parallel over "
        "the processes, use betaprop.fit(net, X, D, comm=MPI.COMM_WORLD) "
        "(docs/distributed.md).",
        RuntimeWarning,
        stacklevel=5,  # the user's call of fit (through scikit-learn's _fit_context)
    )
