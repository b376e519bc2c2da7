"""Run by tests/test_conformance.py under mpiexec: train every case with K processes.

python -m mpi4py tests/conformance_worker.py OUT.npz

Each case of ``CASES`` (tests/conformance_cases.py) trains for a few epochs with
``fit(..., comm=world())``; rank 0 saves every case's parameters and running statistics.
"""

from __future__ import annotations

import sys

import numpy as np
from conformance_cases import CASES, train

from betaprop.training.distributed import world

if __name__ == "__main__":
    comm = world()
    arrays = {}
    for name in CASES:
        net = train(name, comm)
        arrays[f"{name}/params"], arrays[f"{name}/stats"] = net.params, net.stats
    if comm is None or comm.Get_rank() == 0:
        np.savez(sys.argv[1], **arrays)
