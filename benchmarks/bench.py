"""Benchmark betaprop against scikit-learn, PyTorch and the GEMM bound (one command).

    python -m benchmarks.bench            # the full run: wide, small, deep, estimators, memory
    python -m benchmarks.bench --quick    # fewer examples and repeats, for a first look
    python -m benchmarks.bench --help     # pick workloads, contenders, repeats, threads

The same as ``betaprop bench`` or ``python benchmarks/bench.py`` from a source checkout; the
code lives in the modules of this package (see ``benchmarks/__init__.py``). For trustworthy
numbers run it on an otherwise idle machine, and without OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE set in that command, e.g.
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.bench``.
"""

from __future__ import annotations

import sys

if __package__ in (None, ""):  # run as a script, `python benchmarks/bench.py`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.command import main, parse, run
from benchmarks.contenders import GemmBound, gemm_bound
from benchmarks.workers import PHASES
from benchmarks.workloads import CONTENDERS, TARGETS, WORKLOADS, Workload, load

__all__ = [
    "CONTENDERS",
    "PHASES",
    "TARGETS",
    "WORKLOADS",
    "GemmBound",
    "Workload",
    "gemm_bound",
    "load",
    "main",
    "parse",
    "run",
]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
