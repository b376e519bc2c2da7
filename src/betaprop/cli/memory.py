"""Memory estimates made before anything large is allocated: a command whose options need
more memory than the machine has is refused with one line giving the estimate.

The estimate counts what betaprop will hold at once, in bytes of the network's dtype:
the parameters with their gradients and the optimizer's moments, the work buffers of one
batch (s, y, beta and a scratch matrix per layer), and the data arrays the command makes.
It is a lower bound of the real use (Python and NumPy add their own), so a refusal is
certain, while a command that passes may still be tight.

Under MPI every rank runs the command and holds its own copy (until sharded reading, the
whole data too): the ranks on one node (a shared-memory split of COMM_WORLD) need that many
times the estimate from the node's one pool of available memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .options import UserError

__all__ = ["available_bytes", "network_bytes", "require_memory", "PARAMETER_COPIES"]

# params, grads, two optimizer moments (Adam), the best epoch's copy, the last good one
PARAMETER_COPIES = 6
WORK_PER_UNIT = 4  # s, y, beta and scratch per unit and example


def available_bytes() -> int | None:
    """The memory available to a new allocation: MemAvailable of /proc/meminfo, else the
    free physical pages (os.sysconf); None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def network_bytes(
    sizes: Sequence[int], itemsize: int, batch: int, data_values: int = 0
) -> tuple[int, int]:
    """The estimate for a network of ``sizes``: (bytes, number of parameters).

    ``batch`` examples go through at once; ``data_values`` numbers of data (inputs and
    targets) are held beside it.
    """
    n_params = sum(sizes[q] * sizes[q - 1] + sizes[q] for q in range(1, len(sizes)))
    work = batch * sum(sizes) * WORK_PER_UNIT
    return itemsize * (PARAMETER_COPIES * n_params + work + data_values), n_params


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def require_memory(what: str, needed: int, detail: str) -> None:
    """Refuse (UserError) when ``needed`` bytes, times the ranks on this node under MPI,
    exceed the memory available now. Under MPI every rank calls it (a collective call)."""
    from ..training.distributed import node_size, world

    comm = world()
    ranks = 1 if comm is None else node_size(comm)
    available = available_bytes()
    if available is None or ranks * needed <= available:
        return
    if ranks == 1:
        raise UserError(
            f"{what} needs about {_size(needed)} of memory ({detail}), more than the "
            f"{_size(available)} available on this machine: choose smaller sizes"
        )
    raise UserError(
        f"{what} needs about {_size(needed)} of memory per rank ({detail}); the {ranks} "
        f"ranks on this node need {_size(ranks * needed)}, more than the "
        f"{_size(available)} available on it: choose smaller sizes or fewer ranks per node"
    )
