"""Data parallel training where each process holds only its own rows (``fit(..., rows=)``).

The rows of the training set keep their global numbers 0..n-1; process r holds some of them
(X_r, D_r) and passes their numbers ``rows``. The shuffle stays global (one seed over 0..n-1),
so every global mini-batch is one process's batch; each of its rows is taken by the process
that holds it (``Ownership.take``), with weight m_r / B (or w_i m_r / W with sample weights),
and a process that holds none of the batch's rows joins every sum with zeros
(``ShardBatches``). So K processes compute what one process computes on the same
global batches, whatever K and whichever process holds which rows. Shares of a batch are no
longer balanced to one row but follow the ownership (binomial for contiguous blocks).

Validation rows are sharded the same way: each process evaluates its own, and the loss and the
score are sums all-reduced (``evaluate_own``). Memory beyond the rows held: the order of the
global shuffle (n integers, as one process holds), and with sample weights all n weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from ..engine.checks import finite_weights
from ..engine.network import Network
from .batches import Batches
from .launch import mpi

__all__ = ["Ownership", "ShardBatches", "shard", "own_rows", "evaluate_own", "all_weights"]

Array = np.ndarray


class Ownership:
    """Which global rows this process holds, and where they are in its X.

    Collective: every process constructs it with its own ``rows`` (the global numbers of
    its X's rows, in X's order); n is their total count. Refused (ValueError, the same on
    every process) unless the processes' rows together are 0..n-1, each exactly once.
    """

    def __init__(self, rows: Any, comm: Any) -> None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise ValueError(f"rows must be a 1-D array of integers, got {rows!r}")
        rows = rows.astype(np.int64, copy=False)
        self.n = int(comm.allreduce(len(rows)))
        inside = bool(((rows >= 0) & (rows < self.n)).all())
        if not comm.allreduce(inside, op=mpi().LAND):
            raise ValueError(
                f"rows must be global row numbers in [0, n) = [0, {self.n}) (n: all "
                "processes' rows together), got numbers outside on some process"
            )
        held = np.zeros(self.n, dtype=bool)
        held[rows] = True
        bits = np.packbits(held)
        del held
        comm.Allreduce(mpi().IN_PLACE, bits, op=mpi().BOR)  # the rows some process holds
        covered = int(np.unpackbits(bits, count=self.n).sum()) if self.n else 0
        if covered != self.n:  # n numbers that miss a row: some row is held twice
            raise ValueError(
                f"rows must number each of the n = {self.n} rows on exactly one process, "
                f"got {self.n - covered} rows held twice (and as many held nowhere)"
            )
        self.rows = rows
        self.sorter = np.argsort(rows, kind="stable")  # X's row of each sorted number
        self.sorted = rows[self.sorter]

    def take(self, idx: Array) -> tuple[Array, Array]:
        """Of a global batch ``idx`` (global row numbers): the positions in the batch of this
        process's rows (ascending), and those rows' places in its X."""
        if not len(self.sorted):
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        place = np.searchsorted(self.sorted, idx)
        place[place == len(self.sorted)] = 0
        positions = np.flatnonzero(self.sorted[place] == idx)
        return positions, self.sorter[place[positions]]


def own_rows(
    net: Network, X: Any, D: Any, validation_data: Any, comm: Any
) -> tuple[Any, Array, tuple[Any, Array] | None]:
    """X, D and validation data of this process as ``fit`` checks them, where none is allowed
    (a process may hold no rows): ``check_X``/``check_D`` on rows, else empty arrays."""
    if comm is None:
        raise ValueError("rows is for data parallel training: it needs comm, got None")
    X, D = _rows(net, X, D, "X", "D")
    if validation_data is not None:
        Xv, Dv = validation_data
        validation_data = _rows(net, Xv, Dv, "validation X", "validation D")
    return X, D, validation_data


def _rows(net: Network, X: Any, D: Any, x_name: str, d_name: str) -> tuple[Any, Array]:
    if X.shape[0]:
        X = net.check_X(X)
        return X, net.check_D(D, X.shape[0], d_name)
    if X.ndim != 2 or X.shape[1] != net.sizes[0] or np.shape(D) != (0, net.sizes[-1]):
        raise ValueError(
            f"{x_name} and {d_name} without rows must have shapes (0, {net.sizes[0]}) and "
            f"(0, {net.sizes[-1]}), got {X.shape} and {np.shape(D)}"
        )
    if scipy.sparse.issparse(X):
        return scipy.sparse.csr_matrix(X, dtype=net.dtype), np.empty(D.shape, dtype=net.dtype)
    return np.empty(X.shape, dtype=net.dtype), np.empty(np.shape(D), dtype=net.dtype)


def all_weights(w: Array, ownership: Ownership, comm: Any) -> Array:
    """The n sample weights of all processes, by global row number (each process passed its
    own rows' weights, in its X's order): a batch's total weight W is then summed over the
    batch in its order, as one process sums it."""
    weights = finite_weights(w, len(ownership.rows), "sample_weight")
    counts = comm.allgather(len(weights))
    everyone = np.empty(ownership.n)
    comm.Allgatherv(weights, [everyone, counts])
    numbers = np.empty(ownership.n, dtype=np.int64)
    comm.Allgatherv(ownership.rows, [numbers, counts])
    result = np.empty(ownership.n)
    result[numbers] = everyone
    return result


def evaluate_own(
    net: Network, X: Any, D: Array, comm: Any, batch_size: int = 4096
) -> tuple[float, float]:
    """``loop.evaluate`` where each process holds its own rows (maybe none): (mean loss,
    score) over all processes' rows, from sums all-reduced.

    Accuracy: the number of right predictions, summed. R² = 1 - SS_res / SS_tot, with
    SS_tot = sum (d - mean d)^2 about the mean of all rows (a first sum gives it), not from
    sum d^2 (which cancels). The numbers one process computes, up to the order of the sums.
    """
    m, width = X.shape[0], net.sizes[-1]
    predictions = np.empty((m, width), dtype=net.dtype)
    total = 0.0
    for start in range(0, m, batch_size):
        x, d = X[start : start + batch_size].T, D[start : start + batch_size].T
        predictions[start : start + x.shape[1]] = net.forward_columns(x).T
        total += net.loss_value(d) * x.shape[1]
    n = int(comm.allreduce(m))
    total = float(comm.allreduce(total))
    if net.loss.classification:  # the loss's own score on this process's rows, times m
        right = round(net.loss.score(predictions, D) * m) if m else 0
        return total / n, comm.allreduce(right) / n
    sums = np.concatenate([D.sum(axis=0), [float(m)]]).astype(np.float64)
    comm.Allreduce(mpi().IN_PLACE, sums)
    mean = sums[:-1] / sums[-1]
    squares = np.array([np.sum((D - predictions) ** 2), np.sum((D - mean) ** 2)])
    comm.Allreduce(mpi().IN_PLACE, squares)
    residual, spread = squares
    return total / n, 1.0 - residual / spread if spread > 0 else 0.0


def shard(m: int, rank: int, size: int, least: int = 1) -> slice:
    """Rank ``rank``'s rows of a batch of m rows over ``size`` ranks.

    A rank that takes rows takes at least ``least`` (2 with batch normalisation, which the
    engine refuses on a single column): the first min(size, m // least) ranks share the
    rows (their shares differ by <= 1), the others get none (m < least * size only).
    """
    takers = max(1, min(size, m // least))
    if rank >= takers:
        return slice(m, m)
    base, extra = divmod(m, takers)
    lo = rank * base + min(rank, extra)
    return slice(lo, lo + base + (rank < extra))


class BatchSumOverRanks:
    """The batch-norm hook: sums (N_q, 1) statistics over the ranks in place; n: batch size.

    ``empty``: this rank has no rows in the batch (it runs a stand-in column, see
    ``ShardBatches.gather``): it adds zeros, so the sums are those of the real rows.
    """

    def __init__(self, comm: Any) -> None:
        self.comm, self.op, self.n, self.empty = comm, mpi().IN_PLACE, 0, False

    def __call__(self, a: Array) -> None:
        if self.empty:
            a.fill(0.0)  # no rows here: nothing to add
        self.comm.Allreduce(self.op, a)  # the default op is the sum


class ShardBatches(Batches):
    """This rank's rows of each global mini-batch, with weights making its share of the mean.

    Whole data on every rank (``owner`` None): rank r takes the ``shard`` of each batch,
    balanced to one row. Own rows only (``owner``, sharded): the rows of the batch it holds.
    """

    def __init__(
        self,
        net: Network,
        X: Any,
        D: Array,
        w: Array | None,
        batch_size: int,
        comm: Any,
        owner: Ownership | None = None,
    ) -> None:
        self.rank, self.size, self.owner = comm.Get_rank(), comm.Get_size(), owner
        # A rank's share of a batch of m rows, or its stand-in columns, hold at least as
        # many as the layers' operations need in training (batch norm: 2), unless it holds
        # its own rows (then any number: the statistics are summed over the whole batch)
        least = max(op.min_batch for ops in net.ops for op in ops)
        self.least = 1 if owner is not None else least
        # the largest share: ceil(B / K), or < 2 least when fewer ranks than K take rows,
        # or the whole batch when sharded (``Batches`` adds the row a last single example
        # brings with batch normalisation)
        share = max(-(-batch_size // self.size), 2 * self.least)
        share = batch_size if owner is not None else share
        super().__init__(net, X, D, None, share)
        self.sample_weight = w if owner is None or w is None else all_weights(w, owner, comm)
        self.sw = np.empty((1, share + any(net.normalized)), dtype=net.dtype)
        self.rows: slice | Array = slice(0, 0)  # this rank's columns of the last batch
        self.batch_sum = BatchSumOverRanks(comm)

    def mine(self, idx: Array) -> tuple[slice | Array, Array]:
        """This rank's columns of the global batch ``idx`` and their rows in its X."""
        if self.owner is not None:
            return self.owner.take(idx)
        columns = shard(len(idx), self.rank, self.size, self.least)
        return columns, idx[columns]

    def gather(self, idx: Array) -> tuple[Array, Array, Array | None, float]:
        """Columns x, d of this rank's rows, weights w_i m_r / W (1, m_r), and W.

        A rank without rows in the batch (B < K, or a short last batch) gets stand-in
        columns of zeros with weight 0 (one; two with batch normalisation): it runs the same
        steps, so it joins every collective call the engine makes (batch norm's sums,
        through ``batch_sum``, which then adds zeros) and the gradients' Allreduce, where
        ``DataParallel.step`` sends zeros.
        """
        B = len(idx)
        self.rows, local = self.mine(idx)
        self.batch_sum.n, self.batch_sum.empty = B, not len(local)
        if not len(local):
            return self._stand_in(idx)
        x, d, _, m = super().gather(local)
        w = self.sw[:, : len(local)]
        if self.sample_weight is None:
            total = float(B)
            w.fill(m / total)
        else:  # the same sum as one process's gather: over the batch, in its order
            total = float(np.take(self.sample_weight, idx).sum())
            if total <= 0:
                return x, d, None, 0.0
            mine = idx[self.rows]  # global numbers (sharded) or rows of the whole X
            np.multiply(np.take(self.sample_weight, mine), m / total, out=w[0])
        return x, d, w, total

    def _stand_in(self, idx: Array) -> tuple[Array, Array, Array | None, float]:
        """No rows here: ``least`` columns of zeros, weight 0, and the batch's total weight W."""
        total = float(len(idx))
        if self.sample_weight is not None:  # the same sum as the ranks with rows
            total = float(np.take(self.sample_weight, idx).sum())
        m = self.least
        if self.sparse:
            x = scipy.sparse.csr_matrix((m, self.X.shape[1]), dtype=self.x.dtype)
        else:
            x = self.x[:m]
            x.fill(0.0)
        d, w = self.d[:m], self.sw[:, :m]
        d.fill(0.0)
        w.fill(0.0)
        if total <= 0:
            return x.T, d.T, None, 0.0
        return x.T, d.T, w, total
