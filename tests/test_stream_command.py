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

from betaprop.files.model import read_model
from betaprop.files.preprocessing import Preprocessing

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


def saved_preprocessing(folder: Path) -> Preprocessing:
    return Preprocessing.from_dict(
        read_model(folder / "model.safetensors").metadata["preprocessing"]
    )


def test_train_stream_takes_the_table_options_as_in_memory(tmp_path: Path) -> None:
    # --drop, --categorical, --na-values and --impute as the user gave them; every part
    # trains (no held-out parts), so the oracle is pandas over the whole file
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=n).round(3)
    x[rng.random(n) < 0.1] = -999.0  # a sentinel for a gap
    code = rng.choice([1, 2, 3], size=n)
    frame = pd.DataFrame({"id": np.arange(n), "code": code, "x": x,
                          "label": np.where(code == 2, "yes", "no")})  # fmt: skip
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = ["train", "--data", "t.csv", "--stream", "--part-size", "0.005", "--epochs", "1",
            "--drop", "id", "--categorical", "code", "--na-values", "-999", "--impute", "median",
            "--val-fraction", "0", "--test-fraction", "0", "--out", "run"]  # fmt: skip
    done = subprocess.run([*COMMAND, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    prep = saved_preprocessing(tmp_path / "run")
    assert prep.columns == ["code", "x"]  # id dropped
    assert prep.categories == {"code": ["1", "2", "3"]}  # declared: a category, not a number
    present = x[x != -999.0]
    assert prep.fill["x"] == np.median(present)
    filled = np.where(x == -999.0, np.median(present), x)
    j = prep.feature_names.index("x")
    np.testing.assert_allclose([prep.mean[j], prep.scale[j]], [filled.mean(), filled.std()],
                               rtol=1e-9)  # fmt: skip


def test_train_stream_fits_the_preprocessing_on_the_training_parts_only(tmp_path: Path) -> None:
    from betaprop.cli.streaming import held_out_parts
    from betaprop.files.parts import plan_parts

    frame = table(6000, seed=4)
    frame["a"] += np.linspace(0, 30, len(frame))  # a drift: each part's mean differs
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = ["train", "--data", "t.csv", "--stream", "--part-size", "0.02", "--epochs", "1",
            "--seed", "5", "--out", "run"]  # fmt: skip
    done = subprocess.run([*COMMAND, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    plan = plan_parts(str(tmp_path / "t.csv"), part_bytes=int(0.02 * 2**20))
    train = held_out_parts([part.rows or 0 for part in plan], 0.1, 0.2, 5)["train"]
    rows = np.concatenate([np.arange(plan[k].first_row, plan[k].first_row + (plan[k].rows or 0))
                           for k in train])  # fmt: skip
    assert 0 < len(rows) < len(frame)
    prep = saved_preprocessing(tmp_path / "run")
    j = prep.feature_names.index("a")
    assert prep.mean[j] == pytest.approx(frame["a"].to_numpy()[rows].mean(), rel=1e-9)
    assert prep.mean[j] != pytest.approx(frame["a"].mean(), rel=1e-3)  # not every part's


def test_train_stream_with_a_count_loss_keeps_the_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(4000, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["count"] = rng.poisson(np.exp(0.5 * X[:, 0]))
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = ["train", "--data", "t.csv", "--stream", "--part-size", "0.02", "--epochs", "3",
            "--task", "regression", "--loss", "poisson", "--out", "run"]  # fmt: skip
    done = subprocess.run([*COMMAND, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    prep = saved_preprocessing(tmp_path / "run")
    assert (prep.target_mean, prep.target_scale) == (0.0, 1.0)  # the log link's own units
