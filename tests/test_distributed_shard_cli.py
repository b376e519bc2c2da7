"""``betaprop train`` under K ranks reads only each rank's parts of the file (issue 25).

Each case trains the same command with ``mpiexec -n K`` and with one process, on a real
CSV or Parquet file (several row groups), in float64, and compares what rank 0 wrote with
what the one process wrote: the weights (1e-10), the preprocessing, and the final metrics on
the three splits (1e-10; they are sums over the ranks, so the splits must be the same rows).
The oracle is the one-process command, which reads the whole table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from betaprop.files.model import read_model

from .test_distributed import MPIEXEC, TIMEOUT

pytest.importorskip("mpi4py")
pd = pytest.importorskip("pandas")

COMMON = ["--epochs", "3", "--hidden", "6", "--dtype", "float64", "--seed", "1", "--quiet"]


def table(n: int, task: str, seed: int = 0) -> Any:
    """n rows of 4 numeric features and a target: 3 unbalanced classes, or a number; or
    ("table") a text column, gaps and a yes/no target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 1.0, -2.0, 5.0]
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    if task == "classes":
        score = X[:, 0] + 0.5 * X[:, 1]
        frame["label"] = np.where(score > 1.5, "high", np.where(score > -0.5, "mid", "low"))
    elif task == "numbers":
        frame["label"] = X @ [1.0, -0.5, 2.0, 0.1] + 0.1 * rng.standard_normal(n)
    else:  # a text category and gaps: a table to encode
        frame["colour"] = np.array(["red", "green", "blue"])[rng.integers(0, 3, n)]
        frame.loc[rng.random(n) < 0.05, "b"] = np.nan
        frame["label"] = np.where(X[:, 0] + (frame["colour"] == "red") > 0.5, "yes", "no")
    return frame


def write(frame: Any, path: Path) -> None:
    """CSV, or Parquet in row groups of 64 rows (several parts for the ranks)."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, row_group_size=64)
    else:
        frame.to_csv(path, index=False, float_format="%.17g")


def train(where: Path, k: int, data: str, out: str, *options: str) -> None:
    """``betaprop train`` with k ranks (k = 1: one process, no mpiexec) in ``where``."""
    args = ["-m", "betaprop", "train", "--data", data, "--target", "label", *COMMON]
    args += [*options, "--out", out]
    command = [sys.executable, *args]
    if k > 1:
        assert MPIEXEC is not None
        command = [MPIEXEC, "-n", str(k), sys.executable, "-m", "mpi4py", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        command, cwd=where, capture_output=True, text=True, timeout=TIMEOUT, env=env
    )
    assert done.returncode == 0, done.stderr


def assert_same_run(where: Path, sharded: str, one: str) -> None:
    """Rank 0's run folder equals the one-process run's: weights, preprocessing, metrics."""
    a = read_model(str(where / sharded / "model.safetensors"))
    b = read_model(str(where / one / "model.safetensors"))
    np.testing.assert_allclose(a.network.params, b.network.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.network.stats, b.network.stats, rtol=0, atol=1e-10)
    pa, pb = a.metadata["preprocessing"], b.metadata["preprocessing"]
    for key in ("mean", "scale"):
        np.testing.assert_allclose(pa.pop(key), pb.pop(key), rtol=1e-12, atol=1e-12)
    for key in ("target_mean", "target_scale"):
        assert pa.pop(key, 0.0) == pytest.approx(pb.pop(key, 0.0), rel=1e-12, abs=1e-12)
    fill_a, fill_b = pa.pop("fill", {}), pb.pop("fill", {})  # means: to rounding
    assert fill_a.keys() == fill_b.keys()
    for name, value in fill_b.items():
        expected = pytest.approx(value, rel=1e-12) if isinstance(value, float) else value
        assert fill_a[name] == expected
    assert pa == pb  # classes, names, task, categories
    assert a.metadata["training"]["rows"] == b.metadata["training"]["rows"]
    ma, mb = a.metadata["metrics"], b.metadata["metrics"]
    assert ma.keys() == mb.keys() and "train" in mb
    for split in mb:
        assert ma[split].keys() == mb[split].keys()
        for name, value in mb[split].items():
            assert ma[split][name] == pytest.approx(value, rel=1e-10, abs=1e-10), (split, name)
    history_a = pd.read_csv(where / sharded / "history.csv")
    history_b = pd.read_csv(where / one / "history.csv")
    for column in ("loss", "val_loss", "val_score"):
        if column in history_b:
            np.testing.assert_allclose(history_a[column], history_b[column], atol=1e-10)
    assert np.abs(b.network.params).max() > 0


# name: (file suffix, task, rows, ranks, options)
CASES = {
    "csv_classes_2": (".csv", "classes", 500, 2, ["--batch-size", "32"]),
    "csv_classes_3_batch_norm": (".csv", "classes", 500, 3, ["--batch-size", "32", "--batch-norm"]),
    "parquet_classes_2_dropout": (".parquet", "classes", 500, 2, ["--dropout", "0.2"]),
    "parquet_numbers_3": (".parquet", "numbers", 500, 3, ["--batch-size", "40"]),
    "csv_numbers_3_weights": (".csv", "numbers", 400, 3, ["--layer-norm"]),
    "csv_balanced_classes_3": (".csv", "classes", 500, 3, ["--class-weight", "balanced"]),
    # 2 row groups for 3 ranks: rank 2 holds no row at all
    "parquet_rank_without_rows": (".parquet", "classes", 128, 3, ["--batch-size", "16"]),
    # text categories and gaps: categories, medians (exact), moments agreed by reduction
    "csv_table_to_encode_2": (".csv", "table", 300, 2, ["--batch-size", "32"]),
    "parquet_table_3_mean_indicator": (".parquet", "table", 300, 3, ["--impute", "mean",
                                       "--indicator"]),
    # the run: 301 rows in batches of 50 (no validation, no test: all train)
    "csv_301_rows_batch_50": (".csv", "classes", 301, 3, ["--batch-size", "50",
                              "--val-fraction", "0", "--test-fraction", "0"]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_sharded_command_equals_one_process(tmp_path, name):
    suffix, task, n, k, options = CASES[name]
    data = f"d{suffix}"
    write(table(n, task), tmp_path / data)
    train(tmp_path, k, data, "sharded", *options)
    train(tmp_path, 1, data, "one", *options)
    assert_same_run(tmp_path, "sharded", "one")


READ = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from betaprop.cli.sharded import sharded_data
from betaprop.cli.train import _train_parser
from betaprop.training.distributed import world
comm = world()
args = _train_parser().parse_args(["train", "--data", sys.argv[2], "--target", "label",
                                   "--dtype", "float64"])
data, shard = sharded_data(args, comm)
early = shard.early  # Parquet: the split drawn from the target column alone
np.savez(f"{sys.argv[3]}.{comm.Get_rank()}", X=data.X, target=data.target.astype(str),
         first=shard.first, n=shard.n, early=early is not None,
         train=early[4]["train"] if early else [], test=early[4]["test"] if early else [],
         fractions=[args.val_fraction, args.test_fraction, args.seed])
"""


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("k", [2, 3])
def test_each_rank_reads_its_own_block_of_rows(tmp_path, suffix, k):
    """Rank r's rows are rows first..first+m of the table as pandas reads it, the blocks
    follow each other, and every rank holds some (the file is cut into about K parts)."""
    from .test_distributed import ranks

    frame = table(500, "classes")
    write(frame, tmp_path / f"d{suffix}")
    root = str(Path(__file__).parents[1])
    done = ranks(k, "-c", READ, root, str(tmp_path / f"d{suffix}"), str(tmp_path / "rank"))
    assert done.returncode == 0, done.stderr
    whole = (
        pd.read_csv(tmp_path / "d.csv")
        if suffix == ".csv"
        else pd.read_parquet(tmp_path / "d.parquet")
    )
    start = 0
    for rank in range(k):
        mine = np.load(tmp_path / f"rank.{rank}.npz")
        m = len(mine["X"])
        assert int(mine["first"]) == start and int(mine["n"]) == len(whole) and m > 0
        np.testing.assert_array_equal(
            mine["X"], whole[["a", "b", "c", "d"]].to_numpy()[start : start + m]
        )
        assert list(mine["target"]) == list(whole["label"][start : start + m])
        start += m
        assert bool(mine["early"]) == (suffix == ".parquet")
        if suffix == ".parquet":  # drawn before the matrix: one process's split
            from betaprop.cli.settings import split_rows

            val, test, seed = mine["fractions"]
            one = split_rows(len(whole), list(whole["label"]), val, test, int(seed))
            np.testing.assert_array_equal(mine["train"], one["train"])
            np.testing.assert_array_equal(mine["test"], one["test"])
    assert start == len(whole)


def test_codes_stratify_as_the_labels_do():
    """``split_rows`` on the gathered codes (``strata``) draws the split that it draws on the
    labels themselves, also where text order and numeric order differ ("10" < "9")."""
    from betaprop.cli.settings import split_rows
    from betaprop.cli.sharded_labels import strata

    rng = np.random.default_rng(3)
    for names in (["9", "10", "100", "x"], [f"c{j}" for j in range(12)], ["b", "a"], ["z"]):
        labels = [names[j] for j in rng.integers(0, len(names), 700)]
        if names == ["z"]:  # a class of one row: too rare to stratify, both fall back
            labels = ["lone", *(["a", "b"] * 350)]
        distinct = sorted(set(labels))
        codes = np.array([distinct.index(label) for label in labels], dtype=np.int32)
        one = split_rows(len(labels), labels, 0.15, 0.2, 5)
        shared = split_rows(len(labels), strata(codes), 0.15, 0.2, 5)
        for name in one:
            np.testing.assert_array_equal(one[name], shared[name])


def test_an_early_split_is_kept_only_for_thesame_labels():
    """The split drawn from a Parquet target column alone is kept only where the task, the
    classes, every row's code and the row count are those read with the rows."""
    from betaprop.cli.sharded_labels import same_labels

    codes = np.array([0, 1, 2, 1], dtype=np.int32)
    early = ("classification", ["a", "b", "c"], codes, 4, {})
    assert same_labels(early, ("classification", ["a", "b", "c"], codes.copy(), 4))
    assert not same_labels(early, ("classification", ["a", "b", "c"], codes[::-1].copy(), 4))
    assert not same_labels(early, ("classification", ["a", "b", "d"], codes, 4))
    assert not same_labels(early, ("classification", ["a", "b", "c"], codes, 5))
    assert not same_labels(early, ("regression", None, None, 4))
    assert same_labels(("regression", None, None, 4, {}), ("regression", None, None, 4))


CHANGING = """
import os, sys
sys.path.insert(0, sys.argv[1])
import betaprop.cli.sharded as sharded
from betaprop.training.distributed import run_main, world
from betaprop.cli import main
read_part = sharded.read_part

def changed_then_read(path, part, **options):  # another program appends a row meanwhile
    with open(path, "a") as handle:
        handle.write("0,0,0,0,low\\n")
    return read_part(path, part, **options)

if world().Get_rank() == 1:
    sharded.read_part = changed_then_read
sys.exit(run_main(lambda: main(sys.argv[2:])))
"""


def test_a_file_that_changes_while_the_ranks_read_it_is_refused(tmp_path):
    from .test_distributed import ranks

    write(table(300, "classes"), tmp_path / "d.csv")
    args = ["train", "--data", str(tmp_path / "d.csv"), "--target", "label", "--quiet"]
    done = ranks(
        2, "-c", CHANGING, str(Path(__file__).parents[1]), *args, "--out", str(tmp_path / "r")
    )
    assert done.returncode != 0
    # (substrings: mpiexec may interleave the two ranks' stderr within a line)
    assert "changed while the ranks read it" in done.stderr, done.stderr
    assert "betaprop: rank " in done.stderr, done.stderr
    assert not (tmp_path / "r" / "model.safetensors").exists()


class _Alone:
    """A communicator of one process (what ``row_digest`` asks of one: allgather)."""

    def allgather(self, value: Any) -> list:
        return [value]


def test_the_data_fingerprint_does_not_depend_on_who_holds_which_row():
    """``row_digest``: the training rows' fingerprint of a sharded run is the same for any
    split of the rows over ranks and any order within a rank (so a checkpoint resumes under
    another K), and changes with a value or a row's number."""
    from betaprop.cli.fingerprint import row_digest

    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((1000, 5)).astype(np.float32), np.eye(3)[rng.integers(0, 3, 1000)]
    numbers = np.arange(1000)

    def digest(rows: np.ndarray) -> int:
        return int(row_digest(X, rows, D[rows], numbers[rows], _Alone()).split(":")[1], 16)

    whole = digest(numbers)

    def digest_of(table: np.ndarray, rows: np.ndarray) -> str:
        return row_digest(table, rows, D[rows], numbers[rows], _Alone())

    for k in (2, 3, 7):
        blocks = np.array_split(rng.permutation(1000), k)
        assert sum(digest(rows) for rows in blocks) % 2**64 == whole
    changed = X.copy()
    changed[500, 2] += 1e-3
    assert row_digest(changed, numbers, D, numbers, _Alone()) != digest_of(X, numbers)
    swapped = numbers.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert row_digest(X, numbers, D, swapped, _Alone()) != digest_of(X, numbers)


STOPPING = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import betaprop.cli.train as train
from betaprop.cli import main
from betaprop.training.distributed import run_main, world
from betaprop.training.state import Callback
fit_network = train.fit_network

class CtrlC(Callback):  # Ctrl-C on rank 0 once epoch 1 is done: the ranks stop together
    def on_epoch_end(self, net, epoch, history):
        if epoch == 1 and world().Get_rank() == 0:
            os.kill(os.getpid(), signal.SIGINT)

def interrupted(net, X, D, settings, callbacks, bar):
    return fit_network(net, X, D, settings, [*callbacks, CtrlC()], bar)

train.fit_network = interrupted
sys.exit(run_main(lambda: main(sys.argv[2:])))
"""


def test_a_sharded_run_interrupted_on_2_ranks_resumes_on_3(tmp_path):
    """Ctrl-C during a sharded run of 2 ranks, resumed by 3: the weights of the run that was
    never interrupted (the same global batches whoever holds the rows)."""
    from .test_distributed import ranks

    write(table(500, "classes"), tmp_path / "d.csv")
    options = ["--data", str(tmp_path / "d.csv"), "--target", "label", "--batch-size", "16",
               *COMMON, "--early-stopping", "0"]  # fmt: skip
    root = str(Path(__file__).parents[1])
    stopped = ranks(2, "-c", STOPPING, root, "train", *options, "--out", str(tmp_path / "r"))
    assert stopped.returncode == 130, stopped.stderr  # stopped by Ctrl-C, checkpoint kept
    resumed = ranks(3, "-m", "betaprop", "train", "--resume", str(tmp_path / "r"), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    train(tmp_path, 2, "d.csv", "whole", "--batch-size", "16", "--early-stopping", "0")
    a = read_model(str(tmp_path / "r" / "model.safetensors"))
    b = read_model(str(tmp_path / "whole" / "model.safetensors"))
    assert a.metadata["training"]["epochs_run"] == 3
    np.testing.assert_allclose(a.network.params, b.network.params, rtol=0, atol=1e-10)
