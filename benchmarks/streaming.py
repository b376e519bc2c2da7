"""Streaming epochs against training in memory (issue 25): peak memory and samples/s.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.streaming
[--rows 600000] [--repeats 3]``.

A Parquet table of ``--rows`` x 40 float32 features and a 0/1 label (row groups of 25 000
rows) is trained on for two epochs (network 40-32-2, batch 256, Adam, float32) by:

- ``memory``: ``pandas.read_parquet``, ``Preprocessing.fit``, the standardised float32
  matrix and one-hot targets, ``fit(net, X, D)``;
- ``stream``: ``Stream.from_file`` (parts of 4 MiB, a buffer of 8 192 rows; its first pass
  fits the preprocessing) and ``fit(net, stream)``;
- ``stream+alloc``: the same with allocators that hand freed memory back, as ``train
  --stream`` sets them (``ARROW_DEFAULT_MEMORY_POOL=system``,
  ``MALLOC_MMAP_THRESHOLD_=262144``: a part's MiB-sized arrays are unmapped when freed,
  smaller blocks stay on the heap; ``cli.streaming.returning_allocators``).

Each run is a fresh process (contenders alternating, ``--repeats`` rounds); it warms up on
a 1 000-row file first (readers' and BLAS's code in memory), then resets Linux's peak
resident set (``/proc/self/clear_refs``), so the peak printed is what reading and training
add (VmHWM minus the resident set before), set against the float32 feature matrix. Printed:
medians of the peak, of the preparation time (reading and preprocessing; the stream's first
pass) and of samples/s over the epochs (rows x epochs / fit's seconds), with ratios to
``memory``, and the load average (the machine is shared: figures move with it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np, pandas as pd, pyarrow.parquet
import betaprop as bp
from betaprop.files.preprocessing import Preprocessing

path, warm, how = sys.argv[1], sys.argv[2], sys.argv[3]
options = dict(shuffle_buffer=8192, part_bytes=4 * 2**20)

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

def prepared(file):
    if how == "memory":
        frame = pd.read_parquet(file)
        prep = Preprocessing.fit(frame)
        X = prep.transform(frame.iloc[:, :-1].to_numpy(), "float32")
        D = prep.encode(frame.iloc[:, -1].to_numpy(), 2, "float32")
        return (X, D)
    return (bp.Stream.from_file(file, **options),)

def train(file, epochs):
    start = time.perf_counter()
    data = prepared(file)
    prepared_s = time.perf_counter() - start
    net = bp.Network([40, 32, 2], loss="cross_entropy", seed=0)
    history = bp.fit(net, *data, epochs=epochs, batch_size=256, seed=0)
    return prepared_s, sum(history.seconds), history.loss[-1]

train(warm, 1)
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak resident set starts again from the resident set now
prepared_s, fit_s, loss = train(path, 2)
print(json.dumps({"peak": status("VmHWM:") - before, "prepare": prepared_s, "fit": fit_s,
                  "loss": loss}))
"""

CONTENDERS = {
    "memory": {},
    "stream": {},
    "stream+alloc": {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_MMAP_THRESHOLD_": "262144"},
}


def write_table(folder: str, rows: int) -> tuple[str, str, int]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 40)).astype(np.float32)
    label = (X[:, :5].sum(axis=1) + rng.normal(size=rows) > 0).astype(np.int64)
    table = pa.Table.from_pandas(
        pd.DataFrame(X, columns=[f"f{j}" for j in range(40)]).assign(y=label),
        preserve_index=False,
    )
    path, warm = os.path.join(folder, "table.parquet"), os.path.join(folder, "warm.parquet")
    pq.write_table(table, path, row_group_size=25_000)
    pq.write_table(table.slice(0, 1000), warm)
    return path, warm, X.nbytes


def run(path: str, warm: str, how: str) -> dict:
    env = dict(os.environ, **CONTENDERS[how])
    command = [sys.executable, "-c", CHILD, path, warm, "stream" if "stream" in how else how]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path, warm, nbytes = write_table(folder, options.rows)
        print(f"{options.rows} x 40 float32 ({nbytes / 2**20:.1f} MiB matrix), 2 epochs, "
              f"{options.repeats} rounds, load before {os.getloadavg()[0]:.1f}")  # fmt: skip
        results: dict[str, list[dict]] = {how: [] for how in CONTENDERS}
        for _ in range(options.repeats):
            for how in CONTENDERS:
                results[how].append(run(path, warm, how))
    median = {
        how: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for how, runs in results.items()
    }
    base = median["memory"]
    print(f"{'':14} {'peak MiB':>9} {'x matrix':>9} {'prepare s':>10} {'samples/s':>10} "
          f"{'ratio':>6} {'loss':>7}")  # fmt: skip
    for how, m in median.items():
        rate = 2 * options.rows / m["fit"]
        ratio = rate / (2 * options.rows / base["fit"])
        print(f"{how:14} {m['peak'] / 2**20:9.1f} {m['peak'] / nbytes:9.2f} "
              f"{m['prepare']:10.2f} {rate:10.0f} {ratio:6.2f} {m['loss']:7.4f}")  # fmt: skip
    print(f"load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
