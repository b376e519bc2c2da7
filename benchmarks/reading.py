"""Reading a 200 000 x 51 numeric table: betaprop's reader against pandas.read_csv (issue 18).

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.reading``. Each
reader runs in a fresh process; time is the best of three, peak memory the process's peak
resident set (ru_maxrss) minus its resident set just before reading (after the imports), set
against the final float32 matrix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

ROWS, COLUMNS = 200_000, 51

CHILD = r"""
import resource, sys, time
import numpy as np, pandas as pd
from betaprop.files.datasets import read_csv
path, how = sys.argv[1], sys.argv[2]
import os
with open("/proc/self/statm") as f:  # the resident set now (pages), after the imports
    base = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    if how == "pandas":
        X = pd.read_csv(path).to_numpy(np.float32)
    else:
        X = read_csv(path).X.astype(np.float32)
    best = min(best, time.perf_counter() - start)
    del X
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(best, (peak - base) * 1024)
"""


def measure(path: str, how: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, path, how], capture_output=True,
                         text=True, check=True)  # fmt: skip
    seconds, peak = out.stdout.split()
    return float(seconds), float(peak)


def main() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(ROWS, COLUMNS))
    matrix = ROWS * (COLUMNS - 1) * 4  # the final float32 feature matrix
    with tempfile.TemporaryDirectory() as folder:
        csv_path = os.path.join(folder, "table.csv")
        header = ",".join(f"x{i}" for i in range(COLUMNS - 1)) + ",target"
        np.savetxt(csv_path, table, delimiter=",", header=header, comments="", fmt="%.17g")
        parquet_path = os.path.join(folder, "table.parquet")
        import pandas as pd

        pd.read_csv(csv_path).to_parquet(parquet_path)
        size = os.path.getsize(csv_path) / 1e6
        print(f"{ROWS} x {COLUMNS} table, CSV {size:.0f} MB; final float32 matrix "
              f"{matrix / 1e6:.1f} MB")  # fmt: skip
        results = {
            "pandas.read_csv": measure(csv_path, "pandas"),
            "betaprop CSV": measure(csv_path, "betaprop"),
            "betaprop Parquet": measure(parquet_path, "betaprop"),
        }
    reference = results["pandas.read_csv"][0]
    print(f"{'reader':<18} {'time s':>8} {'x pandas':>9} {'peak MB':>8} {'x matrix':>9}")
    for name, (seconds, peak) in results.items():
        print(f"{name:<18} {seconds:8.2f} {seconds / reference:9.2f} {peak / 1e6:8.0f} "
              f"{peak / matrix:9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
