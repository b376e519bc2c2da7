"""Reading in parts and statistics agreed by reduction, against the whole-file path.

A 200 000-row CSV (30 numeric columns, a text column of 20 levels with gaps, a numeric
column with gaps, a quoted text column holding separators, a text target), about 60 MB.
Contenders, alternating in one process (``--repeats`` rounds), medians and ratios:

- reading: ``pandas.read_csv``; ``read_table`` (the whole file); ``plan_parts`` alone (the
  scan that finds record starts and counts rows); the plan and every part read (8 MiB parts);
- the plan by K = 1 and 2 ranks (``plan_parts(..., agreement=)`` under ``mpiexec``, each
  rank scanning 1/K of the bytes; the slowest rank's time);
- preprocessing: ``Preprocessing.fit`` on the whole table against ``fit_parts`` on the
  parts (median imputation: a few passes of selection; mean imputation: one pass).

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.parts``. The load
average is printed beside the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

ROWS = 200_000


def write_table(path: str, rows: int) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(rows, 30)).round(6), columns=[f"x{j}" for j in range(30)])
    gaps = rng.random(rows) < 0.1
    table["g"] = np.where(gaps, np.nan, rng.normal(size=rows).round(4))
    city = rng.choice([f"city_{k}" for k in range(20)], rows).astype(object)
    city[rng.random(rows) < 0.05] = None
    table["city"] = city
    table["note"] = rng.choice(["plain", "a, b", 'say "x"'], rows)
    table["y"] = rng.choice(["yes", "no", "maybe"], rows)
    table.to_csv(path, index=False)


RANKS = """
import sys, time
from mpi4py import MPI
from betaprop.files.agreement import Agreement
from betaprop.files.parts import plan_parts

comm = MPI.COMM_WORLD
times = []
for _ in range(int(sys.argv[3])):
    comm.Barrier()
    start = time.perf_counter()
    plan_parts(sys.argv[1], part_bytes=int(sys.argv[2]), agreement=Agreement(comm))
    times.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
if comm.rank == 0:
    print(" ".join(map(str, times)))
"""


def plan_by_ranks(path: str, part_bytes: int, k: int, repeats: int) -> list[float]:
    """Seconds of ``plan_parts(..., agreement=)`` on k ranks (the slowest rank's), a run each."""
    import shutil
    import subprocess
    import sys

    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"
    command = [mpiexec, "-n", str(k), sys.executable, "-m", "mpi4py", "-c", RANKS, path,
               str(part_bytes), str(repeats)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return [float(t) for t in done.stdout.split()]


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from betaprop.files.parts import plan_parts, read_part
    from betaprop.files.preprocessing import Preprocessing
    from betaprop.files.reading import read_table

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "table.csv")
        write_table(path, args.rows)
        size = os.path.getsize(path)
        part_bytes = 8 * 2**20
        whole = read_table(path)
        frames = [read_part(path, p)[0] for p in plan_parts(path, part_bytes=part_bytes)]
        contenders: dict[str, Callable[[], object]] = {
            "pandas.read_csv": lambda: pd.read_csv(path),
            "read_table (whole)": lambda: read_table(path),
            "plan_parts (scan)": lambda: plan_parts(path, part_bytes=part_bytes),
            "plan + read_part all": lambda: [
                read_part(path, p) for p in plan_parts(path, part_bytes=part_bytes)
            ],
            "fit median (whole)": lambda: Preprocessing.fit(whole, impute="median"),
            "fit_parts median": lambda: Preprocessing.fit_parts(frames, impute="median"),
            "fit mean (whole)": lambda: Preprocessing.fit(whole, impute="mean"),
            "fit_parts mean": lambda: Preprocessing.fit_parts(frames, impute="mean"),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, function in contenders.items():
                times[name].append(timed(function))
            for k in (1, 2):  # the plan under mpiexec, in the same rounds
                times.setdefault(f"plan_parts, {k} rank(s)", []).extend(
                    plan_by_ranks(path, part_bytes, k, 1)
                )
    load = os.getloadavg()
    print(f"{args.rows:,} rows, {size / 2**20:.1f} MiB, {len(frames)} parts of 8 MiB; "
          f"{args.repeats} rounds; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    base = {"reading": statistics.median(times["pandas.read_csv"])}
    base["median"] = statistics.median(times["fit median (whole)"])
    base["mean"] = statistics.median(times["fit mean (whole)"])
    base["plan"] = statistics.median(times["plan_parts, 1 rank(s)"])
    for name, values in times.items():
        median = statistics.median(values)
        against = "median" if "median" in name else "mean" if "mean" in name else "reading"
        if "rank" in name:
            against = "plan"
        reference = {"reading": "pandas.read_csv", "median": "fit median (whole)",
                     "mean": "fit mean (whole)", "plan": "1 rank"}[against]  # fmt: skip
        ratio = median / base[against]
        print(f"{name:24s} {median:8.3f} s   {ratio:5.2f} x {reference}")


if __name__ == "__main__":
    main()
