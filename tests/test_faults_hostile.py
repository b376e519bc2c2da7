"""A hostile world (issue 15): special files, crafted model files, run folders, extreme
values, impossible memory, filesystem errors.

Every case runs the ``betaprop`` command in this process (``main``) under an alarm, so that
a hang fails the test instead of blocking it; each refusal is one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from betaprop.cli import main
from betaprop.files.container import digest
from betaprop.files.model import ModelFileError, read_model

ALARM = 60  # seconds: no case may take longer (a blocked open would hang forever)


@pytest.fixture(autouse=True)
def _alarm() -> Iterator[None]:
    def hung(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the command did not finish in {ALARM} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(ALARM)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    """Run ``betaprop argv``: exit 2 and one line on stderr holding every word; the line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def _write_table(path: Path, n: int = 60, regression: bool = False) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = X[:, 0] * 2 if regression else (X[:, 0] > 0).astype(int)
    rows = "".join(
        ",".join(repr(float(v)) for v in (*x, t)) + "\n" for x, t in zip(X, y, strict=True)
    )
    path.write_text("a,b,c,y\n" + rows)
    return path


def _train(tmp: Path, name: str, *extra: str, regression: bool = False) -> Path:
    data = _write_table(tmp / f"{name}.csv", regression=regression)
    out = tmp / name
    argv = ["train", "--data", str(data), "--epochs", "2", "--hidden", "4", "--seed", "0"]
    assert main([*argv, "--out", str(out), "--quiet", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    return {
        "classification": _train(tmp, "classification"),
        "regression": _train(tmp, "regression", regression=True),
        "data": _write_table(tmp / "data.csv"),
    }


# ------------------------------------------------------------------------------ class 1
@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_a_fifo_as_data_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], fifo: Path, tmp_path: Path
) -> None:
    refused(capsys, ["train", "--data", str(fifo), "--out", str(tmp_path / "r")], "FIFO")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["info", "predict", "evaluate"])
def test_a_fifo_as_model_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], fifo: Path, runs: dict[str, Path], command: str
) -> None:
    argv = [command, str(fifo)] + ([] if command == "info" else [str(runs["data"])])
    refused(capsys, argv, "FIFO", "regular files")
    with pytest.raises(ModelFileError, match="FIFO"):
        read_model(fifo)


def test_a_fifo_as_data_at_predict_is_refused(
    capsys: pytest.CaptureFixture[str], fifo: Path, runs: dict[str, Path]
) -> None:
    model = runs["classification"] / "model.safetensors"
    refused(capsys, ["predict", str(model), str(fifo)], "FIFO")


def test_a_fifo_as_the_checkpoint_of_resume_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / "checkpoint.safetensors")
    refused(capsys, ["train", "--resume", str(folder)], "FIFO")


def test_dev_zero_as_data_and_as_model_is_refused(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    refused(capsys, ["train", "--data", "/dev/zero", "--out", str(tmp_path / "r")], "device")
    refused(capsys, ["info", "/dev/zero"], "device")
    refused(capsys, ["predict", "/dev/zero", str(runs["data"])], "device")


def test_a_2_gib_sparse_file_as_model_is_refused_at_once_in_bounded_memory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", 1000) + b'{"a":')  # a header length that fits
        handle.truncate(2 * 1024**3)
    for header in (struct.pack("<Q", 3 * 1024**3), b"\0" * 8):  # too long; too short
        with open(path, "r+b") as handle:
            handle.write(header)
        tracemalloc.start()
        start = time.perf_counter()
        with pytest.raises(ModelFileError, match="not a betaprop model file"):
            read_model(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seconds < 3 and peak < 10 * 1024**2, (seconds, peak)
        start = time.perf_counter()
        refused(capsys, ["info", str(path)], "not a betaprop model file")
        assert time.perf_counter() - start < 5


# ------------------------------------------------------------------------------ class 7
def craft(
    source: Path,
    target: Path,
    edit: Callable[[dict[str, Any]], None] | None = None,
    tensors: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> Path:
    """A copy of the model file ``source`` with its JSON document and/or tensors edited and
    the SHA-256 recomputed, as a careful editor would."""
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    text = json.loads(data[8 : 8 + length])["__metadata__"]["betaprop"]
    document, arrays = json.loads(text), dict(safetensors_load(data))
    if edit is not None:
        edit(document)
    if tensors is not None:
        tensors(arrays)
    text = json.dumps(document)  # NaN and Infinity as Python's json writes them
    target.write_bytes(
        safetensors_save(arrays, metadata={"betaprop": text, "sha256": digest(text, arrays)})
    )
    return target


def _prep(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        document["metadata"]["preprocessing"].update(fields)

    return edit


CRAFTED = {
    "classes shorter than outputs": ("classification", _prep(classes=["0"]), ">= 2 classes"),
    "10 classes for 2 outputs": (
        "classification",
        _prep(classes=[str(k) for k in range(10)]),
        "10 classes for N_Q = 2",
    ),
    "classes null": ("classification", _prep(classes=None), "classes must list"),
    "duplicate classes": ("classification", _prep(classes=["0", "0"]), "distinct"),
    "task regression, 2 outputs": (
        "classification",
        _prep(task="regression", classes=None),
        "N_Q = 1 output",
    ),
    "task classification, 1 output of regression": (
        "regression",
        _prep(task="classification", classes=["a", "b", "c"]),
        "3 classes for N_Q = 1",
    ),
    "NaN means": ("classification", _prep(mean=[float("nan"), 0.0, 0.0]), "mean must be finite"),
    "scale 1e-320": ("classification", _prep(scale=[1e-320, 1.0, 1.0]), "scale must be >="),
    "scale -1": ("classification", _prep(scale=[-1.0, 1.0, 1.0]), "scale must be >="),
    "target scale 0": ("regression", _prep(target_scale=0.0), "target scale"),
    "duplicate feature names": (
        "classification",
        _prep(feature_names=["a", "a", "c"]),
        "feature names must be distinct",
    ),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_preprocessing_is_refused_by_meaning(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path, case: str
) -> None:
    task, edit, words = CRAFTED[case]
    model = craft(runs[task] / "model.safetensors", tmp_path / "crafted.safetensors", edit)
    read_model(model)  # the container and the network are intact: the meaning is not
    for command in ("info", "predict", "evaluate"):
        argv = [command, str(model)] + ([] if command == "info" else [str(runs["data"])])
        refused(capsys, argv, str(model), words)


def test_weights_that_overflow_are_refused_not_printed_as_nan(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    def huge(arrays: dict[str, np.ndarray]) -> None:
        for name in arrays:
            arrays[name] = np.full_like(arrays[name], 3e38)

    model = craft(runs["classification"] / "model.safetensors", tmp_path / "w.st", None, huge)
    for command in ("predict", "evaluate"):
        refused(capsys, [command, str(model), str(runs["data"])], "not finite")


def test_metrics_of_10_to_the_400_do_not_break_info(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["metadata"]["metrics"] = {"train": {"loss": 10**400, "accuracy": "x"}}

    model = craft(runs["classification"] / "model.safetensors", tmp_path / "m.st", edit)
    capsys.readouterr()
    code = main(["info", str(model)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert code == 0 or (code == 2 and len(captured.err.strip().splitlines()) == 1)
