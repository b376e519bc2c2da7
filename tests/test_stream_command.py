"""``betaprop train --stream`` through the command itself (cli/train.py's hook into
cli/streaming.py): one process and ``mpiexec -n 2``, real files, real subprocesses.

The oracle is the data's own rule: the label is ``a + b > 0``, which a network learns to
near-perfect accuracy; the streamed model, read back from its file, must predict it on rows
it never saw."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

COMMAND = [sys.executable, "-m", "betaprop"]


def table(n: int, seed: int) -> pd.DataFrame:
    X = np.random.default_rng(seed).normal(size=(n, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame["label"] = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return frame


def learned(folder: Path) -> float:
    """Accuracy of ``betaprop predict`` with the model written in ``folder`` on fresh rows of
    the same rule."""
    fresh = table(2000, seed=99)
    fresh.drop(columns="label").to_csv(folder / "fresh.csv", index=False)
    done = subprocess.run([*COMMAND, "predict", "model.safetensors", "fresh.csv"], cwd=folder,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = done.stdout.splitlines()[1:]
    assert len(predicted) == len(fresh)
    return float(np.mean(np.asarray(predicted) == fresh["label"].to_numpy()))


def test_train_stream_writes_a_model_that_learned_and_scores_held_out_parts(tmp_path: Path) -> None:
    table(20_000, seed=0).to_csv(tmp_path / "t.csv", index=False)
    args = ["train", "--data", "t.csv", "--stream", "--part-size", "0.05", "--epochs", "4",
            "--out", "run"]  # fmt: skip
    done = subprocess.run([*COMMAND, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validation" in done.stdout and "test" in done.stdout  # parts held out
    assert learned(tmp_path / "run") > 0.95


def test_train_stream_of_one_part_says_nothing_is_held_out(tmp_path: Path) -> None:
    table(300, seed=1).to_parquet(tmp_path / "t.parquet")  # one row group: one part
    done = subprocess.run([*COMMAND, "train", "--data", "t.parquet", "--stream", "--epochs", "2",
                           "--out", "run"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines() == [
        "betaprop: note: t.parquet streams as 1 part(s), too few to hold whole parts out: no "
        "validation or test scores (a smaller --part-size, or more Parquet row groups, makes "
        "more parts)"
    ]
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_train_stream_on_two_ranks_writes_one_model_that_learned(tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    from .test_distributed import ranks

    table(20_000, seed=2).to_parquet(tmp_path / "t.parquet", row_group_size=1000)
    out = tmp_path / "run"
    done = ranks(2, "-m", "betaprop", "train", "--data", str(tmp_path / "t.parquet"), "--stream",
                 "--part-size", "0.01", "--epochs", "4", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone writes
    assert learned(out) > 0.95
