"""Validation sharded over the ranks (issue 25): each rank evaluates only its share of the
validation rows; the losses are summed and the predictions gathered, so every rank records
the numbers one process records (1e-10 in float64) and early stopping agrees.

One ``mpiexec -n 3`` runs every case (``main``), counting the validation columns each rank
passes forward; this process is the oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from betaprop.engine.network import Network
from betaprop.training.distributed import world
from betaprop.training.loop import fit
from betaprop.training.optimizers import SGD

from .test_distributed import ranks

pytest.importorskip("mpi4py")

ROOT = str(Path(__file__).parents[1])
RUN = "import sys; sys.path.insert(0, sys.argv[1])"
RUN += "; from tests.test_distributed_validation import main; main(sys.argv[2:])"
K, EPOCHS = 3, 4

# name: (validation rows, task, normalization)
CASES = {
    "classes_101_rows": (101, "classes", None),  # uneven shares: 34, 34, 33
    "numbers_101_rows_batch_norm": (101, "numbers", "batch"),  # R², running statistics
    "classes_2_rows": (2, "classes", None),  # fewer rows than ranks: rank 2 has none
}


def train(name: str, comm: object = None) -> tuple[Network, object, int]:
    """Train case ``name``; returns the network, its history and the validation columns
    this process passed forward."""
    n_val, task, normalization = CASES[name]
    rng = np.random.default_rng(11)
    X = rng.standard_normal((120 + n_val, 5))
    if task == "classes":
        D = np.eye(3)[rng.integers(0, 3, len(X))]
        net = Network([5, 8, 3], "tanh", loss="cross_entropy", dtype="float64", seed=2,
                      normalization=normalization)  # fmt: skip
    else:
        D = X[:, :2] @ rng.standard_normal((2, 2)) + 0.1 * rng.standard_normal((len(X), 2))
        net = Network([5, 8, 2], "tanh", loss="squared_error", dtype="float64", seed=2,
                      normalization=normalization)  # fmt: skip
    columns = 0
    forward = net.forward_columns

    def counted(x: np.ndarray, training: bool = False, new_masks: bool = True) -> np.ndarray:
        nonlocal columns
        if not training:  # validation passes (training passes are the batches')
            columns += x.shape[1]
        return forward(x, training, new_masks)

    net.forward_columns = counted  # type: ignore[method-assign]
    history = fit(
        net, X[:120], D[:120], optimizer=SGD(0.05, momentum=0.9), epochs=EPOCHS, batch_size=16,
        seed=4, validation_data=(X[120:], D[120:]), comm=comm,
    )  # fmt: skip
    return net, history, columns


def main(argv: list[str]) -> None:
    """OUT: every case on every rank; rank 0 saves the histories and every rank's count."""
    comm = world()
    assert comm is not None and comm.Get_size() == K
    saved = {}
    for name in CASES:
        net, history, columns = train(name, comm)
        saved[f"{name}.val_loss"] = np.array(history.val_loss)
        saved[f"{name}.val_score"] = np.array(history.val_score)
        saved[f"{name}.params"] = net.params
        saved[f"{name}.columns"] = np.array(comm.allgather(columns))
        # every rank recorded the same numbers (bit for bit: early stopping agrees)
        same = comm.allgather((history.val_loss, history.val_score))
        saved[f"{name}.agree"] = np.array(all(other == same[0] for other in same))
    if comm.Get_rank() == 0:
        np.savez(argv[0], **saved)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("validation") / "histories.npz"
    done = ranks(K, "-c", RUN, ROOT, str(out))
    assert done.returncode == 0, done.stderr
    return dict(np.load(out))


@pytest.mark.parametrize("name", list(CASES))
def test_sharded_validation_equals_one_process(parallel, name):
    net, history, _ = train(name)
    np.testing.assert_allclose(parallel[f"{name}.val_loss"], history.val_loss, rtol=0, atol=1e-10)
    np.testing.assert_allclose(parallel[f"{name}.val_score"], history.val_score, rtol=0, atol=1e-10)
    np.testing.assert_allclose(parallel[f"{name}.params"], net.params, rtol=0, atol=1e-10)
    assert bool(parallel[f"{name}.agree"])


@pytest.mark.parametrize("name", list(CASES))
def test_each_rank_evaluates_only_its_share(parallel, name):
    n_val = CASES[name][0]
    columns = parallel[f"{name}.columns"]
    assert columns.sum() == n_val * EPOCHS  # every row once per epoch, over all ranks
    assert columns.max() <= -(-n_val // K) * EPOCHS  # no rank more than its share
