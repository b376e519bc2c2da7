"""Sharded reading (issue 25): each rank's memory for its rows, and the accuracy it trains to.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.sharding \
        [--rows 600000] [--columns 40] [--epochs 1] [--repeats 1] [--keep FOLDER]

Writes a Parquet file of ``--rows`` x ``--columns`` float32 features and a 3-class text
target (row groups of 50,000 rows), then runs ``betaprop train --dtype float32`` on it with
``mpiexec -n 2`` and with one process, in turn, ``--repeats`` rounds. Each process records
its resident memory after importing what the run imports (betaprop, pandas, pyarrow,
scikit-learn, mpi4py, matplotlib, and a 2-row Parquet read that loads the reading path's
modules: the baseline) and its peak (VmHWM) once reading, training and the final
metrics are done (before rank 0 writes the run folder and draws its report); the data part
of its peak is the difference. Printed: per rank and for the one process, that data part next to
the matrix of the rows it holds (n_r x p float32), their ratio (the goal: <= 2.5 under K = 2),
and the test accuracy of both runs, and each command's wall time. Medians over the rounds;
the load average before and after (this machine is shared: timings are rough, memory and
accuracy are the point).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from statistics import median

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 2**20

# Run under mpiexec (or alone): baseline after the imports, training, peak at the end.
RANK = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import mpi4py.MPI, numpy, pandas, pyarrow.parquet, sklearn.model_selection  # the run's imports
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot  # rank 0's report.png
import betaprop.cli, betaprop.cli.train, betaprop.cli.sharded
from betaprop.training.distributed import run_main, world

def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

import pandas as pd  # warm-up: a 2-row Parquet read through the same path loads its modules
from betaprop.files.parts import plan_parts, read_part
warm = f"{sys.argv[2]}.warm{mpi4py.MPI.COMM_WORLD.Get_rank()}.parquet"
pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]}).to_parquet(warm)
read_part(warm, plan_parts(warm)[0])
baseline = rss("VmRSS:")
trained = {}
write_run = betaprop.cli.train.write_run

def measured_write_run(*args, **kwargs):  # the peak of reading, training and metrics
    trained["peak"] = rss("VmHWM:")
    return write_run(*args, **kwargs)

betaprop.cli.train.write_run = measured_write_run
code = run_main(lambda: betaprop.cli.main(sys.argv[3:]))
comm = world()
rank = comm.Get_rank() if comm is not None else 0
with open(f"{sys.argv[2]}.{rank}", "w") as handle:
    peak = rss("VmHWM:")
    json.dump({"baseline": baseline, "peak": trained.get("peak", peak), "end": peak}, handle)
sys.exit(code)
"""


def make_table(path: str, rows: int, columns: int) -> None:
    """float32 features, a 3-class text target from a linear score (learnable, not trivial)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, columns), dtype=np.float32)
    w = rng.standard_normal(columns).astype(np.float32)
    score = X @ w / np.sqrt(columns) + 0.3 * rng.standard_normal(rows).astype(np.float32)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(columns)])
    frame["label"] = np.where(score > 0.5, "high", np.where(score > -0.5, "mid", "low"))
    frame.to_parquet(path, row_group_size=50_000)


def run(k: int, data: str, out: str, record: str, epochs: int) -> list[dict]:
    """``betaprop train`` with k ranks (1: one process); each process's memory record."""
    args = ["train", "--data", data, "--target", "label", "--dtype", "float32", "--hidden",
            "64", "--batch-size", "256", "--epochs", str(epochs), "--seed", "0", "--quiet",
            "--force", "--out", out]  # fmt: skip
    command = [sys.executable, "-c", RANK, ROOT, record, *args]
    if k > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        command = [mpiexec, "-n", str(k), sys.executable, "-m", "mpi4py", "-c", RANK, ROOT,
                   record, *args]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"k = {k} failed:\n{done.stderr[-3000:]}")
    records = []
    for rank in range(k):
        with open(f"{record}.{rank}") as handle:
            records.append(dict(json.load(handle), wall=wall))
    return records


def accuracy(out: str) -> float:
    from betaprop.files.model import read_model

    return float(
        read_model(os.path.join(out, "model.safetensors")).metadata["metrics"]["test"]["accuracy"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--columns", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", help="a folder for the table and runs (default: a temporary one)")
    options = parser.parse_args()
    folder = options.keep or tempfile.mkdtemp(prefix="betaprop-sharding-")
    os.makedirs(folder, exist_ok=True)
    data = os.path.join(folder, "table.parquet")
    if not os.path.exists(data):
        make_table(data, options.rows, options.columns)
    load_before = os.getloadavg()
    figures: dict[str, list] = {"K=2": [], "K=1": []}
    scores: dict[str, list] = {"K=2": [], "K=1": []}
    for round_ in range(options.repeats):
        for name, k in (("K=2", 2), ("K=1", 1)):
            out = os.path.join(folder, f"run-{name}-{round_}")
            figures[name].append(
                run(k, data, out, os.path.join(folder, f"mem-{name}"), options.epochs)
            )
            scores[name].append(accuracy(out))
    load_after = os.getloadavg()
    p = options.columns
    disk = os.path.getsize(data) / MiB
    print(f"{options.rows:,} x {p} float32 Parquet ({disk:.0f} MiB on disk), "
          f"{options.epochs} epoch(s), {options.repeats} round(s); load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after (a shared machine)")  # fmt: skip
    print(f"{'run':<14}{'rows held':>12}{'matrix MiB':>12}{'data MiB':>10}{'ratio':>8}"
          f"{'peak MiB':>10}")  # fmt: skip
    for name, k in (("K=2", 2), ("K=1", 1)):
        for rank in range(k):
            held = options.rows // k + (rank < options.rows % k)
            matrix = held * p * 4
            data_part = median(r[rank]["peak"] - r[rank]["baseline"] for r in figures[name])
            peak = median(r[rank]["peak"] for r in figures[name])
            label = f"{name} rank {rank}" if k > 1 else "one process"
            print(f"{label:<14}{held:>12,}{matrix / MiB:>12.1f}{data_part / MiB:>10.1f}"
                  f"{data_part / matrix:>8.2f}{peak / MiB:>10.1f}")  # fmt: skip
    print(
        f"test accuracy: K=2 sharded {median(scores['K=2']):.4f}, one process "
        f"{median(scores['K=1']):.4f}; wall time of the whole command (start, read, train, "
        f"write): K=2 {median(r[0]['wall'] for r in figures['K=2']):.1f} s, one process "
        f"{median(r[0]['wall'] for r in figures['K=1']):.1f} s"
    )


if __name__ == "__main__":
    main()
