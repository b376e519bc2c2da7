"""Run by tests/test_distributed.py, alone or under mpiexec: train, then save the weights.

python tests/distributed_worker.py OUT OPTIMIZER NORMALIZATION [FAIL_RANK | checkpoint]

With ``checkpoint``: stop after epoch 2 of 4 and leave a checkpoint in the folder OUT.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

from betaprop.engine.network import Network
from betaprop.files.checkpoint import Checkpoint
from betaprop.training.distributed import world
from betaprop.training.loop import fit
from betaprop.training.optimizers import SGD, Adam
from betaprop.training.state import Callback, History

N, BATCH, EPOCHS = 103, 16, 4  # 103 = 6 batches of 16 and one of 7: uneven shards for 2, 3


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((N, 5))
    D = np.eye(3)[rng.integers(0, 3, N)]
    return X, D


def network(normalization: str | None) -> Network:
    return Network(
        [5, 8, 6, 3], "tanh", loss="cross_entropy", dtype="float64", seed=1,
        normalization=normalization,
    )  # fmt: skip


class StopAfter(Callback):
    """Stops training after an epoch (every rank alike), leaving the run resumable."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> bool:
        return epoch >= self.epoch


def train(
    optimizer: str, normalization: str | None, comm: object = None, callbacks: list = ()
) -> Network:
    net = network(normalization)
    X, D = data()
    chosen = Adam(0.01) if optimizer == "adam" else SGD(0.05, momentum=0.9)
    fit(
        net, X, D, optimizer=chosen, epochs=EPOCHS, batch_size=BATCH, seed=7, comm=comm,
        callbacks=callbacks,
    )  # fmt: skip
    return net


def main() -> None:
    out, optimizer, normalization = sys.argv[1], sys.argv[2], sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 4 else ""
    comm = world()  # MPI.COMM_WORLD under mpiexec -n K > 1, else None
    lead = comm is None or comm.Get_rank() == 0
    if comm is not None and mode == str(comm.Get_rank()):
        raise RuntimeError(f"rank {mode} fails on purpose")
    if comm is not None and mode == f"kill{comm.Get_rank()}":  # SIGKILL in the middle of training
        import betaprop as bp

        class Die(bp.Callback):
            def on_batch_end(self, net, epoch, batch, loss):  # type: ignore[no-untyped-def]
                if batch == 2:
                    os.kill(os.getpid(), signal.SIGKILL)

        train(optimizer, None, comm, [Die()])
        return
    normalization = None if normalization == "none" else normalization
    if mode == "checkpoint":
        callbacks = [StopAfter(2)] + ([Checkpoint(out, every=None)] if lead else [])
        train(optimizer, normalization, comm, callbacks)
        return
    net = train(optimizer, normalization, comm)
    if lead:
        np.savez(out, params=net.params, stats=net.stats)


if __name__ == "__main__":
    main()
