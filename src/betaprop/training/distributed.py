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
takes its rows of each global batch; or, with ``fit(..., rows=)``, each rank passes only its
own rows and their global numbers, and takes the rows it holds of each global batch
(sharded: ``training.sharding``). Rank 0's initial weights are broadcast. Validation is
sharded (``DataParallel.evaluate``: each rank passes its share of the rows forward, the
losses are summed and the predictions gathered; sharded: scores from sums), and schedules
and early stopping run on every rank on the same numbers, so every rank takes the same
decisions. ``python -m betaprop`` under ``mpiexec`` stops every rank when one fails
(``run_main``). mpi4py is
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
from .sharding import Ownership, ShardBatches, evaluate_own, shard

__all__ = [
    "DataParallel",
    "world",
    "array_bytes",
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


class DataParallel:
    """What ``fit(..., comm=)`` needs: checks, the rank's batches, the synchronised step.

    Construct on every rank (it communicates): it checks that the ranks agree on the
    settings and data, broadcasts rank 0's weights and, for ``seed=None``, one seed.
    """

    def __init__(
        self, comm: Any, net: Network, X: Any, D: Array, settings: dict, rows: Any = None
    ) -> None:
        self.MPI = mpi()
        if not isinstance(comm, self.MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator, got {comm!r}")
        if comm == self.MPI.COMM_WORLD:
            check_connected(comm)  # K processes launched, each alone: refused
        self.comm, self.size = comm, comm.Get_size()
        self.owner = None if rows is None else Ownership(rows, comm)
        if self.owner is None:  # the same data on every rank (n and a checksum)
            self.n = X.shape[0]
            data = X.data if scipy.sparse.issparse(X) else X
            crc = zlib.crc32(array_bytes(data), zlib.crc32(array_bytes(D)))
            settings = dict(settings, n=self.n, data=crc)
        else:  # each rank its own rows: the same columns (n is their total)
            self.n = self.owner.n
            settings = dict(settings, columns=(X.shape[1], D.shape[1]))
        self._agree(settings)
        batch_size = min(settings["batch_size"], self.n)
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
        self.batches_made: ShardBatches | None = None

    def _agree(self, settings: dict) -> None:
        """Refuse (ValueError, on every rank) settings that differ between the ranks."""
        gathered = self.comm.allgather(settings)
        what = "the same settings" if self.owner else "the whole data set and the same settings"
        for key, value in settings.items():
            values = [other[key] for other in gathered]
            if any(v != value for v in values):
                raise ValueError(
                    f"{key} must be the same on every rank (each rank passes {what}), got "
                    f"{values!r}"
                )

    def seed(self, seed: int | None) -> int | None:
        """The shuffling seed, the same on every rank (rank 0's fresh one for None)."""
        if seed is None:
            seed = int(np.random.default_rng().integers(2**63))
        return int(self.comm.bcast(seed, root=0))

    def batches(self, net: Network, X: Any, D: Array, w: Array | None, size: int) -> ShardBatches:
        self.batches_made = ShardBatches(net, X, D, w, size, self.comm, self.owner)
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
        the same on every rank (early stopping agrees). X, D: checked (``fit``'s). Sharded
        (``fit(..., rows=)``): X, D are this rank's own validation rows (``evaluate_own``).
        """
        if self.owner is not None:
            return evaluate_own(net, X, D, self.comm, batch_size)
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
            if not self.batches_made.batch_sum.empty:
                np.copyto(mask[q], whole[:, rows])
            else:  # no rows here: the stand-in columns keep every unit
                mask[q].fill(1.0)

    def _stop_together(self) -> None:
        """Agree to stop after this batch, on one signal: the largest number asked."""
        global _agreed_signal
        signal = int(self.comm.allreduce(self.guard.asked, op=self.MPI.MAX))
        self.guard.signal, self.guard.requested = signal, True
        _agreed_signal = signal


def array_bytes(a: Array) -> memoryview:
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
