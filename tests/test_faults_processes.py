"""Faults across processes: Ctrl-C and SIGKILL during training, resume, determinism.

Every run here is a separate Python process, as a user's would be. The oracle for a
resumed run is the same command left alone: model tensors and history (all columns but
the wall-clock ``seconds``) must be equal bit for bit.

To interrupt a run in the middle whatever the machine's load, the interrupted runs wait for
the test instead of racing it: ``PAUSED_COMMAND`` stops after its Nth checkpoint, says so
with a file ``paused`` and waits until a stop signal has reached its own handler, or until
the test writes ``release`` (a signal sent to another process); waiting changes no number.
A test never relies on how long anything takes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from betaprop.files.checkpoint import load_checkpoint
from betaprop.files.model import read_model

_SCRIPT = Path(sys.executable).with_name("betaprop")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "betaprop.cli"]
TIMEOUT = 120  # seconds: no test may hang

# The betaprop command, pausing after its Nth checkpoint (argv[1]) until a stop signal has
# reached its handler or the file "release" appears; "paused" tells the test it waits.
PAUSED_COMMAND = """
import os, sys, time
from betaprop.files import checkpoint
from betaprop.training import distributed, interrupt
signalled = []
def recording(handle):
    def handle_and_record(self, signum, frame):
        signalled.append(signum)
        return handle(self, signum, frame)
    return handle_and_record
for guard in (interrupt.InterruptGuard, distributed._AgreedGuard):
    guard._handle = recording(guard._handle)
saving, saves = checkpoint.Checkpoint._save, []
def pausing_save(self, net, history):
    saving(self, net, history)
    saves.append(None)
    if len(saves) == int(sys.argv[1]):
        open("paused", "w").close()
        while not signalled and not os.path.exists("release"):
            time.sleep(0.005)
checkpoint.Checkpoint._save = pausing_save
from betaprop.cli import main
sys.exit(main(sys.argv[2:]))
"""

TRAIN = [
    "train",
    "--data",
    "digits",
    "--hidden",
    "24",
    "--epochs",
    "10",
    "--batch-size",
    "64",
    "--early-stopping",
    "0",
    "--seed",
    "3",
]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def start_paused(args: list[str], cwd: Path, saves: int) -> subprocess.Popen:
    """The command in ``cwd``, to pause after its ``saves``-th checkpoint (see PAUSED_COMMAND)."""
    return subprocess.Popen(
        [sys.executable, "-c", PAUSED_COMMAND, str(saves), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_paused(cwd: Path, process: subprocess.Popen) -> None:
    """Wait for the event, the file ``paused`` in ``cwd``: the process waits for the test."""
    deadline = time.monotonic() + TIMEOUT
    while not (cwd / "paused").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"not paused after {TIMEOUT} s"
        time.sleep(0.02)


def release(cwd: Path) -> None:
    """Let a paused process go on (after a signal sent to another process of the run)."""
    (cwd / "release").touch()


def run_record(folder: Path) -> tuple[dict[str, np.ndarray], list[list[str]]]:
    """The model's tensors and the history table without its ``seconds`` column."""
    tensors = load_file(folder / "model.safetensors")
    with open(folder / "history.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"]
    return tensors, [[row[i] for i in keep] for row in rows]


def assert_same_run(folder: Path, reference: Path) -> None:
    tensors, history = run_record(folder)
    expected_tensors, expected_history = run_record(reference)
    assert sorted(tensors) == sorted(expected_tensors)
    for name, tensor in expected_tensors.items():
        np.testing.assert_array_equal(tensors[name], tensor, err_msg=name)
    assert history == expected_history


def reference_run(
    factory: pytest.TempPathFactory,
    train: list[str],
    command: Callable[[list[str], Path], subprocess.CompletedProcess] | None = None,
) -> Path:
    """The run folder of the command ``train``, uninterrupted, in a folder of its own
    (``command``: the ``run`` function to start it with, this module's by default)."""
    cwd = factory.mktemp("reference")
    result = (command or run)([*train, "--out", "run", "--quiet"], cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted command, without checkpoints."""
    return reference_run(tmp_path_factory, TRAIN)


def test_the_command_is_deterministic_across_processes(reference: Path, tmp_path: Path) -> None:
    result = run([*TRAIN, "--out", "again", "--quiet", "--checkpoint-every", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert_same_run(tmp_path / "again", reference)  # checkpoints change nothing either
    other = run([*TRAIN[:-1], "4", "--out", "other", "--quiet"], tmp_path)  # --seed 4
    assert other.returncode == 0, other.stderr
    tensors, _ = run_record(tmp_path / "other")
    expected, _ = run_record(reference)
    assert not np.array_equal(tensors["0.weight"], expected["0.weight"])


def test_ctrl_c_saves_a_checkpoint_and_the_model_and_exits_130(
    reference: Path, tmp_path: Path
) -> None:
    process = start_paused([*TRAIN, "--out", "run", "--checkpoint-every", "1"], tmp_path, 2)
    wait_until_paused(tmp_path, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130, stderr
    assert "Training interrupted by user." in stderr
    assert "resume with: betaprop train --resume run" in stderr
    assert "Traceback" not in stderr
    saved = load_checkpoint(tmp_path / "run")
    assert saved.history.interrupted and saved.state.epoch == 2
    model = read_model(tmp_path / "run" / "model.safetensors")
    assert model.metadata["training"]["interrupted"] is True
    assert np.isfinite(model.network.params).all()
    # validating, so the model holds the best epoch so far
    assert saved.state.best_params is not None
    np.testing.assert_array_equal(model.network.params, saved.state.best_params)
    _, history = run_record(tmp_path / "run")
    assert len(history) - 1 == saved.state.epoch  # header + one row per completed epoch

    resumed = run(["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", reference)
    again = run(["train", "--resume", "run"], tmp_path)
    assert again.returncode == 2 and "is finished (epoch 10)" in again.stderr


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_like_ctrl_c(
    reference: Path, tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    """What kill, timeout, Slurm and container runtimes send: the batch finishes, the
    checkpoint and the model are written, the command says how to resume and exits 128 + N."""
    process = start_paused([*TRAIN, "--out", "run", "--checkpoint-every", "1"], tmp_path, 2)
    wait_until_paused(tmp_path, process)
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == code, stderr
    assert f"Training interrupted by {sent.name}." in stderr
    assert "resume with: betaprop train --resume run" in stderr
    assert "Traceback" not in stderr
    saved = load_checkpoint(tmp_path / "run")
    assert saved.history.interrupted and saved.state.epoch == 2
    assert np.isfinite(read_model(tmp_path / "run" / "model.safetensors").network.params).all()
    resumed = run(["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", reference)


def test_sigkill_then_resume_equals_the_uninterrupted_run(reference: Path, tmp_path: Path) -> None:
    process = start_paused([*TRAIN, "--out", "run", "--checkpoint-every", "2"], tmp_path, 2)
    wait_until_paused(tmp_path, process)
    process.kill()
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "model.safetensors").exists()  # it never got that far
    saved = load_checkpoint(tmp_path / "run")
    assert saved.state.epoch == 4 and not saved.history.interrupted

    resumed = run(["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "run", reference)


def test_resume_refuses_other_settings_other_data_and_finished_runs(
    reference: Path, tmp_path: Path
) -> None:
    result = run(["train", "--resume", str(reference), "--epochs", "3"], tmp_path)
    assert result.returncode == 2
    assert "--resume goes on with the run's own settings: drop --epochs" in result.stderr
    result = run(["train", "--resume", str(tmp_path / "nothing")], tmp_path)
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------ the library
LIBRARY_RUN = """
import json, os, sys, time
import numpy as np
import betaprop as bp
from betaprop.files.checkpoint import Checkpoint, resume

mode, folder, seed, pause_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 8))
D = np.eye(3)[(X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0.5)]
validation = (X[:60] + 0.1, D[:60])

class Pause(bp.Callback):  # after epoch pause_at's checkpoint: wait to be killed
    def on_epoch_end(self, net, epoch, history):
        if epoch == pause_at:
            open(os.path.join(folder, "..", "paused"), "w").close()
            while True:
                time.sleep(0.005)

if mode == "resume":
    net, history = resume(folder, X, D, validation_data=validation)
else:
    net = bp.Network([8, 16, 16, 3], activation="tanh", loss="cross_entropy", seed=seed)
    history = bp.fit(
        net, X, D, optimizer=bp.optimizers.Adam(0.01), epochs=12, batch_size=16, seed=seed,
        validation_data=validation, schedule=bp.schedules.ReduceOnPlateau(patience=1),
        early_stopping=bp.EarlyStopping(patience=20), callbacks=[Checkpoint(folder), Pause()],
    )
record = {
    "params": net.params.tobytes().hex(),
    "predictions": net.predict(X).tobytes().hex(),
    "history": {k: v for k, v in history.columns().items() if k != "seconds"},
    "best_epoch": history.best_epoch,
}
print(json.dumps(record))
"""


def library(mode: str, folder: Path, seed: int = 1, pause_at: int = 0) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LIBRARY_RUN, mode, str(folder), str(seed), str(pause_at)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_library_fit_is_deterministic_across_processes_and_resumes_after_sigkill(
    tmp_path: Path,
) -> None:
    first = library("fit", tmp_path / "a")
    assert library("fit", tmp_path / "b") == first
    assert library("fit", tmp_path / "c", seed=2)["params"] != first["params"]

    process = subprocess.Popen(
        [sys.executable, "-c", LIBRARY_RUN, "fit", str(tmp_path / "killed"), "1", "3"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until_paused(tmp_path, process)
    process.kill()
    process.communicate(timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "killed").state.epoch == 3
    assert library("resume", tmp_path / "killed") == first


def test_nothing_half_written_is_left_behind_by_a_completed_run(reference: Path) -> None:
    leftovers = [name for name in os.listdir(reference) if name.endswith(".tmp")]
    assert leftovers == []
