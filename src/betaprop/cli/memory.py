"""Memory estimates made before anything large is allocated: a command whose options need
more memory than the machine has is refused with one line giving the estimate.

The estimate counts what betaprop will hold at once, in bytes of the network's dtype:
the parameters with their gradients and the optimizer's moments, the work buffers of one
batch (s, y, beta and a scratch matrix per layer), and the data arrays the command makes.
It is a lower bound of the real use (Python and NumPy add their own), so a refusal is
certain, while a command that passes may still be tight.

Under MPI every rank runs the command and holds its own copy of the network and, reading a
data file sharded, its own rows (the estimate counts the largest rank's training rows; a
bundled dataset or a table read whole: all of them): the ranks on one node (a shared-memory
split of COMM_WORLD) need that many times the estimate from the node's one pool of
available memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .options import UserError

__all__ = [
    "available_bytes",
    "cgroup_bytes",
    "network_bytes",
    "require_memory",
    "PARAMETER_COPIES",
]

# params, grads, two optimizer moments (Adam), the best epoch's copy, the last good one
PARAMETER_COPIES = 6
WORK_PER_UNIT = 4  # s, y, beta and scratch per unit and example


def available_bytes() -> int | None:
    """The memory available to a new allocation: MemAvailable of /proc/meminfo (else the
    free physical pages, os.sysconf), or less where a control group limits this process
    (a batch system's job: Slurm, containers; ``cgroup_bytes``); None where nothing can be
    read."""
    machine = _machine_bytes()
    limited = cgroup_bytes()
    if machine is None or limited is None:
        return limited if machine is None else machine
    return min(machine, limited)


def _machine_bytes() -> int | None:
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


# (limit, usage) files of the memory controller: cgroup v2, then v1
_CGROUP_FILES = (
    ("memory.max", "memory.current"),
    ("memory.limit_in_bytes", "memory.usage_in_bytes"),
)


def cgroup_bytes(root: str = "/sys/fs/cgroup", table: str = "/proc/self/cgroup") -> int | None:
    """The memory left under this process's control-group limits: for its group and every
    group above it (a job's limit may sit above the step's), limit - (usage - the inactive
    file cache, which the kernel reclaims first), the smallest; None without a limit.

    ``table``: the process's groups (``/proc/self/cgroup``: ``0::/path`` for v2,
    ``N:memory:/path`` for v1's memory controller, mounted at ``root``/memory).
    """
    try:
        with open(table, encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    groups = []  # (where the controller is mounted, the group's path below it)
    for line in lines:
        number, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if number == "0" and not controllers:  # v2
            groups.append((root, path))
        elif "memory" in controllers.split(","):  # v1
            groups.append((os.path.join(root, "memory"), path))
    rooms = []
    for mount, path in groups:
        parts = [part for part in path.split("/") if part]
        for depth in range(len(parts), -1, -1):  # the group, then each group above it
            room = _room(os.path.join(mount, *parts[:depth]))
            if room is not None:
                rooms.append(room)
    return min(rooms, default=None)


def _room(folder: str) -> int | None:
    """limit - (usage - inactive file cache) of one group; None without a limit there."""
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            with open(os.path.join(folder, limit_file), encoding="ascii") as handle:
                text = handle.read().strip()
            with open(os.path.join(folder, usage_file), encoding="ascii") as handle:
                usage = int(handle.read().strip())
        except (OSError, ValueError):
            continue
        if text == "max" or not text.isdigit() or int(text) >= 2**62:  # no limit
            return None
        cache = 0
        try:
            with open(os.path.join(folder, "memory.stat"), encoding="ascii") as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key in ("inactive_file", "total_inactive_file"):
                        cache = int(value)
                        break
        except (OSError, ValueError):
            pass
        return max(0, int(text) - max(0, usage - cache))
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
