"""Processes started by an MPI launcher: whether there are several, their world, their CPUs.

``world()`` is MPI.COMM_WORLD when this process is one of K > 1 that mpiexec (or srun)
started and connected, else None; a launcher that started K processes which MPI does not
connect is refused (``LaunchError``) rather than K runs writing the same files. mpi4py is
optional: ``pip install "betaprop[mpi]"``. ``training.distributed`` trains over them (and
re-exports these names).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = [
    "INSTALL",
    "LaunchError",
    "mpi",
    "launched",
    "check_connected",
    "world",
    "rank_label",
    "blas_threads",
    "cpus",
    "node_size",
    "is_lead",
]

INSTALL = 'pip install "betaprop[mpi]"  (or: pip install mpich mpi4py)'
# environment variables a launcher sets: the number of processes it started (Slurm's srun:
# the tasks of this job step; SLURM_NTASKS is also set in a batch script run once, alone)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")
CONNECT = (
    "under Slurm run srun --mpi=pmix (or --mpi=pmi2; srun --mpi=list shows what the site "
    "offers), elsewhere the mpiexec of the MPI that mpi4py uses"
)


class LaunchError(RuntimeError):
    """Started by a launcher as one of K > 1 processes, but MPI sees this process alone."""


def mpi() -> Any:
    """The ``mpi4py.MPI`` module, or ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"data parallel training (comm=) needs mpi4py: {INSTALL}") from error
    return MPI


def launched() -> tuple[int, str]:
    """How many processes a launcher says it started (1: none), and the variable saying so."""
    started, variable = 1, ""
    for name in _SIZE_VARIABLES:
        try:
            value = int(os.environ.get(name) or 1)
        except ValueError:
            continue
        if value > started:
            started, variable = value, name
    return started, variable


def check_connected(comm: Any) -> None:
    """LaunchError when a launcher started K > 1 processes but ``comm`` (COMM_WORLD) has one:
    each would train alone and write the same files (srun without --mpi, a foreign mpiexec)."""
    started, variable = launched()
    if started > 1 and comm.Get_size() == 1:
        alone = ""
        if variable == "SLURM_STEP_NUM_TASKS":  # srun also runs sweeps of separate runs
            alone = f" (separate runs in each task, no MPI: env -u {variable} python ...)"
        raise LaunchError(
            f"started as one of {started} processes ({variable}={started}), but MPI sees this "
            f"process alone (MPI.COMM_WORLD has 1): the launcher did not connect them; "
            f"{CONNECT}{alone}"
        )


def world() -> Any | None:
    """MPI.COMM_WORLD when this process is one of several started by mpiexec, else None.

    Under a launcher (its size variable > 1) without mpi4py: ImportError, rather than K
    processes each training alone and writing the same files; with mpi4py but unconnected
    (COMM_WORLD of size 1): LaunchError naming the fix.
    """
    if "mpi4py.MPI" not in sys.modules and launched()[0] <= 1:
        return None
    comm = mpi().COMM_WORLD
    check_connected(comm)
    return comm if comm.Get_size() > 1 else None


def rank_label() -> str:
    """``"rank r: "`` in a process of K > 1 connected by MPI, else ``""`` (for error lines)."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized():
        return ""
    comm = MPI.COMM_WORLD
    return f"rank {comm.Get_rank()}: " if comm.Get_size() > 1 else ""


def blas_threads(mine: set[int], on_node: list[set[int]]) -> int:
    """BLAS threads for a rank allowed on CPUs ``mine``, beside the ranks of its node
    (``on_node``: every rank's CPU set, its own included).

    A launcher that pinned each rank to its own CPUs (srun's task binding, mpiexec
    -bind-to) leaves sets that do not overlap: the rank uses all of its own. Ranks that
    share CPUs (no binding: each may use the whole node) divide them: len(mine) // the
    number of ranks whose sets meet it.
    """
    sharing = sum(1 for other in on_node if other & mine)
    return max(1, len(mine) // max(sharing, 1))


def cpus() -> set[int]:
    """The CPUs this process may run on (its affinity), or range(cpu_count) where unknown."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def node_size(comm: Any) -> int:
    """How many ranks of ``comm`` share this one's node (memory): a shared-memory split.
    Collective: every rank of ``comm`` calls it."""
    node = comm.Split_type(mpi().COMM_TYPE_SHARED)
    try:
        return int(node.Get_size())
    finally:
        node.Free()


def is_lead(comm: Any | None) -> bool:
    """Whether this process prints and writes files: rank 0, or the only process."""
    return comm is None or comm.Get_rank() == 0
