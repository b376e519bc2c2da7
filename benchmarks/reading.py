"""Reading a 200 000 x 51 numeric table: betaprop's reader against pandas.read_csv (issue 18).

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.reading``.

Every reading runs in a fresh process, the readers alternating (``--repeats`` rounds), so a
change of load touches all alike; printed are the median time and its ratio to pandas'.
Peak memory is what the reading adds to the process: after the imports the child resets
Linux's peak resident set (``/proc/self/clear_refs``), reads, and subtracts its resident set
before reading from the new peak (VmHWM); set against the final float32 feature matrix.
Readers: ``pandas.read_csv(...).to_numpy(float32)``, betaprop's ``read_csv(..., dtype=
"float32")`` on the CSV, and on a Parquet file of the same table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROWS, COLUMNS = 200_000, 51

CHILD = r"""
import sys, time
import numpy as np, pandas as pd
from betaprop.files.datasets import read_csv

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

path, how = sys.argv[1], sys.argv[2]
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident set starts again from the resident set now
start = time.perf_counter()
if how == "pandas":
    X = pd.read_csv(path).iloc[:, :-1].to_numpy(np.float32)
else:
    X = read_csv(path, dtype="float32").X
seconds = time.perf_counter() - start
assert X.shape == (200_000, 50) and X.dtype == np.float32, (X.shape, X.dtype)
print(seconds, status("VmHWM:") - before)
"""


def measure(path: str, how: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, path, how], capture_output=True,
                         text=True, check=True)  # fmt: skip
    seconds, peak = out.stdout.split()
    return float(seconds), float(peak)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    table = rng.normal(size=(ROWS, COLUMNS))
    matrix = ROWS * (COLUMNS - 1) * 4  # the final float32 feature matrix
    with tempfile.TemporaryDirectory() as folder:
        csv_path = os.path.join(folder, "table.csv")
        header = ",".join(f"x{i}" for i in range(COLUMNS - 1)) + ",target"
        # "%.6g": 92 MB, the file of issue 18
        np.savetxt(csv_path, table, delimiter=",", header=header, comments="", fmt="%.6g")
        parquet_path = os.path.join(folder, "table.parquet")
        import pandas as pd

        pd.read_csv(csv_path).to_parquet(parquet_path)
        size = os.path.getsize(csv_path) / 1e6
        load = os.getloadavg()[0]
        print(f"{ROWS} x {COLUMNS} table, CSV {size:.0f} MB; final float32 matrix "
              f"{matrix / 1e6:.1f} MB; {args.repeats} rounds, load {load:.1f}")  # fmt: skip
        readers = {
            "pandas.read_csv": (csv_path, "pandas"),
            "betaprop CSV": (csv_path, "betaprop"),
            "betaprop Parquet": (parquet_path, "betaprop"),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
        for _ in range(args.repeats):
            for name, (path, how) in readers.items():
                samples[name].append(measure(path, how))
    times = {name: statistics.median(s for s, _ in runs) for name, runs in samples.items()}
    peaks = {name: max(p for _, p in runs) for name, runs in samples.items()}
    reference = times["pandas.read_csv"]
    print(f"{'reader':<18} {'median s':>9} {'x pandas':>9} {'peak MB':>8} {'x matrix':>9}")
    for name in readers:
        print(f"{name:<18} {times[name]:9.2f} {times[name] / reference:9.2f} "
              f"{peaks[name] / 1e6:8.0f} {peaks[name] / matrix:9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
