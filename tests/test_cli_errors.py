"""Bad input to the ``betaprop`` command: one clear line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import betaprop as bp
from betaprop.files.container import digest as _digest
from betaprop.files.datasets import load_bundled
from betaprop.files.model import save
from betaprop.files.preprocessing import Preprocessing

_SCRIPT = Path(sys.executable).with_name("betaprop")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "betaprop.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


CSV_FILES = {
    "ragged.csv": "a,b,c\n1,2,3\n4,5\n",
    "text.csv": "a,b,c\n1,2,x\n4,five,y\n",
    "empty.csv": "",
    "header.csv": "a,b,c\n",
    "inf.csv": "a,b,c\n1,2,x\n4,inf,y\n",
    "missing.csv": "a,b,c\n1,2,x\n4,,y\n",
    "semicolon.csv": "a;b;c\n1,5;2;x\n",
    "one_class.csv": "a,b\n1,x\n2,x\n3,x\n",
    "ok.csv": "\ufeffa,b,c\n1,2,x\n4,5,y\n7,8,x\n1,1,y\n2,2,x\n3,3,y\n4,4,x\n5,5,y\n6,6,x\n7,7,y\n",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _folder(tmp_path)


def _assert_user_error(result, message: str, folder: Path, before: set[str]) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0], lines[0]
    assert set(os.listdir(folder)) == before  # nothing written


TRAIN_CASES = [
    (["--data", "ragged.csv"], "ragged.csv line 3 has 2 fields, but the header has 3"),
    (["--data", "text.csv"], "text.csv line 3, column 'b': 'five' is not a number"),
    (["--data", "empty.csv"], "empty.csv is empty"),
    (["--data", "header.csv"], "header.csv has a header row but no data rows"),
    (["--data", "text.csv", "--target", "d"], "target column 'd' is not in text.csv"),
    (["--data", "inf.csv"], "inf.csv line 3, column 'b': infinite value 'inf'"),
    (
        ["--data", "missing.csv", "--impute", "none"],
        "missing.csv line 3, column 'b': missing value ''",
    ),  # fmt: skip
    (["--data", "semicolon.csv"], "semicolon.csv looks ';'-separated"),
    (["--data", "absent.csv"], "data file 'absent.csv' does not exist"),
    (["--data", "one_class.csv"], "must have at least 2 classes"),
    (["--data", "mnist"], "data must be a CSV file or one of ['digits'"),
    (["--lr", "-1"], "--lr must be a finite number > 0, got '-1'"),
    (["--lr", "nan"], "--lr must be a finite number > 0, got 'nan'"),
    (["--lr", "inf"], "--lr must be a finite number > 0, got 'inf'"),
    (["--hidden", "0"], "--hidden must be integers >= 1 separated by commas"),
    (["--hidden", "64,-3"], "--hidden must be integers >= 1"),
    (["--epochs", "0"], "--epochs must be an integer >= 1, got '0'"),
    (["--batch-size", "x"], "--batch-size must be an integer >= 1, got 'x'"),
    (["--val-fraction", "1"], "--val-fraction must be a number in [0, 1), got '1'"),
    (["--test-fraction", "0.5", "--val-fraction", "0.5"], "must be < 1"),
    (["--activation", "bogus"], "--activation must be one of ["),
    (["--activation", "softmax"], "--activation must be one of ["),
    (["--hidden", "4,4", "--activation", "relu,tanh,relu"], "one name or 2 names"),
    (["--loss", "hinge"], "invalid choice: 'hinge'"),
    (["--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["--data", "diabetes", "--loss", "cross_entropy"], "for regression, got 'cross_entropy'"),
    (["--loss", "binary_cross_entropy"], "binary_cross_entropy needs 2 classes, got 10"),
    (["--output", "sigmoid", "--loss", "cross_entropy"], "output must be one of ['softmax']"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["--out", "ok.csv"], "--out must be a folder, got 'ok.csv' (an existing file)"),
    (["--momentum", "0.9"], "--momentum needs --optimizer one of ['rmsprop', 'sgd'], got 'adam'"),
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got '-1'"),
    (["--schedule", "warmup"], "invalid choice: 'warmup'"),
]


def _folder(path: Path) -> Path:
    for name, text in CSV_FILES.items():
        (path / name).write_bytes(text.encode("utf-8"))
    return path


def _run_all(factory, commands: list[list[str]], prepare=None) -> list:
    """Run every command in its own fresh folder, several subprocesses at a time."""
    folders = []
    for i, _ in enumerate(commands):
        folder = _folder(factory.mktemp(f"case{i}"))
        if prepare is not None:
            prepare(i, folder)
        folders.append((folder, set(os.listdir(folder))))

    def one(i: int):
        folder, before = folders[i]
        return folder, before, run(*commands[i], cwd=folder)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(len(commands))))


@pytest.fixture(scope="module")
def train_results(tmp_path_factory):
    commands = [["train", "--out", "run", "--epochs", "1", *options] for options, _ in TRAIN_CASES]
    return _run_all(tmp_path_factory, commands)


@pytest.mark.parametrize("i", range(len(TRAIN_CASES)), ids=[" ".join(o) for o, _ in TRAIN_CASES])
def test_bad_training_input(train_results, i):
    folder, before, result = train_results[i]
    _assert_user_error(result, TRAIN_CASES[i][1], folder, before)


def test_a_csv_with_a_bom_trains(folder):
    result = run(
        "train",
        "--data",
        "ok.csv",
        "--out",
        "run",
        "--epochs",
        "2",
        "--val-fraction",
        "0",
        "--test-fraction",
        "0.2",
        "--quiet",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # --quiet
    assert sorted(os.listdir(folder / "run")) == [
        "history.csv",
        "model.safetensors",
        "report.png",
    ]


def test_a_diverging_run_writes_no_model(folder):
    before = set(os.listdir(folder))
    result = run(
        "train",
        "--data",
        "diabetes",
        "--optimizer",
        "sgd",
        "--lr",
        "1000",
        "--out",
        "run",
        "--quiet",
        cwd=folder,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "training diverged" in result.stderr and "Nothing was written" in result.stderr
    assert set(os.listdir(folder)) == before


# ------------------------------------------------------------------------------ model files
def _resign(path: Path, edit) -> None:
    from safetensors.numpy import load_file
    from safetensors.numpy import save as serialize

    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    document = json.loads(json.loads(data[8 : 8 + length])["__metadata__"]["betaprop"])
    tensors = load_file(str(path))
    edit(document)
    text = json.dumps(document)
    path.write_bytes(
        serialize(tensors, metadata={"betaprop": text, "sha256": _digest(text, tensors)})
    )


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (self.marker,))


def _damage(kind: str, path: Path, folder: Path) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) - 17])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(_Payload(str(folder / "PWNED"))))
    elif kind == "version":
        _resign(path, lambda document: document.update(format_version=99))
    elif kind == "weight":
        flipped = bytearray(data)
        flipped[-5] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif kind == "metadata":
        path.write_bytes(data.replace(b"hello", b"jello", 1))
    elif kind == "preprocessing":
        _resign(path, lambda document: document["metadata"]["preprocessing"].pop("mean"))


DAMAGE = [
    ("truncated", "damaged or truncated"),
    ("random", "not a betaprop model file"),
    ("pickle", "looks like a Python pickle, which betaprop never loads"),
    ("version", "format version 99 is not supported"),
    ("weight", "SHA-256 mismatch"),
    ("metadata", "SHA-256 mismatch"),
    ("preprocessing", "preprocessing must hold the fields"),
]


def _save_model(folder: Path) -> Path:
    """A small valid model file with preprocessing, saved from Python (no training)."""
    data = load_bundled("iris")
    prep = Preprocessing.fit(data, "classification")
    net = bp.Network([4, 5, 3], loss="cross_entropy", seed=0)
    path = folder / "model.safetensors"
    save(net, path, metadata={"preprocessing": prep.to_dict(), "note": "hello"})
    return path


# predict for every kind of damage (it would write a file); info for some
MODEL_CASES = [(kind, "predict", message) for kind, message in DAMAGE] + [
    (kind, "info", message) for kind, message in DAMAGE if kind in ("pickle", "weight", "version")
]


@pytest.fixture(scope="module")
def model_results(tmp_path_factory):
    def prepare(i: int, folder: Path) -> None:
        _damage(MODEL_CASES[i][0], _save_model(folder), folder)

    commands = [
        [command, "model.safetensors"]
        + (["ok.csv", "--out", "predictions.csv"] if command == "predict" else [])
        for _, command, _ in MODEL_CASES
    ]
    return _run_all(tmp_path_factory, commands, prepare)


@pytest.mark.parametrize("i", range(len(MODEL_CASES)), ids=[f"{c} {k}" for k, c, _ in MODEL_CASES])
def test_bad_model_files(model_results, i):
    folder, before, result = model_results[i]
    _assert_user_error(result, MODEL_CASES[i][2], folder, before)
    assert not (folder / "PWNED").exists()  # the pickle's payload never ran


def test_the_pickle_payload_is_real(folder):
    model = _save_model(folder)
    _damage("pickle", model, folder)
    pickle.loads(model.read_bytes())  # what a careless loader would do
    assert (folder / "PWNED").is_dir()


OTHER_CASES = [
    (["predict", "absent.safetensors", "ok.csv"], "'absent.safetensors' does not exist"),
    (["predict", "model.safetensors", "ragged.csv"], "ragged.csv line 3 has 2 fields"),
    (["predict", "model.safetensors", "text.csv"], "lacks the feature columns"),
    (["predict", "model.safetensors", "iris", "--out", "."], "--out must be a file, got '.'"),
    (["evaluate", "model.safetensors", "iris", "--target", "kind"], "target must be"),
    (["trace", "--model", "model.safetensors"], "--model needs --example"),
    (["trace", "--model", "model.safetensors", "--example", "3"], "needs --data"),
    (["trace", "--x", "1,2,3"], "--x must have 2 values"),
    (["trace", "--x", "1,nan"], "--x must be finite numbers"),
    (["trace", "--lang", "de"], "invalid choice: 'de'"),
    (["gradcheck", "--sizes", "3"], "--sizes must name at least 2 layers"),
    (["gradcheck", "--activation", "nope"], "--activation must be one of"),
    (["gradcheck", "--tolerance", "-1"], "--tolerance must be a finite number > 0"),
]


@pytest.fixture(scope="module")
def other_results(tmp_path_factory):
    return _run_all(
        tmp_path_factory, [args for args, _ in OTHER_CASES], lambda i, f: _save_model(f)
    )


@pytest.mark.parametrize("i", range(len(OTHER_CASES)), ids=[" ".join(a) for a, _ in OTHER_CASES])
def test_bad_input_to_the_other_commands(other_results, i):
    folder, before, result = other_results[i]
    _assert_user_error(result, OTHER_CASES[i][1], folder, before)
