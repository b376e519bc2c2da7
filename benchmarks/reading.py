"""Reading a 200 000 x 51 numeric table: betaprop's reader against pandas.read_csv (issue 18);
with ``--mixed``, a mixed table read and encoded against pandas + scikit-learn (issue 24);
with ``--train``, that table end to end: ``betaprop train --epochs 1`` against pandas +
scikit-learn's Pipeline with one epoch of ``MLPClassifier``.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.reading
[--mixed | --train]``.

The mixed table (issue 24): 200 000 rows, 40 numeric columns, 8 text columns of 3 to 100
levels, gaps in two of them (one numeric, one text), a text target. betaprop: ``read_csv``
then ``Preprocessing.fit`` (median imputation, one-hot) and the standardised matrix, as
``train`` does; against ``pandas.read_csv`` then scikit-learn's ``ColumnTransformer``
(SimpleImputer + StandardScaler, SimpleImputer + OneHotEncoder) ``fit_transform``.

Every reading runs in a fresh process, the readers alternating (``--repeats`` rounds), so a
change of load touches all alike; printed are the median time and its ratio to pandas'.
Peak memory is what the reading adds to the process: after the imports the child resets
Linux's peak resident set (``/proc/self/clear_refs``), reads, and subtracts its resident set
before reading from the new peak (VmHWM); set against the final float32 feature matrix.
``--train`` times whole processes (interpreter, imports, everything the command does; one
BLAS thread each unless ``--threads``: on a busy machine more threads than free cores make
small-batch training wait on each other, scikit-learn's most) and
takes each one's peak resident set from the kernel (``os.wait4``): ``betaprop train --data
mixed.csv --epochs 1`` (hidden 128, batch 32, float32, 70/10/20 split, validation each epoch,
the scores of the three splits, model file and report written) against ``pandas.read_csv``,
the same 70/10/20 rows (``train_test_split``, stratified), the Pipeline (ColumnTransformer as
above, ``MLPClassifier(hidden_layer_sizes=(128,), batch_size=32, max_iter=1)``) fitted on the
training rows, and its scores on the validation and test rows.
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
import pyarrow.parquet  # imported before the peak is reset, as pandas is: reading is measured
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


MIXED_CHILD = r"""
import sys, time
import numpy as np, pandas as pd

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))

path, how = sys.argv[1], sys.argv[2]
from betaprop.files.datasets import read_csv
from betaprop.files.preprocessing import Preprocessing
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
start = time.perf_counter()
if how == "pandas":
    frame = pd.read_csv(path)
    text = [c for c in frame.columns[:-1] if not pd.api.types.is_numeric_dtype(frame[c])]
    numbers = [c for c in frame.columns[:-1] if c not in text]
    encoder = ColumnTransformer([
        ("num", Pipeline([("i", SimpleImputer(strategy="median")), ("s", StandardScaler())]),
         numbers),
        ("cat", Pipeline([("i", SimpleImputer(strategy="most_frequent")),
                          ("o", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]),
         text)])
    X = encoder.fit_transform(frame.iloc[:, :-1])
    labels = frame.iloc[:, -1].to_numpy()
else:
    data = read_csv(path, allow_missing=True)
    prep = Preprocessing.fit(data, impute="median")
    X = prep.transform(prep.encode_table(data))
seconds = time.perf_counter() - start
print(seconds, status("VmHWM:") - before, X.shape[1])
"""


SKLEARN_TRAIN = r"""
import sys, warnings
import numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

frame = pd.read_csv(sys.argv[1])
features, labels = frame.iloc[:, :-1], frame.iloc[:, -1].astype(str)
text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
numbers = [c for c in features.columns if c not in text]
rest, test = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=0,
                              stratify=labels)
train, validation = train_test_split(rest, test_size=0.125, random_state=0,
                                     stratify=labels.iloc[rest])
encoder = ColumnTransformer([
    ("num", Pipeline([("i", SimpleImputer(strategy="median")), ("s", StandardScaler())]),
     numbers),
    ("cat", Pipeline([("i", SimpleImputer(strategy="most_frequent")),
                      ("o", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]),
     text)])
model = Pipeline([("encode", encoder), ("mlp", MLPClassifier(
    hidden_layer_sizes=(128,), batch_size=32, max_iter=1, random_state=0))])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch is what is asked
    model.fit(features.iloc[train], labels.iloc[train])
scores = [model.score(features.iloc[rows], labels.iloc[rows]) for rows in (validation, test)]
print(*scores)
"""


def mixed_table(path: str) -> None:
    """The mixed table of issue 24, written as CSV."""
    import pandas as pd

    rng = np.random.default_rng(0)
    columns = {f"x{i}": rng.normal(size=ROWS).round(6) for i in range(40)}
    for j, levels in enumerate((3, 5, 8, 12, 20, 40, 70, 100)):
        names = np.array([f"level_{k}" for k in range(levels)], dtype=object)
        columns[f"c{j}"] = names[rng.integers(0, levels, ROWS)]
    frame = pd.DataFrame(columns)
    frame.loc[rng.random(ROWS) < 0.05, "x0"] = np.nan
    frame.loc[rng.random(ROWS) < 0.05, "c1"] = None
    frame["target"] = np.where(frame["x1"] + (frame["c0"] == "level_1") > 0.5, "yes", "no")
    frame.to_csv(path, index=False)


def mixed(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mixed.csv")
        mixed_table(path)
        size = os.path.getsize(path) / 1e6
        print(f"mixed {ROWS} x 49 table (40 numeric, 8 text, gaps in 2), CSV {size:.0f} MB; "
              f"{repeats} rounds, load before {os.getloadavg()[0]:.1f}")  # fmt: skip
        samples: dict[str, list[tuple[float, float, int]]] = {"pandas+sklearn": [], "betaprop": []}
        for _ in range(repeats):
            for name, how in (("pandas+sklearn", "pandas"), ("betaprop", "betaprop")):
                out = subprocess.run([sys.executable, "-c", MIXED_CHILD, path, how],
                                     capture_output=True, text=True)  # fmt: skip
                if out.returncode:
                    raise SystemExit(f"{name}: {out.stderr.strip().splitlines()[-1]}")
                seconds, peak, width = out.stdout.split()
                samples[name].append((float(seconds), float(peak), int(width)))
    reference = statistics.median(s for s, _, _ in samples["pandas+sklearn"])
    print(f"{'read + encode':<16} {'median s':>9} {'x pandas':>9} {'peak MB':>8} {'inputs':>7}")
    for name, runs in samples.items():
        seconds = statistics.median(s for s, _, _ in runs)
        peak = max(p for _, p, _ in runs)
        print(f"{name:<16} {seconds:9.2f} {seconds / reference:9.2f} {peak / 1e6:8.0f} "
              f"{runs[0][2]:7d}")  # fmt: skip
    print(f"load after {os.getloadavg()[0]:.1f}")


def whole_process(command: list[str], threads: int) -> tuple[float, float]:
    """Wall seconds and peak resident bytes of one process run to its end (``os.wait4``),
    with ``threads`` BLAS threads."""
    import time

    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))  # fmt: skip
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.stderr is not None
    errors = child.stderr.read().decode()
    child.stderr.close()
    if child.returncode:
        raise SystemExit(f"{command[:4]}: {errors.strip().splitlines()[-1:]}")
    return seconds, usage.ru_maxrss * 1024.0  # kilobytes on Linux


def train(repeats: int, threads: int) -> None:
    """``betaprop train --epochs 1`` against pandas + the scikit-learn Pipeline, end to end."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mixed.csv")
        mixed_table(path)
        print(f"mixed {ROWS} x 49 table, train --epochs 1 end to end (hidden 128, batch 32, "
              f"{threads} BLAS threads each); {repeats} alternating rounds, load before "
              f"{os.getloadavg()[0]:.1f}")  # fmt: skip
        commands = {
            "pandas+sklearn": [sys.executable, "-c", SKLEARN_TRAIN, path],
            "betaprop train": [sys.executable, "-m", "betaprop", "train", "--data", path,
                               "--epochs", "1", "--out", os.path.join(folder, "run"),
                               "--force", "--quiet"],
        }  # fmt: skip
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        loads = []
        for _ in range(repeats):
            for name, command in commands.items():
                samples[name].append(whole_process(command, threads))
            loads.append(os.getloadavg()[0])
    reference = statistics.median(s for s, _ in samples["pandas+sklearn"])
    peak_reference = statistics.median(p for _, p in samples["pandas+sklearn"])
    print(f"{'end to end':<16} {'median s':>9} {'x sklearn':>9} {'peak MB':>8} {'x sklearn':>9}")
    for name, runs in samples.items():
        seconds = statistics.median(s for s, _ in runs)
        peak = statistics.median(p for _, p in runs)
        print(f"{name:<16} {seconds:9.2f} {seconds / reference:9.2f} {peak / 1e6:8.0f} "
              f"{peak / peak_reference:9.2f}")  # fmt: skip
    pairs = zip(samples["pandas+sklearn"], samples["betaprop train"], strict=True)
    ratios = [ours[0] / theirs[0] for theirs, ours in pairs]
    print("paired time ratios " + " ".join(f"{r:.2f}" for r in ratios)
          + f"; load after each round {' '.join(f'{v:.1f}' for v in loads)}")  # fmt: skip


def measure(path: str, how: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, path, how], capture_output=True,
                         text=True, check=True)  # fmt: skip
    seconds, peak = out.stdout.split()
    return float(seconds), float(peak)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mixed", action="store_true", help="the mixed table of issue 24")
    parser.add_argument("--train", action="store_true", help="that table, train end to end")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads of --train's runs")
    args = parser.parse_args(argv)
    if args.train:
        train(args.repeats, args.threads)
        return
    if args.mixed:
        mixed(args.repeats)
        return
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
