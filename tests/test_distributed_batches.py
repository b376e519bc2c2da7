"""Global batches of any size under MPI (issue 25): a rank without rows still takes part.

A global mini-batch of B rows over K ranks leaves ranks without rows when B < K, or when the
last batch of an epoch is short (301 rows in batches of 50: the last holds 1 row). Such a
rank runs one stand-in column of weight 0 and adds zeros to every sum (the gradients' and
batch norm's), so K processes still compute what one process computes. One ``mpiexec -n 3``
runs every case below (``main``) and saves the weights; this process is the oracle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from betaprop.engine.network import Network
from betaprop.training.distributed import world
from betaprop.training.loop import fit
from betaprop.training.optimizers import SGD, Adam

from .test_distributed import MPIEXEC, TIMEOUT, ranks

pytest.importorskip("mpi4py")

ROOT = str(Path(__file__).parents[1])
RUN = "import sys; sys.path.insert(0, sys.argv[1]); from tests.test_distributed_batches import main"
RUN += "; main(sys.argv[2:])"
K = 3

# name: (rows, batch size, optimizer, normalization, dropout, sample weights, sparse X)
CASES = {
    # the run: the last batch holds 1 row, so ranks 1 and 2 have none
    "301_rows_batch_50_sgd": (301, 50, "sgd", None, 0.0, False, False),
    "301_rows_batch_50_adam": (301, 50, "adam", None, 0.0, False, False),
    # batch norm merges a last single row into the batch before: 302 leaves 2 rows, rank 2 none
    "302_rows_batch_50_batch_norm": (302, 50, "sgd", "batch", 0.0, False, False),
    # a batch smaller than K: rank 2 never has a row
    "batch_2_of_3_ranks": (31, 2, "sgd", None, 0.0, False, False),
    "batch_2_of_3_ranks_batch_norm": (31, 2, "sgd", "batch", 0.0, False, False),
    "batch_2_of_3_ranks_batch_norm_dropout": (31, 2, "sgd", "batch", 0.3, False, False),
    # layer norm works per example: ranks take single rows (shares 1, 1, 0)
    "batch_2_of_3_ranks_layer_norm": (31, 2, "adam", "layer", 0.0, False, False),
    "301_rows_batch_50_sample_weights": (301, 50, "sgd", None, 0.0, True, False),
    "301_rows_batch_50_sparse": (301, 50, "sgd", None, 0.0, False, True),
}


def network(name: str) -> Network:
    normalization, dropout = CASES[name][3:5]
    return Network(
        [5, 8, 6, 3], "tanh", loss="cross_entropy", dtype="float64", seed=1,
        normalization=normalization, dropout=[dropout, 0.0],
    )  # fmt: skip


def train(name: str, comm: object = None) -> Network:
    n, batch, optimizer, _, _, weighted, sparse = CASES[name]
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n, 5))
    X[X < 0.3] = 0.0  # mostly zeros, for the sparse case
    D = np.eye(3)[rng.integers(0, 3, n)]
    weights = rng.uniform(0.0, 2.0, n) if weighted else None
    net = network(name)
    chosen = Adam(0.01) if optimizer == "adam" else SGD(0.05, momentum=0.9)
    fit(
        net, scipy.sparse.csr_matrix(X) if sparse else X, D, optimizer=chosen, epochs=3,
        batch_size=batch, seed=7, sample_weight=weights, comm=comm,
    )  # fmt: skip
    return net


def main(argv: list[str]) -> None:
    """OUT: every case on every rank; rank 0 saves the weights and statistics (npz)."""
    comm = world()
    assert comm is not None and comm.Get_size() == K
    saved = {}
    for name in CASES:
        net = train(name, comm)
        saved[f"{name}.params"], saved[f"{name}.stats"] = net.params, net.stats
    if comm.Get_rank() == 0:
        np.savez(argv[0], **saved)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("batches") / "weights.npz"
    done = ranks(K, "-c", RUN, ROOT, str(out))
    assert done.returncode == 0, done.stderr
    return dict(np.load(out))


@pytest.mark.parametrize("name", list(CASES))
def test_ranks_without_rows_still_equal_one_process(parallel, name):
    one = train(name)
    np.testing.assert_allclose(parallel[f"{name}.params"], one.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(parallel[f"{name}.stats"], one.stats, rtol=0, atol=1e-10)
    assert np.abs(one.params - network(name).params).max() > 1e-3  # it trained


@pytest.mark.parametrize("least", [1, 2])
def test_ranks_with_rows_take_at_least_the_least(least):
    from betaprop.training.distributed import shard

    for m in range(least, 40):
        for size in (1, 2, 3, 4, 5):
            parts = [shard(m, r, size, least) for r in range(size)]
            lengths = [p.stop - p.start for p in parts]
            assert sum(lengths) == m and parts[0].start == 0
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:], strict=False))
            taken = [n for n in lengths if n]
            assert min(taken) >= least and max(taken) - min(taken) <= 1
            assert len(taken) == min(size, m // least)  # as many ranks as can take rows


def test_the_command_line_trains_301_rows_in_batches_of_50_on_3_ranks(tmp_path):
    """The issue's run through ``betaprop train``: refused before, now equal to one process."""
    from betaprop.files.model import load

    rng = np.random.default_rng(0)
    X = rng.standard_normal((301, 3))
    table = np.c_[X, (X[:, 0] + X[:, 1] > 0).astype(int)]
    fmt = ["%.6f"] * 3 + ["%d"]
    np.savetxt(tmp_path / "d.csv", table, delimiter=",", header="a,b,c,label", comments="", fmt=fmt)
    args = ["-m", "betaprop", "train", "--data", "d.csv", "--target", "label", "--batch-size"]
    args += ["50", "--epochs", "3", "--hidden", "4", "--val-fraction", "0", "--test-fraction"]
    args += ["0", "--dtype", "float64", "--seed", "1", "--quiet", "--out"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    assert MPIEXEC is not None
    runs = {
        "three": [MPIEXEC, "-n", str(K), sys.executable, "-m", "mpi4py", *args, "three"],
        "one": [sys.executable, *args, "one"],
    }
    for command in runs.values():
        done = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, env=env
        )
        assert done.returncode == 0, done.stderr
    three, one = (
        load(tmp_path / "three" / "model.safetensors"),
        load(tmp_path / "one" / "model.safetensors"),
    )
    np.testing.assert_allclose(three.params, one.params, rtol=0, atol=1e-10)
