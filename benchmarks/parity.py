"""Parity of betaprop's MLPClassifier / MLPRegressor with scikit-learn's, in one run.

For every bundled dataset (iris, digits, wine, breast_cancer; diabetes and make_friedman1
for regression) and every scikit-learn solver (adam, sgd, lbfgs), both libraries fit with
the same hyperparameters on the same standardised 75 % split, for 5 seeds; the table gives
the mean (± std) test score (accuracy or R²), their difference (betaprop − scikit-learn,
the claim is >= −0.01), the mean number of epochs / iterations, and the median fit time of
each with the ratio scikit-learn / betaprop (> 1: betaprop is faster). Then, from identical
initial weights without shuffling in float64, the largest difference of the coefficients
after one epoch of sgd and adam.

Both libraries run with their defaults; betaprop's estimators train with one BLAS thread when
every per-batch product is small (``SINGLE_THREAD_BELOW``), so the table also times
scikit-learn limited to one BLAS thread ("sk 1 thread", "sk1 / bp"): the like-for-like ratio.
Timings on a shared machine are noisy: medians and ratios only, nothing asserted.

    python benchmarks/parity.py              # the full table (a few minutes)
    python benchmarks/parity.py --seeds 2 --datasets iris wine
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn import neural_network as sk
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_friedman1,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import betaprop as bp

CLASSIFICATION = {
    "iris": load_iris,
    "digits": load_digits,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
}
REGRESSION = {
    "diabetes": load_diabetes,
    "friedman1": lambda return_X_y: make_friedman1(n_samples=1000, noise=1.0, random_state=0),
}
# The same hyperparameters for both libraries; scikit-learn's defaults except where noted.
SOLVERS = {
    "adam": {},
    "sgd": {"learning_rate_init": 0.01},  # the default 0.001 with momentum barely moves in 200
    "lbfgs": {},
}
# diabetes has 331 training rows: with alpha <= 1 lbfgs overfits (test R² < 0 for both
# libraries, differences are noise), so a stronger L2 term there.
REGRESSION_SETTINGS = {"diabetes": {"alpha": 10.0}, "friedman1": {"alpha": 1.0}}


def _split(name: str):
    load = CLASSIFICATION.get(name) or REGRESSION[name]
    X, y = load(return_X_y=True)
    if name in REGRESSION:
        y = (y - y.mean()) / y.std()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _fit(cls, settings: dict, data, threads: int | None = None) -> tuple[float, float, int]:
    X_train, X_test, y_train, y_test = data
    model = cls(**settings)
    with warnings.catch_warnings(), threadpool_limits(threads, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        model.fit(X_train, y_train)
        seconds = time.perf_counter() - started
    return model.score(X_test, y_test), seconds, model.n_iter_


def parity_table(datasets: list[str], seeds: int, console: Console) -> None:
    table = Table(title=f"betaprop vs scikit-learn, test score over {seeds} seeds")
    for column in (
        "dataset",
        "solver",
        "scikit-learn",
        "betaprop",
        "diff",
        ">= -0.01",
        "epochs sk / bp",
        "fit s sk",
        "fit s bp",
        "sk / bp",
        "sk 1 thread s",
        "sk1 / bp",
    ):
        table.add_column(column, justify="right" if column not in ("dataset", "solver") else "left")
    for name in datasets:
        data = _split(name)
        regression = name in REGRESSION
        ours_cls = bp.MLPRegressor if regression else bp.MLPClassifier
        their_cls = sk.MLPRegressor if regression else sk.MLPClassifier
        for solver, extra in SOLVERS.items():
            settings = {"solver": solver, **extra, **REGRESSION_SETTINGS.get(name, {})}
            results: dict[str, list] = {"sk": [], "bp": [], "sk1": []}
            for seed in range(seeds):
                seeded = {**settings, "random_state": seed}
                results["sk"].append(_fit(their_cls, seeded, data))
                results["bp"].append(_fit(ours_cls, seeded, data))
                results["sk1"].append(_fit(their_cls, seeded, data, threads=1))
            sk_scores = [r[0] for r in results["sk"]]
            bp_scores = [r[0] for r in results["bp"]]
            diff = float(np.mean(bp_scores) - np.mean(sk_scores))
            sk_time = statistics.median(r[1] for r in results["sk"])
            bp_time = statistics.median(r[1] for r in results["bp"])
            sk1_time = statistics.median(r[1] for r in results["sk1"])
            table.add_row(
                name,
                solver,
                f"{np.mean(sk_scores):.4f} ± {np.std(sk_scores):.4f}",
                f"{np.mean(bp_scores):.4f} ± {np.std(bp_scores):.4f}",
                f"{diff:+.4f}",
                "yes" if diff >= -0.01 else "NO",
                f"{np.mean([r[2] for r in results['sk']]):.0f} / "
                f"{np.mean([r[2] for r in results['bp']]):.0f}",
                f"{sk_time:.3f}",
                f"{bp_time:.3f}",
                f"{sk_time / bp_time:.2f}",
                f"{sk1_time:.3f}",
                f"{sk1_time / bp_time:.2f}",
            )
            console.print(f"  done: {name} {solver}", style="dim")
    console.print(table)


def one_epoch_differences(console: Console) -> None:
    """Same initial weights, no shuffling, float64: max |coef_bp - coef_sk| after one epoch."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(53, 6))
    targets = {
        "multiclass": rng.integers(0, 4, 53),
        "binary": rng.integers(0, 2, 53),
        "multilabel": (rng.random((53, 3)) > 0.5).astype(int),
        "regression (2 outputs)": X @ rng.normal(size=(6, 2)),
        "poisson": rng.poisson(2.0, size=53).astype(float),
    }
    solvers = {
        "sgd": {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1},
        "sgd+momentum": {"solver": "sgd", "nesterovs_momentum": False, "learning_rate_init": 0.05},
        "sgd+nesterov": {"solver": "sgd", "learning_rate_init": 0.05},
        "adam": {"solver": "adam", "learning_rate_init": 0.01},
    }
    table = Table(title="one epoch from identical weights: max |coef_bp - coef_sk| (float64)")
    table.add_column("target")
    for solver in solvers:
        table.add_column(solver, justify="right")
    for kind, y in targets.items():
        classifier = kind in ("multiclass", "binary", "multilabel")
        row = [kind]
        for params in solvers.values():
            settings = dict(
                hidden_layer_sizes=(7, 5),
                batch_size=16,
                shuffle=False,
                warm_start=True,
                max_iter=1,
                alpha=0.01,
                random_state=0,
                **params,
            )
            if not classifier:
                settings["loss"] = "poisson" if kind == "poisson" else "squared_error"
            ours = (bp.MLPClassifier if classifier else bp.MLPRegressor)(**settings)
            theirs = (sk.MLPClassifier if classifier else sk.MLPRegressor)(**settings)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ours.fit(X, y)
                theirs.fit(X, y)
                W0 = [rng.uniform(-0.5, 0.5, c.shape) for c in theirs.coefs_]
                b0 = [rng.uniform(-0.5, 0.5, b.shape) for b in theirs.intercepts_]
                theirs.coefs_ = [w.copy() for w in W0]
                theirs.intercepts_ = [b.copy() for b in b0]
                ours.coefs_, ours.intercepts_ = W0, b0
                ours.fit(X, y)
                theirs.fit(X, y)
            pairs = zip(
                ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
            )
            row.append(f"{max(float(np.abs(a - b).max()) for a, b in pairs):.1e}")
        table.add_row(*row)
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--datasets", nargs="+", default=[*CLASSIFICATION, *REGRESSION], metavar="NAME"
    )
    args = parser.parse_args()
    console = Console(width=170)
    one_epoch_differences(console)
    parity_table(args.datasets, args.seeds, console)


if __name__ == "__main__":
    main()
