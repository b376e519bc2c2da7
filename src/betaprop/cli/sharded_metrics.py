"""The final metrics of a sharded ``betaprop train``, and the preprocessing's moments
(``reduced_statistics``: counts, means and squared deviations combined pairwise): sums over
the ranks' own rows.

Each rank passes only its rows of a split forward; what ``cli.models.metrics`` computes on
all rows at once is rebuilt from sums all-reduced:

- loss: the sum of the per-row losses over n;
- accuracy: the right predictions over n; macro F1 (scikit-learn's ``f1_score(average=
  "macro", zero_division=0)``): per class TP, FP and FN counts summed, F1_c = 2 TP / (2 TP +
  FP + FN), averaged over the classes that occur as truth or prediction;
- R² = 1 - SS_res / SS_tot with SS_tot about the mean of all rows (a first sum gives it),
  MAE = sum |e| / n, RMSE = sqrt(sum e^2 / n), in the target's units;
- the confusion matrix: each rank's counts of the shown block, summed (the classes shown: the
  most frequent true classes, from the summed class counts).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine.network import Network
from ..files.preprocessing import Preprocessing
from ..training.loop import evaluate
from .models import METRICS_CELLS
from .training import BLOCK_ROWS

__all__ = ["reduced_metrics", "reduced_confusion", "reduced_statistics"]

Array = np.ndarray


def _passes(
    net: Network, prep: Preprocessing, inputs: Array, target: Array
) -> tuple[float, list[Any]]:
    """This rank's summed loss over its rows of a split (``inputs``: standardised, as
    ``sharded.encoded_splits`` gives them; ``target``: theirs) and its decoded predictions,
    in chunks."""
    step = max(1, min(METRICS_CELLS // net.sizes[-1], BLOCK_ROWS))  # bounded temporaries
    total, predicted = 0.0, list[Any]()
    for start in range(0, len(inputs), step):
        Z = inputs[start : start + step]
        D = prep.encode(target[start : start + step], net.sizes[-1], net.dtype)
        loss, _ = evaluate(net, Z, D)
        total += float(loss) * len(Z)
        predicted.extend(prep.decode(net.predict(Z)))
    return total, predicted


def reduced_metrics(
    net: Network, prep: Preprocessing, inputs: Array, target: Array, comm: Any
) -> dict[str, float]:
    """``metrics`` of a split whose rows are spread over the ranks (``inputs``, ``target``:
    this rank's rows, standardised)."""
    total, predicted = (0.0, []) if not len(inputs) else _passes(net, prep, inputs, target)
    n = int(comm.allreduce(len(inputs)))
    result = {"loss": float(comm.allreduce(total)) / n}
    if prep.task == "classification":
        truth, guess = _codes(prep, prep.labels(target)), _codes(prep, predicted)
        C = len(prep.classes or ())
        counts = np.zeros((3, C), dtype=np.int64)  # TP, FP, FN per class
        right = truth == guess
        counts[0] = np.bincount(truth[right], minlength=C)
        counts[1] = np.bincount(guess[~right], minlength=C)
        counts[2] = np.bincount(truth[~right], minlength=C)
        comm.Allreduce(_mpi().IN_PLACE, counts)
        tp, fp, fn = counts.astype(np.float64)
        seen = (tp + fp + fn) > 0  # classes that occur as truth or prediction
        f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(C), where=seen)
        result["accuracy"] = float(tp.sum()) / n
        result["f1_macro"] = float(f1[seen].mean()) if seen.any() else 0.0
        return result
    truth_values = np.array([float(v) for v in target])
    values = np.asarray(predicted, dtype=np.float64)
    errors = values - truth_values
    sums = np.array([truth_values.sum(), np.abs(errors).sum(), np.square(errors).sum()])
    comm.Allreduce(_mpi().IN_PLACE, sums)
    mean = sums[0] / n
    squares = np.array([np.square(truth_values - mean).sum()])
    comm.Allreduce(_mpi().IN_PLACE, squares)
    residual, spread = sums[2], squares[0]
    if n <= 1:
        r2 = math.nan
    elif spread > 0:
        r2 = 1.0 - residual / spread
    else:  # scikit-learn's r2_score for a constant truth
        r2 = 1.0 if residual == 0 else 0.0
    result["r2"], result["mae"], result["rmse"] = r2, sums[1] / n, math.sqrt(sums[2] / n)
    return result


def reduced_confusion(
    net: Network, prep: Preprocessing, inputs: Array, target: Array, comm: Any
) -> Any:
    """``Confusion.of`` over all ranks' rows of a split: the shown classes from the summed
    class counts, the shown block's counts summed over the ranks."""
    from ..explain.plots import MOST_CLASSES, Confusion

    classes = list(prep.classes or ())
    _, predicted = (0.0, []) if not len(inputs) else _passes(net, prep, inputs, target)
    t, p = _codes(prep, prep.labels(target)), _codes(prep, predicted)

    def total(a: Array) -> None:
        comm.Allreduce(_mpi().IN_PLACE, a)

    return Confusion.of_codes(t, p, classes, MOST_CLASSES, total)


def _codes(prep: Preprocessing, labels: Any) -> Array:
    """Class labels as their index in ``prep.classes`` (-1: not a class of the model)."""
    index = {label: j for j, label in enumerate(prep.classes or ())}
    return np.fromiter((index.get(str(v), -1) for v in labels), dtype=np.intp, count=len(labels))


def _mpi() -> Any:
    from ..training.launch import mpi

    return mpi()


def reduced_statistics(X: Array, rows: Array, comm: Any) -> tuple[Array, Array]:
    """Mean and standard deviation (ddof 0) of every column over all ranks' ``rows`` of X,
    in float64: each rank's count, mean and sum of squared deviations M2 (two passes over
    blocks of its rows, never a copy of them all), combined pairwise (Chan, Golub and
    LeVeque): M2 = M2_a + M2_b + (mean_b - mean_a)^2 n_a n_b / (n_a + n_b)."""
    m, step = len(rows), 8192
    mean = np.zeros(X.shape[1])
    for start in range(0, m, step):
        mean += X[rows[start : start + step]].sum(axis=0, dtype=np.float64)
    mean /= max(m, 1)
    squares = np.zeros(X.shape[1])
    for start in range(0, m, step):
        block = X[rows[start : start + step]].astype(np.float64) - mean
        squares += np.square(block, out=block).sum(axis=0)
    n, total_mean, total_m2 = 0, np.zeros(X.shape[1]), np.zeros(X.shape[1])
    for count, mean_r, m2_r in comm.allgather((m, mean, squares)):
        if not count:
            continue
        delta = mean_r - total_mean
        both = n + count
        total_m2 = total_m2 + m2_r + delta**2 * (n * count / both)
        total_mean = total_mean + delta * (count / both)
        n = both
    return total_mean, np.sqrt(total_m2 / max(n, 1))
