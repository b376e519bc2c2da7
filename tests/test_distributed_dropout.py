"""Dropout under MPI: K processes draw the masks one process draws, and keep their columns.

One process draws, for each dropped layer q in turn, an (N_q, B) mask for the whole batch
from ``net.dropout_rng``. Under ``comm=`` every rank draws the same (N_q, B) masks from the
same generator (rank 0's state, broadcast) and uses the columns of its own rows, so K
processes compute what one process computes (up to the order of the sums). The oracle is
``train`` below in this process; ``mpiexec -n K`` runs the same function (``main``) on the
data of tests/distributed_worker.py (103 rows in batches of 16: uneven shards).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from betaprop.engine.network import Network
from betaprop.files.checkpoint import Checkpoint, resume
from betaprop.training.distributed import world
from betaprop.training.loop import fit
from betaprop.training.optimizers import SGD, Adam

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

from .test_distributed import ranks  # noqa: E402

pytest.importorskip("mpi4py")

ROOT = str(Path(__file__).parents[1])
# under mpiexec: this module's main() on every rank
RUN = "import sys; sys.path.insert(0, sys.argv[1]); from tests.test_distributed_dropout import main"
RUN += "; main(sys.argv[2:])"


def train(
    optimizer: str,
    normalization: str | None,
    comm: object = None,
    callbacks: list = (),
    dropout: list[float] = [0.3, 0.2],  # noqa: B006 - never changed
) -> Network:
    net = Network(
        [5, 8, 6, 3], "tanh", loss="cross_entropy", dtype="float64", seed=1,
        normalization=normalization, dropout=dropout,
    )  # fmt: skip
    X, D = worker.data()
    chosen = Adam(0.01) if optimizer == "adam" else SGD(0.05, momentum=0.9)
    fit(
        net, X, D, optimizer=chosen, epochs=worker.EPOCHS, batch_size=worker.BATCH, seed=7,
        comm=comm, callbacks=callbacks,
    )  # fmt: skip
    return net


def main(argv: list[str]) -> None:
    """OUT OPTIMIZER NORMALIZATION [checkpoint]: train on every rank; rank 0 saves the
    weights (npz) or, with ``checkpoint``, stops after epoch 2 of 4 leaving a checkpoint."""
    out, optimizer, normalization = argv[0], argv[1], None if argv[2] == "none" else argv[2]
    comm = world()
    lead = comm is None or comm.Get_rank() == 0
    if argv[3:] == ["checkpoint"]:
        callbacks = [worker.StopAfter(2)] + ([Checkpoint(out, every=None)] if lead else [])
        train(optimizer, normalization, comm, callbacks)
        return
    net = train(optimizer, normalization, comm)
    if lead:
        state = net.dropout_rng.bit_generator.state["state"]["state"]
        np.savez(out, params=net.params, stats=net.stats, generator=np.array(str(state)))


def mpirun(k: int, *args: str) -> subprocess.CompletedProcess:
    return ranks(k, "-c", RUN, ROOT, *args)


@pytest.mark.parametrize(
    ("k", "optimizer", "normalization"),
    [(2, "sgd", "none"), (3, "adam", "none"), (3, "sgd", "batch")],
)
def test_k_processes_with_dropout_equal_one(tmp_path, k, optimizer, normalization):
    out = tmp_path / "params.npz"
    done = mpirun(k, str(out), optimizer, normalization)
    assert done.returncode == 0, done.stderr
    parallel = np.load(out)
    one = train(optimizer, None if normalization == "none" else normalization)
    np.testing.assert_allclose(parallel["params"], one.params, rtol=0, atol=1e-12)
    np.testing.assert_allclose(parallel["stats"], one.stats, rtol=0, atol=1e-12)
    # the generator went as far as one process's: every rank drew every mask of every batch
    assert str(parallel["generator"]) == str(one.dropout_rng.bit_generator.state["state"]["state"])
    # and the masks mattered: without dropout the weights are others
    plain = train(optimizer, None if normalization == "none" else normalization, dropout=[0, 0])
    assert np.abs(parallel["params"] - plain.params).max() > 1e-3


def test_checkpoint_of_an_mpi_run_with_dropout_resumes_in_one_process(tmp_path):
    """The checkpoint holds rank 0's dropout generator: where one process's masks go on from."""
    done = mpirun(3, str(tmp_path), "sgd", "none", "checkpoint")
    assert done.returncode == 0, done.stderr
    X, D = worker.data()
    net, history = resume(tmp_path, X, D)
    assert history.epoch == [1, 2, 3, 4]
    one = train("sgd", None)
    np.testing.assert_allclose(net.params, one.params, rtol=0, atol=1e-12)
