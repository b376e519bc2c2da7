"""Statistics agreed by reduction: parts in one process, or ranks of an MPI communicator.

Every statistic that ``Preprocessing`` learns is a reduction, so rows seen part by part, or
K ranks each holding their own rows, learn what one process learns from all rows:

- mean and variance: per part the count n, mean and sum of squared deviations M2, combined
  pairwise (Chan, Golub and LeVeque's update), never from sums of x and x², which cancel;
- counts of distinct values (categories, the most frequent value): summed, ties broken as
  scikit-learn's ``SimpleImputer(strategy="most_frequent")`` breaks them (the smallest);
- order statistics (the median): exact, by distributed selection over the values' float64
  bit patterns read as ordered integers: a histogram of 1024 bins, summed over ranks, finds
  the bin holding the k-th value, and the next round counts only that bin; 2^64 patterns
  need at most 7 rounds, each a pass over the values.

``Agreement`` is the one reduction interface: ``Agreement(None)`` is one process (every
reduction the identity), ``Agreement(comm)`` reduces over an mpi4py communicator. Everything
combined from gathered pieces is combined in rank order, so every rank gets the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Agreement",
    "Moments",
    "moments",
    "combine",
    "combine_all",
    "Counts",
    "counts",
    "merge_counts",
    "most_frequent",
    "order_statistics",
    "median_of",
    "BINS",
    "SMALL",
    "middle_orders",
]

Array = np.ndarray
BINS = 1024  # histogram bins of a selection round


class Agreement:
    """Reductions over the ranks of ``comm`` (mpi4py), or over one process (``comm`` None).

    ``sum``/``min``/``max`` reduce arrays element-wise (every rank gets the result);
    ``gather`` gives every rank the list of every rank's object, in rank order.
    """

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm if comm is not None and comm.Get_size() > 1 else None
        self.rank = 0 if self.comm is None else int(self.comm.Get_rank())
        self.size = 1 if self.comm is None else int(self.comm.Get_size())

    def _reduce(self, array: Any, op: str) -> Array:
        local = np.ascontiguousarray(array)
        if self.comm is None:
            return local.copy()
        from mpi4py import MPI

        out = np.empty_like(local)
        self.comm.Allreduce(local, out, op=getattr(MPI, op))
        return out

    def sum(self, array: Any) -> Array:
        """The element-wise sum over ranks (integers: exact)."""
        return self._reduce(array, "SUM")

    def min(self, array: Any) -> Array:
        return self._reduce(array, "MIN")

    def max(self, array: Any) -> Array:
        return self._reduce(array, "MAX")

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (mpi4py's ``allgather``)."""
        return [obj] if self.comm is None else list(self.comm.allgather(obj))


# ----------------------------------------------------------------------------- moments
@dataclass(frozen=True)
class Moments:
    """Per column: the count n of present values, their mean and M2 = Σ (x - mean)²."""

    n: Array
    mean: Array
    M2: Array

    @property
    def std(self) -> Array:
        """The standard deviation (ddof 0), sqrt(M2 / n); 0 where n is 0."""
        return np.sqrt(np.divide(self.M2, self.n, out=np.zeros_like(self.M2), where=self.n > 0))


def moments(X: Array) -> Moments:
    """The moments of each column of X (n, p) in float64; NaN cells are missing."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    present = ~np.isnan(X)
    n = present.sum(axis=0).astype(np.float64)
    total = np.where(present, X, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    deviation = np.where(present, X - mean, 0.0)
    return Moments(n, mean, np.square(deviation).sum(axis=0))


def combine(a: Moments, b: Moments) -> Moments:
    """Chan et al.'s pairwise update: n = n_a + n_b, δ = mean_b - mean_a,
    mean = mean_a + δ n_b / n, M2 = M2_a + M2_b + δ² n_a n_b / n."""
    n = a.n + b.n
    safe = np.where(n > 0, n, 1.0)
    delta = b.mean - a.mean
    mean = np.where(n > 0, a.mean + delta * (b.n / safe), 0.0)
    M2 = a.M2 + b.M2 + np.square(delta) * (a.n * b.n / safe)
    # a side with no values leaves the other exactly as it was
    mean = np.where(a.n == 0, b.mean, np.where(b.n == 0, a.mean, mean))
    return Moments(n, mean, M2)


def combine_all(pieces: Iterable[Moments | None]) -> Moments | None:
    """The moments of the union of ``pieces`` (None: a piece with no columns), in order."""
    total: Moments | None = None
    for piece in pieces:
        if piece is not None:
            total = piece if total is None else combine(total, piece)
    return total


# ----------------------------------------------------------------------------- counts
@dataclass(frozen=True)
class Counts:
    """Distinct values (sorted) and how often each occurs."""

    values: Array
    counts: Array


def counts(values: Array) -> Counts:
    """The distinct values of a 1-D array (numbers, or text as ``str``) and their counts."""
    distinct, number = np.unique(np.asarray(values), return_counts=True)
    return Counts(distinct, number.astype(np.int64))


def merge_counts(pieces: Iterable[Counts | None]) -> Counts | None:
    """The counts of the union: counts of equal values summed."""
    kept = [p for p in pieces if p is not None and len(p.values)]
    if not kept:
        return None
    values = np.concatenate([p.values for p in kept])
    distinct, where = np.unique(values, return_inverse=True)
    number = np.bincount(where.ravel(), weights=np.concatenate([p.counts for p in kept]))
    return Counts(distinct, np.rint(number).astype(np.int64))


def most_frequent(merged: Counts) -> Any:
    """The most frequent value; among ties the smallest (``SimpleImputer``'s rule)."""
    best = merged.counts == merged.counts.max()
    return merged.values[np.flatnonzero(best)[0]]  # values are sorted: the first is smallest


# ----------------------------------------------------------------------------- selection
_MAGNITUDE = np.int64(0x7FFFFFFFFFFFFFFF)


def _keys(values: Array) -> Array:
    """float64 values as int64 keys in the same order (-0.0 as 0.0; no NaN)."""
    bits = (np.asarray(values, dtype=np.float64) + 0.0).view(np.int64)
    return np.where(bits < 0, bits ^ _MAGNITUDE, bits)


def _value(key: int) -> float:
    bits = np.int64(key)
    bits = bits ^ _MAGNITUDE if bits < 0 else bits
    return float(np.array([bits], dtype=np.int64).view(np.float64)[0])


SMALL = 65536  # a bin holding at most this many values (over all ranks) is gathered


def order_statistics(
    passes: Callable[[], Iterable[Sequence[Array]]],
    wanted: Sequence[Sequence[int]],
    agreement: Agreement,
    bounds: Sequence[tuple[float, float, int]] | None = None,
) -> list[list[float]]:
    """The k-th smallest present values (k from 0, over all ranks) of each column, exactly.

    ``passes()`` yields, once per call, this rank's pieces: a sequence with one 1-D float64
    array of present values per column. ``wanted[j]`` lists the orders k wanted of column j
    (each < its global count); ``bounds[j]``, when known, is its global (min, max, count). Each
    round is one pass: a histogram of the open interval's keys in ``BINS`` bins, or, once the
    bin holds at most ``SMALL`` values, those values gathered. Every rank calls this together.
    """
    targets: list[
        list[Any]
    ] = []  # column j, order k, key interval [lo, hi], values below lo, values inside
    for j, ks in enumerate(wanted):
        lo, hi, n = -(2**63), 2**63 - 1, None
        if bounds is not None:
            lo, hi = (int(key) for key in _keys(np.array(bounds[j][:2], dtype=np.float64)))
            n = bounds[j][2]
        targets.extend([j, k, lo, hi, 0, n] for k in ks)
    while any(t[2] < t[3] for t in targets):
        open_ = [t for t in targets if t[2] < t[3]]
        gather = [t[5] is not None and t[5] <= SMALL for t in open_]
        width = [-(-(t[3] - t[2] + 1) // BINS) for t in open_]
        local = np.zeros((len(open_), BINS), dtype=np.int64)
        inside: list[list[Array]] = [[] for _ in open_]
        for piece in passes():
            for i, t in enumerate(open_):
                keys = _keys(piece[t[0]])
                keys = keys[(keys >= t[2]) & (keys <= t[3])]
                if gather[i]:
                    inside[i].append(keys)
                    continue
                offset = (keys.astype(np.uint64) - np.uint64(t[2] % 2**64)) // np.uint64(width[i])
                local[i] += np.bincount(offset.astype(np.int64), minlength=BINS)
        hist = agreement.sum(local)
        found = agreement.gather([np.concatenate(k) if k else None for k in inside])
        for i, t in enumerate(open_):
            if gather[i]:
                keys = np.sort(np.concatenate([r[i] for r in found if r[i] is not None]))
                t[2] = t[3] = int(keys[t[1] - t[4]])
                continue
            cumulative = t[4] + np.cumsum(hist[i])
            b = int(np.searchsorted(cumulative, t[1] + 1))  # the first bin reaching order k
            t[4] = int(cumulative[b - 1]) if b else t[4]
            t[5] = int(hist[i][b])
            t[2] = t[2] + b * width[i]
            t[3] = min(t[2] + width[i] - 1, t[3])
    out: list[list[float]] = [[] for _ in wanted]
    for t in targets:
        out[t[0]].append(_value(t[2]))
    return out


def median_of(values: Sequence[float], n: int) -> float:
    """NumPy's median from the middle order statistics: the value of order (n - 1) // 2, or
    the mean of orders n / 2 - 1 and n / 2 when n is even (0 when n is 0: no values)."""
    if n == 0:
        return 0.0
    return float(np.mean(values)) if n % 2 == 0 else float(values[0])


def middle_orders(n: int) -> list[int]:
    """The orders whose values give the median of n values."""
    if n == 0:
        return []
    return [(n - 1) // 2, n // 2] if n % 2 == 0 else [(n - 1) // 2]
