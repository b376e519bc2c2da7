"""Data parallel training over MPI (issue 13): K processes compute what one process computes.

Each test starts ``mpiexec -n K`` (from the ``mpich`` wheel of the ``mpi`` extra) on
tests/distributed_worker.py with a timeout, and compares with one process in this one.
103 examples in batches of 16 end with a batch of 7: uneven shards for K = 2 and 3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from betaprop.files.checkpoint import resume

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

pytest.importorskip("mpi4py")
WORKER = str(Path(__file__).parent / "distributed_worker.py")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
TIMEOUT = 120


def ranks(k: int, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``mpiexec -n k python -m mpi4py ARGS`` (a script and its arguments, or ``-c CODE
    ...``), one BLAS thread per rank."""
    assert MPIEXEC is not None, "mpiexec not found: pip install -e '.[mpi]'"
    command = [MPIEXEC, "-n", str(k), sys.executable, "-m", "mpi4py", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def mpirun(k: int, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """tests/distributed_worker.py on k ranks."""
    return ranks(k, WORKER, *args, timeout=timeout)


@pytest.mark.parametrize("normalization", ["none", "batch"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("k", [2, 3])
def test_k_processes_equal_one(tmp_path, k, optimizer, normalization):
    out = tmp_path / "params.npz"
    done = mpirun(k, str(out), optimizer, normalization)
    assert done.returncode == 0, done.stderr
    parallel = np.load(out)
    one = worker.train(optimizer, None if normalization == "none" else normalization)
    twin = worker.network(None if normalization == "none" else normalization)
    twin.params[...], twin.stats[...] = parallel["params"], parallel["stats"]
    X, _ = worker.data()
    noisy = optimizer == "adam" and normalization == "batch"
    # (noisy: the running means below differ at 1e-10, so predictions at 1e-11)
    atol = 1e-9 if noisy else 1e-12
    np.testing.assert_allclose(twin.predict(X), one.predict(X), rtol=0, atol=atol)
    exact = np.ones(one.n_params, dtype=bool)
    if noisy:
        # The bias b^q under batch normalisation has gradient 0 in exact arithmetic (the
        # batch mean removes it); its computed gradient is rounding noise, which Adam
        # divides by its own size: b^q (and the running means, which contain it) differ
        # at 1e-10, while every other weight and the running variances agree to 1e-12.
        twin.params[...] = 0
        for q in range(1, one.Q):
            twin.b[q][...] = 1
        exact = twin.params == 0
        bias_gap = np.abs(parallel["params"] - one.params)[~exact].max()
        assert bias_gap < 1e-8
        n_mean = len(one.stats) // 2
        assert np.abs(parallel["stats"] - one.stats)[:n_mean].max() < 1e-8
        np.testing.assert_allclose(parallel["stats"][n_mean:], one.stats[n_mean:], atol=1e-12)
    else:
        np.testing.assert_allclose(parallel["stats"], one.stats, rtol=0, atol=1e-12)
    gap = np.abs(parallel["params"] - one.params)[exact].max()
    assert gap <= 1e-12
    assert not np.array_equal(parallel["params"], np.zeros_like(one.params))


@pytest.mark.parametrize("k", [2, 3])
def test_checkpoint_of_an_mpi_run_resumes_in_one_process(tmp_path, k):
    done = mpirun(k, str(tmp_path), "sgd", "batch", "checkpoint")
    assert done.returncode == 0, done.stderr
    X, D = worker.data()
    net, history = resume(tmp_path, X, D)
    assert history.epoch == [1, 2, 3, 4]
    one = worker.train("sgd", "batch")
    np.testing.assert_allclose(net.predict(X), one.predict(X), rtol=0, atol=1e-12)


def test_a_rank_that_raises_ends_the_job(tmp_path):
    started = time.perf_counter()
    done = mpirun(3, str(tmp_path / "x.npz"), "sgd", "none", "1", timeout=60)
    assert done.returncode != 0
    assert time.perf_counter() - started < 30
    assert "rank 1 fails on purpose" in done.stderr
    assert not (tmp_path / "x.npz").exists()


def test_a_rank_killed_with_sigkill_ends_the_job(tmp_path):
    """A rank that dies without a word (SIGKILL, the OOM killer): mpiexec ends the others."""
    started = time.perf_counter()
    done = mpirun(3, str(tmp_path / "x.npz"), "sgd", "none", "kill1", timeout=60)
    assert done.returncode != 0
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "x.npz").exists()


def test_shard_sizes_differ_by_at_most_one():
    from betaprop.training.distributed import shard

    for m in range(3, 40):
        for size in (1, 2, 3, 4):
            parts = [shard(m, r, size) for r in range(size)]
            assert parts[0].start == 0 and parts[-1].stop == m
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:], strict=False))
            lengths = [p.stop - p.start for p in parts]
            assert max(lengths) - min(lengths) <= 1


def test_comm_without_mpi4py_says_how_to_install(monkeypatch):
    import betaprop.training.distributed as distributed

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install \"betaprop\[mpi\]\""):
        distributed.mpi()
