"""A hostile world (issue 15): special files, crafted model files, run folders, extreme
values, impossible memory, filesystem errors.

Every case runs the ``betaprop`` command in this process (``main``) under an alarm, so that
a hang fails the test instead of blocking it; each refusal is one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save

from betaprop.cli import main
from betaprop.cli.runs import LOCK_FILE
from betaprop.files.container import atomic_write, digest
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


# ------------------------------------------------------------------------------ class 4
_SCRIPT = Path(sys.executable).with_name("betaprop")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "betaprop.cli"]
SMALL = ["--epochs", "2", "--hidden", "4", "--seed", "0", "--quiet"]


def test_two_runs_started_in_the_same_second_get_their_own_folders(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    argv = [*COMMAND, "train", "--data", str(runs["data"]), *SMALL]
    processes = [subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=ALARM) == 0, process.stderr.read() if process.stderr else ""
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2, folders
    for folder in folders:
        assert (folder / "model.safetensors").is_file()
        assert not (folder / LOCK_FILE).exists()  # released at the end


def test_a_finished_run_is_replaced_only_with_force(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--data", str(runs["data"]), *SMALL, "--out", str(out)]
    assert main(argv) == 0
    model = (out / "model.safetensors").read_bytes()
    refused(capsys, [*argv, "--seed", "1"], "holds a run (model.safetensors)", "--force")
    assert (out / "model.safetensors").read_bytes() == model
    (out / "checkpoint.safetensors").write_bytes(b"an old run's checkpoint")
    assert main([*argv, "--seed", "1", "--force"]) == 0
    assert (out / "model.safetensors").read_bytes() != model
    assert not (out / "checkpoint.safetensors").exists()  # the replaced run's, removed


_HOLD = """
import sys, time
from betaprop.cli.runs import RunFolder
RunFolder(sys.argv[1], False).__enter__()
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_and_a_dead_holders_lock_is_taken_over(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        argv = ["train", "--data", str(runs["data"]), *SMALL, "--out", str(out)]
        refused(capsys, argv, "being written by another betaprop process", f"pid {holder.pid}")
        assert not (out / "model.safetensors").exists()
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid}" in (out / LOCK_FILE).read_text()  # stale: its process is dead
    assert main(argv) == 0
    assert (out / "model.safetensors").is_file() and not (out / LOCK_FILE).exists()


def test_atomic_writes_use_unique_temporary_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file"
    sources: list[str] = []
    replace = os.replace

    def recording(source: Any, destination: Any) -> None:
        sources.append(os.fspath(source))
        replace(source, destination)

    monkeypatch.setattr(os, "replace", recording)
    contents = [bytes([k]) * 100_000 for k in range(8)]

    def writer(k: int) -> None:
        for _ in range(10):
            atomic_write(target, contents[k])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sources) == len(set(sources)) == 80  # every write its own temporary file
    assert target.read_bytes() in contents  # one writer's whole file, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary left


def _interrupted(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    """Run ``betaprop argv`` and Ctrl-C it (a real SIGINT) after its first checkpoint."""
    from betaprop.files import checkpoint

    saving = checkpoint.Checkpoint._save

    def save_then_interrupt(self: Any, net: Any, history: Any) -> None:
        saving(self, net, history)
        if self.saved == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(checkpoint.Checkpoint, "_save", save_then_interrupt)
    assert main(argv) == 130
    monkeypatch.setattr(checkpoint.Checkpoint, "_save", saving)


def test_resume_never_replaces_a_finished_model(
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = ["--data", str(runs["data"]), "--hidden", "4", "--seed", "0", "--quiet"]
    interrupted = tmp_path / "interrupted"
    _interrupted(monkeypatch, ["train", *data, "--epochs", "6", "--checkpoint-every", "1",
                               "--out", str(interrupted)])  # fmt: skip
    finished = runs["classification"] / "model.safetensors"
    shutil.copy(interrupted / "model.safetensors", tmp_path / "own.safetensors")
    shutil.copy(finished, interrupted / "model.safetensors")  # another run's finished model
    refused(capsys, ["train", "--resume", str(interrupted)], "model of a finished run")
    assert (interrupted / "model.safetensors").read_bytes() == finished.read_bytes()
    shutil.copy(tmp_path / "own.safetensors", interrupted / "model.safetensors")
    assert main(["train", "--resume", str(interrupted), "--quiet"]) == 0  # its own: resumed
    record = read_model(interrupted / "model.safetensors").metadata["training"]
    assert record["interrupted"] is False and record["epochs_run"] == 6


# ------------------------------------------------------------------------------ class 2
def _with_cell(source: Path, target: Path, line: int, column: int, cell: str) -> Path:
    lines = source.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[column] = cell
    lines[line - 1] = ",".join(cells)
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize(
    "column, regression", [(1, False), (3, True)], ids=["feature", "regression target"]
)
def test_a_cell_of_1e300_is_refused_up_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, column: int, regression: bool
) -> None:
    table = _write_table(tmp_path / "table.csv", regression=regression)
    data = _with_cell(table, tmp_path / "big.csv", 6, column, "1e300")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), *SMALL, "--out", str(out)]
    name = "by"[column == 3]
    refused(capsys, argv, "line 6", f"column {name!r}", "'1e300'", "too large")
    assert not out.exists()  # no empty run folder


def test_extreme_values_at_predict_are_refused_naming_them(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    model = str(runs["classification"] / "model.safetensors")
    data = _with_cell(runs["data"], tmp_path / "a.csv", 6, 1, "1e300")
    refused(capsys, ["predict", model, str(data)], "line 6", "column 'b'", "too large")
    data = _with_cell(runs["data"], tmp_path / "b.csv", 6, 1, "1e100")  # > float32 once scaled
    refused(capsys, ["predict", model, str(data)], "row 5", "column 'b'", "1e+100", "float32")


def test_a_failure_after_training_keeps_what_was_complete(
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import betaprop.cli.runs as run_files

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_files, "atomic_write", full)  # history.csv: the disk is full
    out = tmp_path / "run"
    argv = ["train", "--data", str(runs["data"]), *SMALL, "--out", str(out)]
    refused(
        capsys,
        argv,
        "incomplete",
        "history.csv could not be written (No space left on device)",
        "complete: model.safetensors",
        "not written: history.csv, report.png",
    )
    read_model(out / "model.safetensors")  # the complete part is intact
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]  # no lock, no temp


# ------------------------------------------------------------------------------ class 5
@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--hidden", "99999999999"], ["--hidden 99999999999", "parameters"]),
        (["gradcheck", "--sizes", "100000,100000"], ["--sizes 100000,100000", "10,000,100,000"]),
        (["gradcheck", "--examples", "100000000"], ["--examples 100000000", "100,000,000"]),
    ],
    ids=["train --hidden", "gradcheck --sizes", "gradcheck --examples"],
)
def test_impossible_memory_is_refused_before_allocating(
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, Path],
    tmp_path: Path,
    argv: list[str],
    words: list[str],
) -> None:
    from betaprop.cli.memory import available_bytes

    available = available_bytes()
    assert available is not None and available > 0
    if argv[0] == "train":
        argv = [*argv, "--data", str(runs["data"]), "--out", str(tmp_path / "run")]
    tracemalloc.start()
    err = refused(capsys, argv, *words, "needs about", "available on this machine")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * 1024**2  # refused before anything large was allocated
    assert "GiB" in err or "TiB" in err
    assert not (tmp_path / "run").exists()


def test_the_memory_estimate_counts_parameters_batch_and_data() -> None:
    from betaprop.cli.memory import PARAMETER_COPIES, WORK_PER_UNIT, network_bytes

    needed, n_params = network_bytes([3, 4, 2], 4, batch=10, data_values=50)
    assert n_params == 3 * 4 + 4 + 4 * 2 + 2
    assert needed == 4 * (PARAMETER_COPIES * n_params + 10 * 9 * WORK_PER_UNIT + 50)


# ------------------------------------------------------------------------------ class 8
def test_resume_refuses_an_option_given_at_its_default_value(
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "run"
    data = ["--data", str(runs["data"]), "--hidden", "4", "--seed", "0", "--quiet"]
    _interrupted(monkeypatch, ["train", *data, "--epochs", "4", "--checkpoint-every", "1",
                               "--out", str(out)])  # fmt: skip
    for option in (["--epochs", "100"], ["--seed", "0"], ["--epochs=100"], ["--lr", "0.001"]):
        refused(capsys, ["train", "--resume", str(out), *option], "drop --")
    assert main(["train", "--resume", str(out), "--quiet", "--checkpoint-every", "2"]) == 0


def test_a_seed_beyond_32_bits_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    refused(
        capsys, ["train", "--seed", "4294967296"], "--seed must be an integer in [0, 4294967295]"
    )


def test_a_diverging_learning_rate_prints_one_line_and_no_warning(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    capsys.readouterr()
    out = tmp_path / "run"
    argv = ["train", "--data", str(runs["data"]), *SMALL, "--lr", "1e308", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # one would end the command here
        assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "diverged" in err and "Nothing was written" in err
    assert not out.exists()


def test_gradcheck_of_the_poisson_loss_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradcheck", "--loss", "poisson", "--output", "exp"]) == 0
    assert main(["gradcheck", "--loss", "poisson"]) == 0
    assert "passed" in capsys.readouterr().out


# ------------------------------------------------------------------------------ class 6
@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount(options)``: a fresh tmpfs with those options (skips where mount is not
    permitted: not root, or no CAP_SYS_ADMIN in a container)."""
    mounted: list[Path] = []

    def make(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_out_under_proc_and_a_dangling_symlink_are_refused(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    train = ["train", "--data", str(runs["data"]), *SMALL, "--out"]
    refused(capsys, [*train, "/proc/betaprop-run"], "/proc/betaprop-run")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing" / "target")
    refused(capsys, [*train, str(link)], "dangling symbolic link")
    model = str(runs["classification"] / "model.safetensors")
    refused(
        capsys, ["predict", model, str(runs["data"]), "--out", "/proc/p.csv"], "nothing written"
    )


def test_a_missing_parent_for_predict_and_trace_out_is_named(
    capsys: pytest.CaptureFixture[str], runs: dict[str, Path], tmp_path: Path
) -> None:
    model = str(runs["classification"] / "model.safetensors")
    missing = tmp_path / "no" / "such"
    argv = ["predict", model, str(runs["data"]), "--out", str(missing / "p.csv")]
    refused(capsys, argv, "does not exist", "nothing written")
    refused(capsys, ["trace", "--out", str(missing / "t.txt")], "does not exist")
    assert not (tmp_path / "no").exists()


def test_a_read_only_mount_is_refused(
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, Path],
    mount: Callable[[str], Path],
) -> None:
    folder = mount("size=1m,ro")
    train = ["train", "--data", str(runs["data"]), *SMALL, "--out", str(folder / "run")]
    refused(capsys, train, str(folder / "run"))
    model = str(runs["classification"] / "model.safetensors")
    argv = ["predict", model, str(runs["data"]), "--out", str(folder / "p.csv")]
    refused(capsys, argv, "Read-only file system", "nothing written")


def test_a_full_disk_keeps_what_was_complete_and_says_what_was_not(
    capsys: pytest.CaptureFixture[str],
    runs: dict[str, Path],
    mount: Callable[[str], Path],
) -> None:
    folder = mount("size=16k")  # the model file and history fit, report.png does not
    out = folder / "run"
    train = ["train", "--data", str(runs["data"]), *SMALL, "--out", str(out)]
    refused(capsys, train, "incomplete", "No space left on device", "complete: model.safetensors")
    read_model(out / "model.safetensors")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary, no lock
