"""Sparse input, betaprop against scikit-learn (issue 14): the 3000 x 30000 CSR case.

Density 1e-3, hidden (50,), 5 iterations, adam and lbfgs. Each contender fits and predicts
in a child process of its own (peak memory = that child's ru_maxrss minus its resident set
once the libraries are imported and the data generated); medians over rounds. Prints
betaprop / scikit-learn for fit time, predict time and peak memory.
Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.sparse``
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

ROUNDS = 3
CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, scipy.sparse as sp
which, solver = sys.argv[1], sys.argv[2]
if which == "betaprop":
    from betaprop import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
X = sp.random(3000, 30000, density=1e-3, format="csr", random_state=0)
y = np.random.default_rng(0).integers(0, 2, 3000)
model = MLPClassifier(hidden_layer_sizes=(50,), solver=solver, max_iter=5, random_state=0)
import os
with open("/proc/self/statm") as f:  # the resident set now (after imports and data), KiB
    before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    start = time.perf_counter(); model.fit(X, y); fit = time.perf_counter() - start
start = time.perf_counter(); model.predict_proba(X); predict = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"fit": fit, "predict": predict, "peak_kib": peak}))
"""


def measure(which: str, solver: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, which, solver], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    print("3000 x 30000 CSR, density 1e-3, hidden (50,), 5 iterations; betaprop / scikit-learn")
    print(f"{'solver':8}{'fit time':>10}{'predict':>10}{'peak mem':>10}   (medians of {ROUNDS})")
    for solver in ("adam", "lbfgs"):
        runs: dict[str, list[dict[str, float]]] = {"betaprop": [], "sklearn": []}
        for _ in range(ROUNDS):
            for which in ("betaprop", "sklearn"):  # alternating order
                runs[which].append(measure(which, solver))
        med = {
            w: {k: statistics.median(r[k] for r in rs) for k in ("fit", "predict", "peak_kib")}
            for w, rs in runs.items()
        }
        ratios = [med["betaprop"][k] / med["sklearn"][k] for k in ("fit", "predict", "peak_kib")]
        print(f"{solver:8}" + "".join(f"{r:10.2f}" for r in ratios))
        for w in ("betaprop", "sklearn"):
            m = med[w]
            print(
                f"  {w:9} fit {m['fit']:.3f} s, predict {m['predict']:.4f} s, "
                f"peak +{m['peak_kib'] / 1024:.0f} MiB"
            )


if __name__ == "__main__":
    main()
