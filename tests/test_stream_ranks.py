"""fit(net, stream, comm=) on K = 2 real MPI ranks (mpiexec): each rank streams its own parts.

The global batches of K ranks are not one process's (each rank draws from its own buffer),
but they are known: global batch j is rank 0's share followed by rank 1's
(``Stream.row_order(ranks=(r, K))``), and a rank whose rows ran out adds nothing. The
oracle is one process running ``train_step`` on exactly those global batches: K ranks must
equal it to 1e-10 (batch normalisation's sums and dropout's masks included).
"""

from __future__ import annotations

import numpy as np
import pytest

import betaprop as bp
from betaprop.training.optimizers import get_optimizer
from betaprop.training.stream import Stream

from .test_distributed import MPIEXEC, ranks

pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")

CUTS = [0, 300, 310, 700, 1005]  # rank 0 owns the first three parts (700 rows), rank 1 305

WORKER = """
import sys
import numpy as np
from mpi4py import MPI
import betaprop as bp
from tests.test_stream_ranks import network, stream
out, normalization, dropout = sys.argv[1], sys.argv[2], float(sys.argv[3])
net = network(normalization, dropout)
history = bp.fit(net, stream(), epochs=2, seed=11, batch_size=32, comm=MPI.COMM_WORLD)
rank = MPI.COMM_WORLD.Get_rank()
np.savez(f"{out}.{rank}.npz", params=net.params, stats=net.stats, loss=history.loss)
"""


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(CUTS[-1], 3))
    return X, (X[:, :1] - X[:, 1:2] > 0).astype(float)


def stream() -> Stream:
    X, D = data()
    pieces = [(X[a:b], D[a:b]) for a, b in zip(CUTS, CUTS[1:], strict=False)]
    return Stream.from_arrays(pieces, shuffle_buffer=200)  # 100 rows a rank


def network(normalization: str | None = None, dropout: float = 0.0) -> bp.Network:
    norm = None if normalization in (None, "none") else normalization
    return bp.Network([3, 8, 8, 1], loss="binary_cross_entropy", dtype="float64", seed=0,
                      normalization=norm, dropout=dropout)  # fmt: skip


def one_process(normalization: str | None, dropout: float) -> tuple[bp.Network, list[float]]:
    """train_step on the global batches that 2 ranks form (rank 0's rows, then rank 1's)."""
    X, D = data()
    least = 2 if normalization else 1
    shares = [stream().row_order(11, 2, 32, ranks=(r, 2), least=least) for r in range(2)]
    net = network(normalization, dropout)
    optimizer = get_optimizer("adam")
    state = optimizer.init(net.params)
    losses = []
    for epoch in range(2):
        total = 0.0
        for ours, theirs in zip(shares[0][epoch], shares[1][epoch], strict=True):
            rows = np.concatenate([ours, theirs])
            loss = bp.train_step(net, optimizer, state, X[rows].T, D[rows].T)
            total += loss * len(rows)
        losses.append(total / len(X))
    return net, losses


@pytest.mark.parametrize("normalization,dropout", [("none", 0.0), ("batch", 0.25)])
def test_two_ranks_equal_one_process_on_their_global_batches(tmp_path, normalization, dropout):
    out = str(tmp_path / "result")
    done = ranks(2, "-c", WORKER, out, normalization, str(dropout))
    assert done.returncode == 0, done.stderr
    oracle, losses = one_process(None if normalization == "none" else normalization, dropout)
    for rank in range(2):
        result = np.load(f"{out}.{rank}.npz")
        np.testing.assert_allclose(result["params"], oracle.params, rtol=0, atol=1e-10)
        np.testing.assert_allclose(result["loss"], losses, rtol=0, atol=1e-10)
    if normalization == "batch":
        np.testing.assert_allclose(result["stats"], oracle.stats, rtol=0, atol=1e-10)


def test_shares_of_two_ranks_cover_every_row_once():
    """Rank 0's 700 rows and rank 1's 305 (the last batch of 17: one row joined it) make
    44 global batches; rank 1 takes part with stand-ins after its 19th."""
    shares = [stream().row_order(11, 1, 32, ranks=(r, 2), least=2)[0] for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 44
    assert [len(b) for b in shares[1]][17:21] == [16, 17, 0, 0]
    rows = np.concatenate([np.concatenate(s) for s in shares])
    np.testing.assert_array_equal(np.sort(rows), np.arange(CUTS[-1]))
    assert set(np.concatenate(shares[1])) == set(range(700, 1005))


FIRST_PASS = """
import json, sys
from mpi4py import MPI
from betaprop.files.table_stream import table_stream
path, out = sys.argv[1], sys.argv[2]
stream = table_stream(path, part_bytes=1, dtype="float64", impute="median", indicator=True,
                      comm=MPI.COMM_WORLD)
rank = MPI.COMM_WORLD.Get_rank()
with open(f"{out}.{rank}.json", "w") as handle:
    json.dump({"rows": stream.rows, "prep": stream.preprocessing.to_dict()}, handle)
"""


def test_the_first_pass_on_two_ranks_learns_what_one_process_learns(tmp_path):
    """Each part read by one rank, statistics agreed by reduction (files.agreement): the
    same row counts and Preprocessing as one process, a median and categories included."""
    import json

    import pandas as pd

    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    from betaprop.files.table_stream import table_stream

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(3000, 3)) * [1, 50, 1e-2], columns=list("abc"))
    frame.insert(1, "city", np.where(rng.random(3000) < 0.3, "Paris", "Oslo"))
    frame.loc[::9, "b"] = np.nan
    frame["y"] = rng.integers(0, 3, 3000)
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=500)
    out = str(tmp_path / "prep")
    done = ranks(2, "-c", FIRST_PASS, path, out)
    assert done.returncode == 0, done.stderr
    one = table_stream(path, part_bytes=1, dtype="float64", impute="median", indicator=True)
    expected = one.preprocessing.to_dict()
    for rank in range(2):
        with open(f"{out}.{rank}.json") as handle:
            result = json.load(handle)
        assert result["rows"] == one.rows
        for key, value in expected.items():
            if key in ("mean", "scale"):
                np.testing.assert_allclose(result["prep"][key], value, rtol=1e-12)
            else:
                assert result["prep"][key] == value, key
