"""Data parallel training over MPI: K processes compute what one process computes on batch B.

``fit(net, X, D, ..., comm=MPI.COMM_WORLD)`` with K processes (ranks): every global
mini-batch of B rows is split over the ranks (shares differ by at most one row, the last
batch of an epoch too; rank r takes rows lo_r..hi_r of the batch). Each rank runs steps 2-5
on its columns with per-example weights w_i = m_r / W (m_r its rows, W the batch's total
weight: B without sample weights), so its loss and gradient are its share of the global
batch mean; one ``Allreduce`` sums the flat gradients, the loss and a stop flag (Ctrl-C on
any rank), and every rank applies the same step 6. A stop signal acts only through that sum,
so every rank stops after the same batch (``_AgreedGuard``). Batch normalisation sums its
per-neuron statistics (step 2) and its two column means (step 4) over the ranks through the
network's ``batch_sum`` hook (``engine.normalization.BatchSum``). Dropout: every rank draws
the (N_q, B) masks of the whole batch from the same generator, as one process does, and keeps
the columns of its rows. The result equals the one-process run up to the order of the sums
(1e-12 in float64). A global batch may leave a rank without rows (B < K, a short last
batch; with batch normalisation a rank takes 2 rows or none): that rank runs stand-in
columns of weight 0 and adds zeros to every sum, so batches of any size are allowed.

Every rank passes the whole data set (the same X, D and seed: the same shuffling order) and
takes its rows of each global batch; rank 0's initial weights are broadcast. Validation is
sharded (``DataParallel.evaluate``: each rank passes its share of the rows forward, the
losses are summed and the predictions gathered), and schedules and early stopping run on
every rank on the same numbers, so every rank takes the same decisions. ``python -m
betaprop`` under ``mpiexec`` stops every rank when one fails (``run_main``). mpi4py is
optional: ``pip install "betaprop[mpi]"``.
"""

from __future__ import annotations

import contextlib
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse

from ..engine.network import Network
from ..engine.normalization import draw_mask
from .batches import Batches
from .interrupt import SIGNALS, InterruptGuard
from .launch import (
    INSTALL,
    LaunchError,
    blas_threads,
    check_connected,
    cpus,
    is_lead,
    launched,
    mpi,
    node_size,
    rank_label,
    world,
)
from .loop import Penalty, update_step
from .optimizers import Optimizer

__all__ = [
    "DataParallel",
    "world",
    "shard",
    "run_main",
    "INSTALL",
    "LaunchError",
    "launched",
    "rank_label",
    "blas_threads",
    "node_size",
    "is_lead",
]

Array = np.ndarray


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


class _BatchSum:
    """The batch-norm hook: sums (N_q, 1) statistics over the ranks in place; n: batch size.

    ``empty``: this rank has no rows in the batch (it runs a stand-in column, see
    ``_ShardBatches.gather``): it adds zeros, so the sums are those of the real rows.
    """

    def __init__(self, comm: Any) -> None:
        self.comm, self.op, self.n, self.empty = comm, mpi().IN_PLACE, 0, False

    def __call__(self, a: Array) -> None:
        if self.empty:
            a.fill(0.0)  # no rows here: nothing to add
        self.comm.Allreduce(self.op, a)  # the default op is the sum


class _AgreedGuard(InterruptGuard):
    """The Ctrl-C guard of data parallel training: a stop signal acts through the all-reduce.

    A signal handler runs between any two bytecodes, so a flag it set could be seen by one
    rank right after a batch's ``Allreduce`` and by another only after the next one: the
    first would stop while the second waits in the next ``Allreduce`` (a hang). Here the
    handler records only this rank's ``asked`` (the signal's number); ``DataParallel.step``
    sends it with the gradients and sets ``requested`` and ``signal``, which ``fit`` reads,
    from the sum: every rank stops after the same batch. A second signal on a rank raises
    ``KeyboardInterrupt`` at once, as in one process (``run_main`` then stops every rank).
    """

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0  # the signal that asked this rank to stop; 0: none yet

    def _handle(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = signum


# The signal on which every rank of this process's data parallel training agreed to stop
# (0: none); ``run_main`` reads it: after an agreed stop the ranks meet at the end, any other
# interruption (outside training, a second signal) may find the others anywhere and aborts.
_agreed_signal = 0


class _ShardBatches(Batches):
    """This rank's rows of each global mini-batch, with weights making its share of the mean."""

    def __init__(
        self, net: Network, X: Any, D: Array, w: Array | None, batch_size: int, comm: Any
    ) -> None:
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # A rank's share of a batch of m rows, or its stand-in columns, hold at least as
        # many as the layers' operations need in training (batch norm: 2)
        self.least = max(op.min_batch for ops in net.ops for op in ops)
        # the largest share: ceil(B / K), or < 2 least when fewer ranks than K take rows
        # (``Batches`` adds the row a last single example brings with batch normalisation)
        share = max(-(-batch_size // self.size), 2 * self.least)
        super().__init__(net, X, D, None, share)
        self.sample_weight = w
        self.sw = np.empty((1, share), dtype=net.dtype)
        self.rows = slice(0, 0)  # this rank's columns of the last global batch
        self.batch_sum = _BatchSum(comm)

    def gather(self, idx: Array) -> tuple[Array, Array, Array | None, float]:
        """Columns x, d of this rank's rows, weights w_i m_r / W (1, m_r), and W.

        A rank without rows in the batch (B < K, or a short last batch) gets stand-in
        columns of zeros with weight 0 (one; two with batch normalisation): it runs the same
        steps, so it joins every collective call the engine makes (batch norm's sums,
        through ``batch_sum``, which then adds zeros) and the gradients' Allreduce, where
        ``DataParallel.step`` sends zeros.
        """
        B, self.rows = len(idx), shard(len(idx), self.rank, self.size, self.least)
        mine = idx[self.rows]
        self.batch_sum.n, self.batch_sum.empty = B, not len(mine)
        if not len(mine):
            return self._stand_in(idx)
        x, d, _, m = super().gather(mine)
        w = self.sw[:, : len(mine)]
        if self.sample_weight is None:
            total = float(B)
            w.fill(m / total)
        else:  # the same sum as one process's gather: over the batch, in its order
            total = float(np.take(self.sample_weight, idx).sum())
            if total <= 0:
                return x, d, None, 0.0
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


class DataParallel:
    """What ``fit(..., comm=)`` needs: checks, the rank's batches, the synchronised step.

    Construct on every rank (it communicates): it checks that the ranks agree on the
    settings and data, broadcasts rank 0's weights and, for ``seed=None``, one seed.
    """

    def __init__(self, comm: Any, net: Network, X: Any, D: Array, settings: dict) -> None:
        self.MPI = mpi()
        if not isinstance(comm, self.MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator, got {comm!r}")
        if comm == self.MPI.COMM_WORLD:
            check_connected(comm)  # K processes launched, each alone: refused
        self.comm, self.size = comm, comm.Get_size()
        batch_size = min(settings["batch_size"], X.shape[0])
        data = X.data if scipy.sparse.issparse(X) else X
        crc = zlib.crc32(_bytes(data), zlib.crc32(_bytes(D)))
        settings = dict(settings, data=crc)  # the same data on every rank (a checksum)
        gathered = comm.allgather(settings)
        for key, value in settings.items():
            values = [other[key] for other in gathered]
            if any(v != value for v in values):
                raise ValueError(
                    f"{key} must be the same on every rank (each rank passes the whole data "
                    f"set and the same settings), got {values!r}"
                )
        comm.Bcast(net.params, root=0)  # one start, even from differently seeded networks
        comm.Bcast(net.stats, root=0)
        state = comm.bcast(net.dropout_rng.bit_generator.state, root=0)
        net.dropout_rng.bit_generator.state = state  # one stream of dropout masks
        # dropout: room for the masks of a whole batch, (N_q, B) each (B + 1 with batch
        # normalisation: a last single example joins the batch before it)
        self.dropped = [q for q in range(1, net.Q) if net.p[q]]
        largest = batch_size + any(net.normalized)
        room = {q: net.sizes[q] * largest for q in self.dropped}
        self.masks = {q: np.empty(size, dtype=net.dtype) for q, size in room.items()}
        self.buffer = np.empty(net.n_params + 2, dtype=net.dtype)  # grads, loss, stop flag
        self.guard = _AgreedGuard()
        self.batches_made: _ShardBatches | None = None

    def seed(self, seed: int | None) -> int | None:
        """The shuffling seed, the same on every rank (rank 0's fresh one for None)."""
        if seed is None:
            seed = int(np.random.default_rng().integers(2**63))
        return int(self.comm.bcast(seed, root=0))

    def batches(self, net: Network, X: Any, D: Array, w: Array | None, size: int) -> Batches:
        self.batches_made = _ShardBatches(net, X, D, w, size, self.comm)
        return self.batches_made

    def threads(self) -> int:
        """BLAS threads for this rank: its CPUs, shared with the ranks of its node whose
        CPUs meet its own (``blas_threads``; the node's ranks: a shared-memory split)."""
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            mine = cpus()
            return blas_threads(mine, node.allgather(mine))
        finally:
            node.Free()

    @contextlib.contextmanager
    def attached(self, net: Network) -> Iterator[None]:
        """While training: the BLAS thread limit and the network's batch-norm hook."""
        from threadpoolctl import threadpool_limits

        assert self.batches_made is not None
        with threadpool_limits(limits=self.threads()):
            net.batch_sum = self.batches_made.batch_sum
            try:
                yield
            finally:
                net.batch_sum = None

    def step(
        self,
        net: Network,
        optimizer: Optimizer,
        state: dict,
        x: Array,
        d: Array,
        w: Array | None = None,
        penalty: Penalty | None = None,
        weight: float | None = None,
    ) -> float:
        """``train_step`` over all ranks: steps 2-5 on this rank's columns, one Allreduce of
        gradients, loss and stop flag, then the penalty (once, on the global batch) and the
        same step 6 on every rank."""
        if self.dropped:  # this rank's columns of the masks of the whole batch
            self._draw_masks(net, x.shape[1])
        # step 2 (batch-norm sums over all ranks)
        net.forward_columns(x, training=True, new_masks=not self.dropped)
        buffer, n = self.buffer, net.n_params
        assert self.batches_made is not None
        empty = self.batches_made.batch_sum.empty  # no rows here: a stand-in column
        buffer[n] = 0.0 if empty else net.loss_value(d, w)  # this rank's share of the loss
        net.backward(d, w)  # steps 3-5: this rank's share of the gradient
        if empty:
            buffer[:n] = 0.0  # weight 0 (the stand-in's numbers never leave the rank)
        else:
            buffer[:n] = net.grads
        buffer[n + 1] = self.guard.asked  # this rank's stop signal (0: none)
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer)  # the sum over the ranks
        net.grads[...] = buffer[:n]
        loss = float(buffer[n])
        if buffer[n + 1] and not self.guard.requested:  # a stop signal on some rank
            self._stop_together()  # every rank stops after this batch
        total = weight if weight is not None else float(x.shape[1])
        return update_step(net, optimizer, state, loss, penalty, total)

    def evaluate(
        self, net: Network, X: Any, D: Array, batch_size: int = 4096
    ) -> tuple[float, float]:
        """``loop.evaluate`` over the ranks: (mean loss, score) of ``net`` on X, D.

        Each rank runs the forward passes of its share of the rows (``shard``); one
        ``allreduce`` sums the losses, and an ``Allgatherv`` of the predictions (n, N_Q),
        small next to X, lets every rank compute the loss's own score (accuracy or R²) on
        all of them: the numbers one process computes, up to the order of the sums, and
        the same on every rank (early stopping agrees). X, D: checked (``fit``'s).
        """
        n, width = X.shape[0], net.sizes[-1]
        parts = [shard(n, rank, self.size) for rank in range(self.size)]
        mine = parts[self.comm.Get_rank()]
        predictions = np.empty((n, width), dtype=net.dtype)
        total = 0.0
        for start in range(mine.start, mine.stop, batch_size):
            stop = min(start + batch_size, mine.stop)
            x, d = X[start:stop].T, D[start:stop].T
            predictions[start:stop] = net.forward_columns(x).T
            total += net.loss_value(d) * (stop - start)
        total = float(self.comm.allreduce(total))  # the sum over the ranks
        counts = [(part.stop - part.start) * width for part in parts]
        self.comm.Allgatherv(self.MPI.IN_PLACE, [predictions, counts])
        return total / n, net.loss.score(predictions, D)

    def _draw_masks(self, net: Network, m: int) -> None:
        """Dropout: the (N_q, B) masks that one process draws for the whole batch, from the
        same generator in the same order (on every rank), and this rank's m columns."""
        assert self.batches_made is not None
        B, rows = self.batches_made.batch_sum.n, self.batches_made.rows
        mask = net.workspace(m).mask
        for q in self.dropped:
            whole = self.masks[q][: net.sizes[q] * B].reshape(net.sizes[q], B)
            draw_mask(net.dropout_rng, net.p[q], whole)
            if rows.stop > rows.start:
                np.copyto(mask[q], whole[:, rows])
            else:  # no rows here: the stand-in columns keep every unit
                mask[q].fill(1.0)

    def _stop_together(self) -> None:
        """Agree to stop after this batch, on one signal: the largest number asked."""
        global _agreed_signal
        signal = int(self.comm.allreduce(self.guard.asked, op=self.MPI.MAX))
        self.guard.signal, self.guard.requested = signal, True
        _agreed_signal = signal


def _bytes(a: Array) -> memoryview:
    """The bytes of an array, without a copy when it is contiguous."""
    return memoryview(np.ascontiguousarray(a).view(np.uint8).reshape(-1))  # type: ignore[arg-type]


def run_main(main: Callable[[], int]) -> int:
    """Run the command line; under mpiexec, a failure on one rank stops every rank.

    A rank that fails (an exception, an exit code other than 0 or an interruption's) prints
    one line naming itself and calls ``MPI_Abort``, which ends all ranks at once. A stop
    signal during training (Ctrl-C: SIGINT, SIGTERM, SIGHUP) is agreed by all ranks inside
    ``fit``: every rank stops after the same batch, rank 0 writes the checkpoint and model,
    the ranks wait for each other here and exit 128 + the signal (130 for Ctrl-C). An
    interruption that was not agreed (outside training, or a second signal) may find the
    other ranks anywhere, even inside a collective: it aborts them all, with the same code.
    """
    try:
        comm = world()
    except (LaunchError, ImportError) as error:  # started by a launcher, not connected
        print(f"betaprop: error: {error}", file=sys.stderr, flush=True)
        return 2
    if comm is None:
        return main()
    rank, size = comm.Get_rank(), comm.Get_size()
    try:
        code = main()
    except BaseException as error:  # noqa: BLE001 - every failure must stop all ranks
        message = f"{type(error).__name__}: {error}"
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
    else:
        message = f"exit code {code}"
    interrupted = code in {128 + int(number) for number in SIGNALS}
    if code == 0 or (interrupted and _agreed_signal):
        _wait_for_all(comm)  # every rank is done (rank 0's files are written)
        if code:  # under -m mpi4py, exiting non-zero without Finalize would call MPI_Abort
            mpi().Finalize()
        return code
    print(
        f"betaprop: rank {rank} of {size} {'interrupted' if interrupted else 'failed'} "
        f"({message}); stopping all ranks",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    comm.Abort(code)
    return code


def _wait_for_all(comm: Any) -> None:
    """A barrier that waits asleep: MPICH's blocking one spins at full speed (taking a core
    from rank 0 while it writes) and runs no Python signal handler until it returns."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.005)
