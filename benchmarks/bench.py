"""Benchmark betaprop against scikit-learn, PyTorch and the GEMM bound (one command).

    python benchmarks/bench.py            # the full run: wide, small, deep, estimators, memory
    python benchmarks/bench.py --quick    # fewer examples and repeats, for a first look
    python benchmarks/bench.py --help     # pick workloads, contenders, repeats, threads

The same as ``betaprop bench``; everything lives in ``betaprop.bench`` (importable from
here too). For trustworthy numbers run it on an otherwise idle machine, and without
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE set in that command, e.g.
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py``.
"""

from __future__ import annotations

import sys

from betaprop.bench import CONTENDERS, TARGETS, WORKLOADS, gemm_bound, load, main, run

__all__ = ["CONTENDERS", "TARGETS", "WORKLOADS", "gemm_bound", "load", "main", "run"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
