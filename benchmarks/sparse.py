"""Sparse input, betaprop against scikit-learn (issue 14): the 3000 x 30000 CSR case.

Density 1e-3, hidden (50,), 5 iterations, adam and lbfgs, float64. The parent draws the
matrix once with NumPy (distinct random positions, values uniform in [0, 1)) and saves it;
children load it.

- Fit time and peak memory: each contender fits in a child process of its own. After the
  libraries are imported, the data loaded and one tiny fit has run (so that neither
  contender's lazy imports count), the child frees its unused heap (glibc ``malloc_trim``)
  and resets its peak resident set (``/proc/self/clear_refs``); the fit's peak is VmHWM
  afterwards minus VmRSS before. The same again before the first predict (a betaprop model
  sets up its work buffers for 3000 rows there, once). "run" is the peak of fit and first
  predict together above the resident set before the fit: the issue's single figure.
- Predict time: one child fits both contenders, then calls their ``predict_proba`` in
  turn, ``PREDICTS`` times each (so that load from elsewhere falls on both alike).

Time is wall clock, with the process's CPU time beside it (steadier on a loaded machine).
Figures are medians over ``ROUNDS`` children per contender, the order of the two
alternated; printed as betaprop / scikit-learn, with the load average.
Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.sparse``
(``--rounds N``, ``--solver adam|lbfgs``).
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

ROUNDS = 5
PREDICTS = 20
N, FEATURES, DENSITY = 3000, 30000, 1e-3
COMMON = r"""
import ctypes, gc, json, statistics, sys, time, warnings
import numpy as np, scipy.sparse as sp
import betaprop, sklearn.neural_network
CLASSES = {"betaprop": betaprop.MLPClassifier, "sklearn": sklearn.neural_network.MLPClassifier}
solver, path, predicts = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = np.load(path)
X = sp.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
y = data["y"]
warnings.simplefilter("ignore")

def model(which, max_iter=5):
    return CLASSES[which](hidden_layer_sizes=(50,), solver=solver, max_iter=max_iter,
                          random_state=0)

def timed(call):  # (wall, CPU) seconds of call()
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu
"""
FIT = r"""
which = sys.argv[4]

def kib(field):  # a field of /proc/self/status (VmRSS, VmHWM), KiB
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

def reset_peak():  # free heap pages back to the system (glibc), then VmHWM := VmRSS
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

model(which, 1).fit(X[:20, :200], y[:20]).predict_proba(X[:20, :200])  # lazy imports
clf = model(which)
reset_peak(); start = kib("VmRSS")
fit, fit_cpu = timed(lambda: clf.fit(X, y))
fit_top = kib("VmHWM")
reset_peak(); before = kib("VmRSS")
clf.predict_proba(X)
predict_top = kib("VmHWM")
print(json.dumps({"fit": fit, "fit_cpu": fit_cpu, "fit_kib": fit_top - start,
                  "predict_kib": predict_top - before,
                  "run_kib": max(fit_top, predict_top) - start}))
"""
PREDICT = r"""
order = sys.argv[4].split(",")
models = {which: model(which).fit(X, y) for which in order}
runs = {which: [] for which in order}
for _ in range(predicts):
    for which in order:
        runs[which].append(timed(lambda: models[which].predict_proba(X)))
print(json.dumps({which: {"predict": statistics.median(r[0] for r in rs),
                          "predict_cpu": statistics.median(r[1] for r in rs)}
                  for which, rs in runs.items()}))
"""
FIGURES = ("fit", "fit_cpu", "predict", "predict_cpu", "fit_kib", "predict_kib", "run_kib")


def make_data(path: str, seed: int = 0) -> None:
    """The N x FEATURES CSR case (DENSITY of distinct positions, values uniform in [0, 1))
    and binary labels, saved as NumPy arrays."""
    rng = np.random.default_rng(seed)
    nnz = round(N * FEATURES * DENSITY)
    positions = np.unique(rng.integers(0, N * FEATURES, size=nnz + nnz // 10))
    positions = np.sort(rng.permutation(positions)[:nnz])  # distinct, row-major order
    rows, indices = np.divmod(positions, FEATURES)
    indptr = np.zeros(N + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=N), out=indptr[1:])
    np.savez(
        path,
        data=rng.random(nnz),
        indices=indices.astype(np.int32),
        indptr=indptr,
        shape=np.array([N, FEATURES]),
        y=rng.integers(0, 2, N),
    )


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs; nan where theirs is not positive (a peak of 0 KiB)."""
    return ours / theirs if theirs > 0 else float("nan")


def child(script: str, solver: str, path: str, last: str) -> dict:
    """Run COMMON + script in a fresh interpreter; its last line of output, as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", COMMON + script, solver, path, str(PREDICTS), last],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(solver: str, path: str, rounds: int) -> dict[str, dict[str, float]]:
    """Medians of every figure for both contenders, children alternated."""
    runs: dict[str, list[dict[str, float]]] = {"betaprop": [], "sklearn": []}
    for i in range(rounds):
        order = ("betaprop", "sklearn") if i % 2 == 0 else ("sklearn", "betaprop")
        fits = {which: child(FIT, solver, path, which) for which in order}
        predicts = child(PREDICT, solver, path, ",".join(order))
        for which in order:
            runs[which].append(fits[which] | predicts[which])
    return {
        which: {k: statistics.median(r[k] for r in rs) for k in FIGURES}
        for which, rs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--solver", choices=("adam", "lbfgs"), action="append")
    args = parser.parse_args()
    print(f"{N} x {FEATURES} CSR, density {DENSITY:g}, hidden (50,), 5 iterations, float64")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        "betaprop / scikit-learn: time wall (CPU); peak memory above the resident set before"
        " the fit / the first predict / fit and predict"
    )
    print(f"{'':8}{'fit':>14}{'predict':>14}{'fit mem':>9}{'pred mem':>9}{'run mem':>9}")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "case.npz")
        make_data(path)
        for solver in args.solver or ("adam", "lbfgs"):
            med = measure(solver, path, args.rounds)
            r = {k: ratio(med["betaprop"][k], med["sklearn"][k]) for k in FIGURES}
            print(
                f"{solver:8}{r['fit']:8.2f} ({r['fit_cpu']:.2f}){r['predict']:8.2f} "
                f"({r['predict_cpu']:.2f}){r['fit_kib']:9.2f}{r['predict_kib']:9.2f}"
                f"{r['run_kib']:9.2f}"
            )
            for w in ("betaprop", "sklearn"):
                m = med[w]
                print(
                    f"  {w:9} fit {m['fit']:.3f} s ({m['fit_cpu']:.3f} CPU), predict "
                    f"{m['predict'] * 1e3:.1f} ms ({m['predict_cpu'] * 1e3:.1f} CPU); peak +"
                    f"{m['fit_kib'] / 1024:.1f} / +{m['predict_kib'] / 1024:.1f} / "
                    f"+{m['run_kib'] / 1024:.1f} MiB"
                )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"(medians of {args.rounds} rounds; predict: {PREDICTS} calls each per round)")


if __name__ == "__main__":
    main()
