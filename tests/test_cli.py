"""The ``betaprop`` command end to end, run in a subprocess as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets

import betaprop as bp
from betaprop import cli
from betaprop.cli.settings import split_rows
from betaprop.files.model import read_model

_SCRIPT = Path(sys.executable).with_name("betaprop")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "betaprop.cli"]


def run(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def iris_csv(path: Path) -> Path:
    bunch = sklearn.datasets.load_iris()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*bunch.feature_names, "species"])
        for x, t in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*x, bunch.target_names[t]])
    return path


def train_in_process(tmp_path: Path, *options: str) -> cli.TrainRun:
    args = cli.build_parser().parse_args(["train", "--quiet", *options])
    return cli.train_run(args, None)


# ------------------------------------------------------------------------------ train
def test_default_train_reaches_97_percent_and_writes_the_three_files(tmp_path):
    result = run("train", cwd=tmp_path)  # no arguments at all: the bundled digits
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    out = runs[0]
    assert sorted(os.listdir(out)) == ["history.csv", "model.safetensors", "report.png"]
    assert "test" in result.stdout and "accuracy" in result.stdout

    # the test accuracy, recomputed from the model file on rows it never trained on
    model = read_model(out / "model.safetensors")
    training = model.metadata["training"]
    digits = sklearn.datasets.load_digits()
    labels = [str(t) for t in digits.target]
    splits = split_rows(
        len(labels), labels, training["val_fraction"], training["test_fraction"], training["seed"]
    )
    rows = np.concatenate(list(splits.values()))
    assert sorted(rows.tolist()) == list(range(len(labels)))  # disjoint and complete
    predicted = run("predict", str(out / "model.safetensors"), "digits", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    column = predicted.stdout.splitlines()[1:]
    test = splits["test"]
    accuracy = np.mean([column[i] == labels[i] for i in test])
    assert len(test) == 360
    assert accuracy >= 0.97
    assert accuracy == pytest.approx(model.metadata["metrics"]["test"]["accuracy"], abs=1e-12)

    with open(out / "history.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == training["epochs_run"] >= 1
    for key in ("epoch", "loss", "val_loss", "val_score", "beta_rms_1", "beta_rms_2"):
        assert key in table[0]
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1080, 900)  # four panels in a 2 x 2 grid, readable on a laptop


def test_predict_reproduces_in_memory_predictions_bit_for_bit(tmp_path):
    data = iris_csv(tmp_path / "iris.csv")
    train = train_in_process(
        tmp_path,
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "15",
        "--hidden",
        "16,8",
    )
    X = train.prep.transform(train.prep.columns_of(train.data), train.net.dtype)
    P = train.net.predict(X)  # in memory, in this process
    expected_labels = train.prep.decode(P)
    out = tmp_path / "predictions.csv"
    result = run(
        "predict",
        str(tmp_path / "run" / "model.safetensors"),
        str(data),
        "--proba",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    with open(out) as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["prediction", "p_setosa", "p_versicolor", "p_virginica"]
    read = np.array([[float(v) for v in row[1:]] for row in rows[1:]]).astype(P.dtype)
    assert read.tobytes() == P.tobytes()
    assert [row[0] for row in rows[1:]] == expected_labels

    evaluated = run("evaluate", str(tmp_path / "run" / "model.safetensors"), str(data))
    assert evaluated.returncode == 0, evaluated.stderr
    truth = train.prep.labels(train.data.target)
    accuracy = np.mean([a == b for a, b in zip(truth, expected_labels, strict=True)])
    assert f"{accuracy:.6g}" in evaluated.stdout


def test_regression_round_trip_and_info(tmp_path):
    train = train_in_process(
        tmp_path,
        "--data",
        "diabetes",
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "5",
        "--dtype",
        "float64",
    )
    model = str(tmp_path / "run" / "model.safetensors")
    result = run("predict", model, "diabetes")
    assert result.returncode == 0, result.stderr
    values = np.array([float(v) for v in result.stdout.splitlines()[1:]])
    X = train.prep.transform(train.data.X, "float64")
    expected = train.net.predict(X)[:, 0] * train.prep.target_scale + train.prep.target_mean
    assert values.tobytes() == expected.tobytes()
    info = run("info", model)
    assert info.returncode == 0, info.stderr
    for text in ("regression", "float64", "squared_error", "relu", "identity", "diabetes"):
        assert text in info.stdout
    with_proba = run("predict", model, "diabetes", "--proba")
    assert with_proba.returncode == 2 and "--proba is for classification" in with_proba.stderr


def test_predict_accepts_a_reordered_csv_with_extra_columns(tmp_path):
    data = iris_csv(tmp_path / "iris.csv")
    train = train_in_process(
        tmp_path, "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "3"
    )
    with open(data) as handle:
        rows = list(csv.reader(handle))
    shuffled = tmp_path / "shuffled.csv"
    order = [3, 0, 2, 1]  # feature columns reversed-ish, no species, one extra column
    with open(shuffled, "w", newline="") as handle:
        writer = csv.writer(handle)
        for i, row in enumerate(rows):
            writer.writerow([row[k] for k in order] + ["extra" if i == 0 else "1"])
    a = run("predict", str(tmp_path / "run" / "model.safetensors"), str(data), "--proba")
    b = run("predict", str(tmp_path / "run" / "model.safetensors"), str(shuffled), "--proba")
    assert a.returncode == b.returncode == 0, b.stderr
    assert a.stdout == b.stdout
    assert train.net.sizes[0] == 4


# ------------------------------------------------------------------------------ trace
def test_trace_numbers_equal_the_engines(tmp_path):
    result = run("trace", "--format", "json")
    assert result.returncode == 0, result.stderr
    traced = json.loads(result.stdout)
    net = bp.Network(
        [2, 3, 2],
        activation="sigmoid",
        output="sigmoid",
        loss="squared_error",
        dtype="float64",
        seed=0,
    )
    x, d = np.array([[1.0, 0.5]]), np.array([[1.0, 0.0]])
    loss = net.loss_and_gradients(x, d)
    assert traced["x"] == x[0].tolist() and traced["d"] == d[0].tolist()
    assert traced["loss_value"] == loss
    for q in (1, 2):
        assert traced["s"][str(q)] == net.s[q][:, 0].tolist()
        assert traced["y"][str(q)] == net.y[q][:, 0].tolist()
        assert traced["beta"][str(q)] == net.beta[q][:, 0].tolist()
        assert traced["dW"][str(q)] == net.dW[q].tolist()
        assert traced["db"][str(q)] == net.db[q][:, 0].tolist()
    assert traced["reference_agrees"] is True

    text = run("trace")
    assert text.returncode == 0
    assert f"{net.beta[1][2, 0]:.6g}" in text.stdout and "Step 4" in text.stdout
    assert "agree" in text.stdout


def test_trace_in_russian_as_markdown_to_a_file(tmp_path):
    out = tmp_path / "trace.md"
    result = run("trace", "--lang", "ru", "--format", "markdown", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "## Шаг 3: локальная ошибка выходного слоя" in text
    assert "## Шаг 4" in text and "совпадают" in text


def test_trace_a_saved_model_example(tmp_path):
    data = iris_csv(tmp_path / "iris.csv")
    train = train_in_process(
        tmp_path,
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "3",
        "--hidden",
        "5",
    )
    result = run(
        "trace",
        "--model",
        str(tmp_path / "run" / "model.safetensors"),
        "--example",
        "7",
        "--data",
        str(data),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    traced = json.loads(result.stdout)
    assert traced["x"] == train.prep.transform(train.data.X[7:8])[0].tolist()
    assert traced["d"] == [1.0, 0.0, 0.0]  # row 7 is a setosa
    assert traced["sizes"] == [4, 5, 3]


# ------------------------------------------------------------------------------ gradcheck
def test_gradcheck_passes_and_fails_by_tolerance(tmp_path):
    ok = run("gradcheck", "--sizes", "3,4,2", "--activation", "tanh", "--loss", "cross_entropy")
    assert ok.returncode == 0, ok.stderr
    assert "passed" in ok.stdout and "W^1" in ok.stdout and "b^2" in ok.stdout
    strict = run("gradcheck", "--tolerance", "1e-30")
    assert strict.returncode == 1
    assert "FAILED" in strict.stdout
    bp.save(bp.Network([5, 4, 3], activation="sigmoid", seed=1), tmp_path / "m.safetensors")
    model = run("gradcheck", "--model", str(tmp_path / "m.safetensors"))
    assert model.returncode == 0, model.stderr
    assert "sizes [5, 4, 3]" in model.stdout and "passed" in model.stdout


def test_trace_a_model_trained_on_a_bundled_dataset(tmp_path):
    train = train_in_process(
        tmp_path, "--data", "wine", "--out", str(tmp_path / "run"), "--epochs", "2", "--hidden", "6"
    )
    model = str(tmp_path / "run" / "model.safetensors")
    result = run("trace", "--model", model, "--example", "100", "--format", "json")
    assert result.returncode == 0, result.stderr  # the data come from the model's metadata
    traced = json.loads(result.stdout)
    assert traced["x"] == train.prep.transform(train.data.X[100:101])[0].tolist()
    d = train.prep.encode(train.data.target[100:101], 3)[0]
    assert traced["d"] == d.tolist() and sum(traced["d"]) == 1.0


# ------------------------------------------------------------------------------ bench
def test_help_lists_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("train", "trace", "gradcheck", "info", "predict", "evaluate", "bench"):
        assert command in result.stdout


def test_a_model_saved_from_python_without_preprocessing(tmp_path):
    net = bp.Network([4, 3, 2], activation="tanh", loss="cross_entropy", seed=0)
    bp.save(net, tmp_path / "plain.safetensors")
    info = run("info", "plain.safetensors", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "tanh" in info.stdout and "cross_entropy" in info.stdout and "23" in info.stdout
    iris_csv(tmp_path / "iris.csv")
    predict = run("predict", "plain.safetensors", "iris.csv", cwd=tmp_path)
    assert predict.returncode == 2
    assert "holds no preprocessing" in predict.stderr and predict.stderr.count("\n") == 1


def test_task_is_inferred_and_can_be_forced(tmp_path):
    rows = ["x,y"] + [f"{i / 10},{i % 3}" for i in range(60)]
    (tmp_path / "small.csv").write_text("\n".join(rows) + "\n")
    options = ["--data", str(tmp_path / "small.csv"), "--epochs", "2", "--hidden", "4"]
    inferred = train_in_process(tmp_path, *options, "--out", str(tmp_path / "a"))
    assert inferred.prep.task == "classification" and inferred.prep.classes == ["0", "1", "2"]
    assert inferred.net.sizes == (1, 4, 3) and inferred.net.loss.name == "cross_entropy"
    forced = train_in_process(
        tmp_path, *options, "--task", "regression", "--out", str(tmp_path / "b")
    )
    assert forced.prep.task == "regression" and forced.net.sizes == (1, 4, 1)
    assert forced.net.loss.name == "squared_error" and "r2" in forced.metrics["test"]


def test_synthetic_xor_is_learned(tmp_path):
    run_ = train_in_process(
        tmp_path,
        "--data",
        "xor",
        "--hidden",
        "16",
        "--activation",
        "tanh",
        "--epochs",
        "200",
        "--lr",
        "0.01",
        "--out",
        str(tmp_path / "x"),
    )
    assert run_.metrics["test"]["accuracy"] >= 0.9  # no linear model gets past ~0.5-0.6


def test_predict_ignores_an_empty_target_column(tmp_path):
    data = iris_csv(tmp_path / "iris.csv")
    train_in_process(tmp_path, "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "2")
    lines = data.read_text().splitlines()
    unlabelled = tmp_path / "new.csv"
    unlabelled.write_text(
        "\n".join([lines[0]] + [row.rsplit(",", 1)[0] + "," for row in lines[1:]])
    )
    a = run("predict", str(tmp_path / "run" / "model.safetensors"), str(data))
    b = run("predict", str(tmp_path / "run" / "model.safetensors"), str(unlabelled))
    assert a.returncode == b.returncode == 0, b.stderr
    assert a.stdout == b.stdout and len(a.stdout.splitlines()) == 151


def test_optimizer_options_reach_the_optimizer(tmp_path):
    run_ = train_in_process(
        tmp_path,
        "--data",
        "iris",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--momentum",
        "0.5",
        "--weight-decay",
        "0.01",
        "--schedule",
        "step",
        "--epochs",
        "12",
        "--early-stopping",
        "0",
        "--out",
        str(tmp_path / "run"),
    )
    # StepDecay(step_size=10, gamma=0.1) as torch.optim.lr_scheduler.StepLR: lr 0.05 for
    # epochs 1-10, then 0.005
    np.testing.assert_allclose(run_.history.learning_rate, [0.05] * 10 + [0.005] * 2, rtol=1e-12)
    training = read_model(tmp_path / "run" / "model.safetensors").metadata["training"]
    assert training["optimizer"] == "sgd" and training["momentum"] == 0.5
    assert training["weight_decay"] == 0.01 and training["schedule"] == "step"
