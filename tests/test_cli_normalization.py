"""--batch-norm, --dropout and --init through the command line: train, info, predict, resume,
trace and gradcheck."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from betaprop.files.checkpoint import load_checkpoint
from betaprop.files.model import read_model

# the command, its paused twin and the run-record reader of the process tests
from .test_faults_processes import (
    COMMAND,
    TIMEOUT,
    reference_run,
    run_record,
    start_paused,
    wait_until_paused,
)

TRAIN = [
    "train", "--data", "digits", "--hidden", "24,16", "--epochs", "6", "--batch-size", "64",
    "--early-stopping", "0", "--seed", "3", "--batch-norm", "--dropout", "0.2",
    "--init", "he_normal",
]  # fmt: skip


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reference_run(tmp_path_factory, TRAIN, run)


def test_train_writes_a_model_with_batch_norm_dropout_and_init(reference: Path) -> None:
    model = read_model(reference / "model.safetensors")
    net = model.network
    assert net.normalized == [False, True, True, False]
    assert net.p == [0.0, 0.2, 0.2, 0.0]
    assert net.init == "he_normal"
    assert not np.array_equal(net.running_mean[1], 0.0)  # trained statistics were saved
    tensors = load_file(reference / "model.safetensors")
    # Linear 0, BatchNorm1d 1, ReLU 2, Dropout 3, Linear 4, BatchNorm1d 5, ReLU 6, Dropout 7,
    # Linear 8
    assert "5.running_var" in tensors and "8.weight" in tensors


def test_info_shows_normalisation_and_dropout_per_layer(reference: Path) -> None:
    result = run(["info", str(reference / "model.safetensors")], reference)
    assert result.returncode == 0, result.stderr
    assert "normalisation" in result.stdout and "dropout p" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "relu" in line]
    assert len(rows) == 2 and all("batch" in row and "0.2" in row for row in rows)
    assert "he_normal" in result.stdout


def test_predict_uses_the_running_statistics(reference: Path, tmp_path: Path) -> None:
    result = run(["predict", str(reference / "model.safetensors"), "digits", "--proba",
                  "--out", "p.csv"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "p.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    probabilities = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    from betaprop.cli.models import model_data, open_model

    path = str(reference / "model.safetensors")
    model, prep = open_model(path)
    assert prep is not None
    data = model_data(path, prep, "digits", prep.target_name)
    expected = model.network.predict(prep.transform(prep.columns_of(data)))  # inference
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)


def test_sigkill_then_resume_equals_the_uninterrupted_run(reference: Path, tmp_path: Path) -> None:
    process = start_paused([*TRAIN, "--out", "run", "--checkpoint-every", "2"], tmp_path, 1)
    wait_until_paused(tmp_path, process)
    process.kill()
    process.communicate(timeout=TIMEOUT)
    saved = load_checkpoint(tmp_path / "run")
    assert saved.state.epoch == 2 and any(saved.network.normalized)
    resumed = run(["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    tensors, history = run_record(tmp_path / "run")
    expected_tensors, expected_history = run_record(reference)
    assert sorted(tensors) == sorted(expected_tensors)
    for name, tensor in expected_tensors.items():
        np.testing.assert_array_equal(tensors[name], tensor, err_msg=name)
    assert history == expected_history


def test_gradcheck_with_the_layer_options() -> None:
    result = run(["gradcheck", "--batch-norm", "--dropout", "0.3", "--init", "lecun"], Path("."))
    assert result.returncode == 0, result.stderr
    assert "gamma^1" in result.stdout and "shift^1" in result.stdout
    assert "passed" in result.stdout


def test_bad_layer_options_are_one_line_errors(tmp_path: Path) -> None:
    for options, message in ((["--dropout", "1"], "--dropout"), (["--init", "x"], "--init")):
        result = run([*TRAIN[:3], *options, "--quiet"], tmp_path)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_trace_shows_the_normalisation_and_mask_lines(tmp_path: Path) -> None:
    for lang, words in (("en", "normalis"), ("ru", "нормализ")):
        result = run(["trace", "--sizes", "3,4,2", "--batch-norm", "--dropout", "0.5",
                      "--lang", lang], tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert words in text.lower()
        for label in ("mu^1", "sigma^1", "xhat^1", "u^1", "m^1"):
            assert label in text, label
    result = run(["trace", "--sizes", "3,4,2", "--batch-norm", "--format", "json"], tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["normalization"]["1"]) >= {"mu", "sigma", "xhat", "u"}
    result = run(["trace", "--sizes", "3,4,2", "--dropout", "0.5", "--format", "html",
                  "--out", "t.html"], tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t.html").stat().st_size > 1000
