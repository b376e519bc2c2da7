"""cli/streaming.py: ``betaprop train --stream``'s module, called directly (the train command's
hook is wired by cli/train.py). Oracles: scikit-learn's metrics on the held-out parts' rows,
read by pandas and predicted by the trained network; the model file read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import betaprop as bp
from betaprop.cli.options import Parser, UserError
from betaprop.cli.streaming import add_stream_options, held_out_parts, train_stream, wants_stream
from betaprop.cli.train import add_command

from .test_stream_files import big_parquet  # noqa: F401 - the 600 000 x 40 Parquet fixture

pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")


def parse(*argv: str):
    parser = Parser(prog="betaprop")
    commands = parser.add_subparsers(dest="command", parser_class=Parser)
    add_command(commands)
    train = commands.choices["train"]
    if not any("--stream" in action.option_strings for action in train._actions):
        add_stream_options(train)  # until cli/train.py adds them itself
    args = parser.parse_args(["train", *argv])
    args.argv = ["train", *argv]
    return args


def write_table(path, n=4000, regression=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if regression:
        y = 3.0 * X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=n) + 50.0
    else:
        y = np.digitize(X[:, 0] + X[:, 1], [-0.7, 0.7])  # 3 classes
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(5)]).assign(y=y)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=400)
    return frame


def rows_of(stream):
    """The file's row numbers held by a stream's parts."""
    return np.concatenate([np.arange(p.first_row, p.first_row + p.rows) for p in stream.parts])


@pytest.mark.parametrize("regression", [False, True])
def test_train_stream_writes_a_model_and_scores_held_out_parts(tmp_path, regression):
    path = str(tmp_path / "t.parquet")
    frame = write_table(path, regression=regression)
    args = parse("--data", path, "--stream", "--epochs", "4", "--hidden", "16", "--quiet",
                 "--shuffle-buffer", "300", "--dtype", "float64",
                 "--part-size", "0.01")  # fmt: skip
    out = str(tmp_path / "run")
    run = train_stream(args, None, out, allocators=False)
    assert set(run.metrics) == {"train", "validation", "test"}
    model = bp.load(f"{out}/model.safetensors")
    np.testing.assert_array_equal(model.params, run.net.params)
    from betaprop.files.table_stream import table_stream

    stream = table_stream(path, dtype="float64", part_bytes=int(0.01 * 2**20))
    chosen = held_out_parts(stream.rows, 0.1, 0.2, 0)
    test = rows_of(stream.subset(chosen["test"]))
    assert len(test) == len(run.splits["test"]) and 0.15 < len(test) / 4000 < 0.3
    X = run.prep.transform(frame.iloc[test, :5].to_numpy(), "float64")
    predicted = run.prep.decode(run.net.predict(X))
    truth = frame["y"].to_numpy()[test]
    scores = run.metrics["test"]
    if regression:
        assert scores["r2"] == pytest.approx(skm.r2_score(truth, predicted), abs=1e-10)
        assert scores["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted), rel=1e-10)
        assert scores["r2"] > 0.5
    else:
        labels = [str(v) for v in truth]
        assert scores["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
        f1 = skm.f1_score(labels, predicted, average="macro", zero_division=0)
        assert scores["f1_macro"] == pytest.approx(f1, abs=1e-12)
        assert scores["accuracy"] > 0.6  # it learned: the largest class is 38 % of rows


def test_the_memory_pre_check_chooses_streaming_with_one_line(tmp_path, capsys):
    path = str(tmp_path / "t.parquet")
    write_table(path)
    args = parse("--data", path)
    assert not wants_stream(args, available=2**40)
    assert capsys.readouterr().err == ""
    assert wants_stream(args, available=2**16)  # 64 KiB: the 4 000 x 6 table does not fit
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "streaming it part by part (--stream)" in err
    assert wants_stream(parse("--data", path, "--stream"), available=2**40)
    assert not wants_stream(parse("--data", "digits"), available=2**16)  # bundled: in memory


def test_class_weights_are_refused_in_one_line(tmp_path):
    path = str(tmp_path / "t.parquet")
    write_table(path, n=500)
    args = parse("--data", path, "--stream", "--class-weight", "balanced")
    with pytest.raises(UserError, match="--class-weight needs the class counts"):
        train_stream(args, None, str(tmp_path / "run"), allocators=False)


def test_a_buffer_larger_than_memory_is_refused_in_one_line(tmp_path):
    """The pre-check counts the buffer and a part (not the table): 2^40 rows of buffer
    cannot fit, and the refusal comes before anything is allocated or written."""
    path = str(tmp_path / "t.parquet")
    write_table(path, n=500)
    args = parse("--data", path, "--stream", "--shuffle-buffer", str(2**40))
    with pytest.raises(UserError, match=r"--shuffle-buffer 1099511627776 needs about") as error:
        train_stream(args, None, str(tmp_path / "run"), allocators=False)
    assert "\n" not in str(error.value) and "a buffer of 1,099,511,627,776 rows" in str(error.value)
    assert not (tmp_path / "run").exists()


def test_held_out_parts_cover_the_file_once():
    rows = [100] * 20
    chosen = held_out_parts(rows, 0.1, 0.2, seed=3)
    every = sorted(k for parts in chosen.values() for k in parts)
    assert every == list(range(20))
    assert len(chosen["test"]) == 4 and len(chosen["validation"]) == 2
    assert held_out_parts([5, 5], 0.1, 0.2, 0) == {"train": [0, 1], "validation": [], "test": []}
    with pytest.raises(UserError, match="--val-fraction \\+ --test-fraction must be < 1"):
        held_out_parts(rows, 0.5, 0.5, 0)


def test_a_stopped_streamed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGINT once the first checkpoint is written (a file appearing: an event, not a time)
    stops the run inside some later epoch; train_stream with that checkpoint replays the
    epoch's reads and ends with the weights of the uninterrupted run, bit for bit."""
    import os
    import signal
    import threading

    from betaprop.files.checkpoint import load_checkpoint

    path = str(tmp_path / "t.parquet")
    write_table(path, n=3000)
    argv = ("--data", path, "--stream", "--epochs", "40", "--hidden", "8", "--quiet",
            "--dtype", "float64", "--part-size", "0.01", "--checkpoint-every", "1")  # fmt: skip
    whole = train_stream(parse(*argv), None, str(tmp_path / "whole"), allocators=False)
    out = str(tmp_path / "stopped")
    written = os.path.join(out, "checkpoint.safetensors")

    def stop_after_the_first_checkpoint() -> None:
        while not os.path.exists(written):
            threading.Event().wait(0.001)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=stop_after_the_first_checkpoint)
    watcher.start()
    stopped = train_stream(parse(*argv), None, out, allocators=False)
    watcher.join()
    assert stopped.history.interrupted and len(stopped.history.epoch) < 40
    saved = load_checkpoint(out)
    resumed = train_stream(parse(*argv), None, out, saved, allocators=False)
    np.testing.assert_array_equal(resumed.net.params, whole.net.params)
    assert resumed.history.epoch == list(range(1, 41))


CLI_PROBE = """
import json, sys
import numpy, pandas, pyarrow.parquet
from tests.test_stream_cli import parse
from betaprop.cli.streaming import train_stream
path, warm, out = sys.argv[1:4]
common = ("--stream", "--epochs", "1", "--hidden", "32", "--quiet", "--batch-size", "256",
          "--part-size", "4", "--shuffle-buffer", "8192")
train_stream(parse("--data", warm, *common), None, out + "/warm")  # code and buffers in memory
with open("/proc/self/status") as handle:
    base = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # the peak resident set starts again from the resident set now
run = train_stream(parse("--data", path, *common), None, out + "/big")
with open("/proc/self/status") as handle:
    peak = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))
print(json.dumps({"data": peak - base, "accuracy": run.metrics["test"]["accuracy"]}))
"""


def test_the_command_streams_600k_rows_in_under_half_the_matrix(big_parquet, tmp_path):  # noqa: F811
    """train --stream's whole run (first pass, an epoch, metrics of the held-out parts, the
    run folder and its report) in a fresh process with the default environment: the data's
    share of the peak resident set <= 0.5 x the float32 matrix (the command sets allocators
    that hand freed memory back: returning_allocators)."""
    import json
    import subprocess
    import sys

    path, warm, nbytes = big_parquet
    done = subprocess.run([sys.executable, "-c", CLI_PROBE, path, warm, str(tmp_path)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["data"] <= 0.5 * nbytes, (result, nbytes)
    assert result["accuracy"] > 0.85  # the label is a linear rule of 5 features


def test_text_columns_and_gaps_stream_with_impute(tmp_path):
    """--impute median --indicator with --stream: the model's preprocessing is what
    Preprocessing.fit learns from the whole file (categories, fill values, indicators)."""
    from betaprop.files.preprocessing import Preprocessing

    path = str(tmp_path / "t.parquet")
    frame = write_table(path, n=2000)
    frame.insert(1, "city", np.where(np.arange(2000) % 3 == 0, "Paris", "Oslo"))
    frame.loc[::11, "f2"] = np.nan
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=400)
    args = parse("--data", path, "--stream", "--epochs", "2", "--quiet", "--impute", "median",
                 "--indicator", "--part-size", "0.01", "--val-fraction", "0",
                 "--test-fraction", "0")  # fmt: skip
    run = train_stream(args, None, str(tmp_path / "run"), allocators=False)
    whole = Preprocessing.fit(frame, impute="median", indicator=True)
    assert run.prep.categories == whole.categories and run.prep.fill == whole.fill
    assert run.prep.indicators == whole.indicators == ["f2"]
    np.testing.assert_allclose(run.prep.mean, whole.mean, rtol=1e-9, atol=1e-12)
