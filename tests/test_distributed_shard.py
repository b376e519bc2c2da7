"""Sharded data parallel training (issue 25): each rank holds only its own rows.

``fit(net, X_r, D_r, comm=, rows=)``: rank r passes only the rows it holds and their global
numbers; the shuffle is global, each row of a batch is taken by its owner, and a rank
without rows in a batch joins every sum with zeros. So K ranks equal one process on the same
global batches (1e-10 in float64), whoever holds which rows: contiguous blocks, rows dealt at
random, a rank holding none; with batch norm, layer norm, dropout, sample weights, sparse X
and sharded validation (losses and scores from sums). One ``mpiexec -n K`` runs every case
(``main``) for K = 2 and 3; this process, with all the rows, is the oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from betaprop.engine.network import Network
from betaprop.training.distributed import world
from betaprop.training.loop import fit
from betaprop.training.optimizers import SGD, Adam

from .test_distributed import ranks

pytest.importorskip("mpi4py")

ROOT = str(Path(__file__).parents[1])
RUN = "import sys; sys.path.insert(0, sys.argv[1])"
RUN += "; from tests.test_distributed_shard import main; main(sys.argv[2:])"

# name: (rows, batch, optimizer, normalization, dropout, weights, sparse, task, holding)
# holding: "blocks" (contiguous, as files are read), "dealt" (each row to a random rank),
# "last_empty" (the last rank holds no row at all)
CASES = {
    "blocks_sgd": (103, 16, "sgd", None, 0.0, False, False, "classes", "blocks"),
    "dealt_adam": (103, 16, "adam", None, 0.0, False, False, "classes", "dealt"),
    "301_rows_batch_50": (301, 50, "sgd", None, 0.0, False, False, "classes", "blocks"),
    "batch_norm_dealt": (103, 16, "sgd", "batch", 0.0, False, False, "classes", "dealt"),
    "batch_norm_302_rows": (302, 50, "sgd", "batch", 0.0, False, False, "classes", "blocks"),
    "layer_norm_adam": (103, 16, "adam", "layer", 0.0, False, False, "classes", "dealt"),
    "batch_norm_dropout": (103, 16, "sgd", "batch", 0.3, False, False, "classes", "dealt"),
    "dropout_adam": (103, 16, "adam", None, 0.3, False, False, "classes", "blocks"),
    "sample_weights": (103, 16, "sgd", None, 0.0, True, False, "classes", "dealt"),
    "sparse": (103, 16, "sgd", None, 0.0, False, True, "classes", "dealt"),
    "regression_r2": (103, 16, "sgd", "batch", 0.0, False, False, "numbers", "blocks"),
    "a_rank_holds_nothing": (103, 16, "sgd", "batch", 0.0, True, False, "classes", "last_empty"),
}
N_VAL = 41


def data(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """X, D and sample weights of all rows: training rows first, then N_VAL validation rows."""
    n, *_, weighted, _, task, _ = CASES[name]
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n + N_VAL, 5))
    X[X < 0.3] = 0.0  # mostly zeros, for the sparse case
    if task == "classes":
        D = np.eye(3)[rng.integers(0, 3, len(X))]
    else:
        D = X[:, :3] @ rng.standard_normal((3, 3)) + 0.1 * rng.standard_normal((len(X), 3))
    weights = rng.uniform(0.0, 2.0, n) if weighted else None
    return X, D, weights


def held(name: str, n: int, k: int, rank: int) -> np.ndarray:
    """The global numbers of the rows rank ``rank`` of k holds, in a shuffled order (the
    order of a rank's rows is its own business)."""
    holding = CASES[name][8]
    rng = np.random.default_rng(99)
    if holding == "dealt":
        owner = rng.integers(0, k, n)
    elif holding == "last_empty":
        owner = np.arange(n) * (k - 1) // n  # blocks over the first k - 1 ranks
    else:
        owner = np.arange(n) * k // n
    rows = np.flatnonzero(owner == rank)
    return rng.permutation(rows)


def network(name: str) -> Network:
    normalization, dropout, task = CASES[name][3], CASES[name][4], CASES[name][7]
    loss = "cross_entropy" if task == "classes" else "squared_error"
    return Network(
        [5, 8, 6, 3], "tanh", loss=loss, dtype="float64", seed=1,
        normalization=normalization, dropout=[dropout, 0.0],
    )  # fmt: skip


def train(name: str, comm: object = None) -> tuple[Network, object]:
    """Case ``name`` in one process (comm None: all rows) or sharded (this rank's rows)."""
    n, batch, optimizer, *_, sparse, _, _ = CASES[name]
    X, D, weights = data(name)
    train_rows, val_rows = np.arange(n), np.arange(n, n + N_VAL)
    rows = None
    if comm is not None:
        k, rank = comm.Get_size(), comm.Get_rank()  # type: ignore[attr-defined]
        rows = held(name, n, k, rank)
        val_rows = n + held(name, N_VAL, k, rank)
        train_rows = rows
    Xt = scipy.sparse.csr_matrix(X[train_rows]) if sparse else X[train_rows]
    net = network(name)
    chosen = Adam(0.01) if optimizer == "adam" else SGD(0.05, momentum=0.9)
    history = fit(
        net, Xt, D[train_rows], optimizer=chosen, epochs=3, batch_size=batch, seed=7,
        sample_weight=None if weights is None else weights[train_rows],
        validation_data=(X[val_rows], D[val_rows]), comm=comm, rows=rows,
    )  # fmt: skip
    return net, history


def main(argv: list[str]) -> None:
    """OUT: every case on every rank; rank 0 saves weights, statistics and histories."""
    comm = world()
    assert comm is not None
    saved = {}
    for name in CASES:
        net, history = train(name, comm)
        saved[f"{name}.params"], saved[f"{name}.stats"] = net.params, net.stats
        saved[f"{name}.val_loss"] = np.array(history.val_loss)  # type: ignore[attr-defined]
        saved[f"{name}.val_score"] = np.array(history.val_score)  # type: ignore[attr-defined]
        saved[f"{name}.loss"] = np.array(history.loss)  # type: ignore[attr-defined]
        everyone = comm.allgather(net.params)  # the same weights on every rank, bit for bit
        saved[f"{name}.same"] = np.array(all(np.array_equal(p, net.params) for p in everyone))
    if comm.Get_rank() == 0:
        np.savez(argv[0], **saved)


@pytest.fixture(scope="module", params=[2, 3])
def sharded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("shard") / "weights.npz"
    done = ranks(request.param, "-c", RUN, ROOT, str(out))
    assert done.returncode == 0, done.stderr
    return dict(np.load(out))


@pytest.mark.parametrize("name", list(CASES))
def test_sharded_ranks_equal_one_process(sharded, name):
    one, history = train(name)
    np.testing.assert_allclose(sharded[f"{name}.params"], one.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sharded[f"{name}.stats"], one.stats, rtol=0, atol=1e-10)
    for series in ("loss", "val_loss", "val_score"):
        np.testing.assert_allclose(
            sharded[f"{name}.{series}"], getattr(history, series), rtol=0, atol=1e-10
        )
    assert sharded[f"{name}.same"]
    assert np.abs(one.params - network(name).params).max() > 1e-3  # it trained


def test_every_rank_holds_a_share_in_each_case():
    """The holdings are what the cases say: a partition, uneven, one rank empty where named."""
    for name, case in CASES.items():
        n = case[0]
        for k in (2, 3):
            parts = [held(name, n, k, rank) for rank in range(k)]
            assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))
            empty = [rank for rank in range(k) if not len(parts[rank])]
            assert empty == ([k - 1] if case[8] == "last_empty" else [])


BAD = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from betaprop.engine.network import Network
from betaprop.training.distributed import world
from betaprop.training.loop import fit
comm = world(); rank = comm.Get_rank()
rows = {"twice": [np.arange(0, 6), np.arange(5, 10)],
        "outside": [np.arange(5), np.arange(5, 11) + 1],
        "columns": [np.arange(5), np.arange(5, 10)]}[sys.argv[3]][rank]
width = 4 if sys.argv[3] == "columns" and rank == 1 else 3
net = Network([width, 2], loss="cross_entropy", dtype="float64", seed=0)
X, D = np.ones((len(rows), width)), np.eye(2)[np.arange(len(rows)) % 2]
try:
    fit(net, X, D, epochs=1, batch_size=4, seed=0, comm=comm, rows=rows)
except ValueError as error:
    open(f"{sys.argv[2]}.{rank}", "w").write(str(error))
"""


@pytest.mark.parametrize(
    "fault, says",
    [
        ("twice", "rows must number each of the n = 11 rows on exactly one process"),
        ("outside", "rows must be global row numbers in [0, n) = [0, 11)"),
        ("columns", "columns must be the same on every rank"),
    ],
)
def test_rows_that_are_not_a_partition_are_refused_on_every_rank(tmp_path, fault, says):
    """Refused with the same ValueError on both ranks (none waits alone in a collective)."""
    out = tmp_path / "error"
    done = ranks(2, "-c", BAD, ROOT, str(out), fault)
    assert done.returncode == 0, done.stderr
    for rank in (0, 1):
        assert says in (tmp_path / f"error.{rank}").read_text()
