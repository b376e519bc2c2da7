"""Signals to ``mpiexec`` during ``betaprop train`` under MPI, and ``--resume`` with another K.

Real processes, as a user starts them: ``mpiexec -n K python -m mpi4py -m betaprop train``
(its rank-0-paused twin, see below). Ctrl-C (SIGINT) or SIGTERM to mpiexec must behave as in
one process: every rank stops after the same batch, rank 0 writes checkpoint and model, the
job exits 130 / 143, never hangs. The oracle for every resumed run is the same command left
alone in one process; float64 runs under MPI equal it up to the order of the sums (1e-12).

The interrupted runs wait for the test instead of racing it (``PAUSED_COMMAND`` of
tests/test_faults_processes.py, here ending through ``run_main`` as ``python -m betaprop``
does): only rank 0 writes checkpoints, so only rank 0 pauses after the first one, while the
other ranks already wait in the next batch's all-reduce. A signal landing then is what made
the ranks stop after different batches and hang (rank 0 in the final barrier, the others in
the all-reduce). Rank 0 goes on once a stop signal has reached its own handler, or once the
test writes ``release`` (after signalling another rank); nothing depends on timing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from betaprop.files.checkpoint import load_checkpoint
from betaprop.files.model import read_model

from .test_distributed import MPIEXEC
from .test_faults_processes import (
    PAUSED_COMMAND,
    TIMEOUT,
    reference_run,
    release,
    run,
    run_record,
    start_paused,
    wait_until_paused,
)

pytest.importorskip("mpi4py")

# PAUSED_COMMAND, ending as ``python -m betaprop`` does under mpiexec (training.distributed)
_ENTRY = "sys.exit(main(sys.argv[2:]))"
assert _ENTRY in PAUSED_COMMAND
PAUSED_RANKS = PAUSED_COMMAND.replace(
    _ENTRY,
    "from betaprop.training.distributed import run_main\n"
    "sys.exit(run_main(lambda: main(sys.argv[2:])))",
)
EXIT_WITHIN = 90  # seconds from the signal to mpiexec's exit: past it, a hang (killed)

TRAIN = [
    "train",
    "--data",
    "digits",
    "--hidden",
    "24",
    "--epochs",
    "6",
    "--batch-size",
    "64",
    "--early-stopping",
    "0",
    "--seed",
    "3",
    "--dtype",
    "float64",
    "--optimizer",
    "sgd",
    "--momentum",
    "0.9",
]


def mpi_environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def start_ranks(k: int, args: list[str], cwd: Path, saves: int) -> subprocess.Popen:
    """``mpiexec -n k`` on the paused command (rank 0 pauses after its ``saves``-th checkpoint)."""
    assert MPIEXEC is not None, "mpiexec not found: pip install -e '.[mpi]'"
    command = [MPIEXEC, "-n", str(k), sys.executable, "-m", "mpi4py", "-c", PAUSED_RANKS]
    return subprocess.Popen(
        [*command, str(saves), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mpi_environment(),
    )


def run_ranks(k: int, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``mpiexec -n k python -m mpi4py -m betaprop ARGS``, the documented command."""
    assert MPIEXEC is not None, "mpiexec not found: pip install -e '.[mpi]'"
    command = [MPIEXEC, "-n", str(k), sys.executable, "-m", "mpi4py", "-m", "betaprop", *args]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=mpi_environment()
    )


def exit_of(process: subprocess.Popen) -> tuple[int, str]:
    """The exit code and stderr; a process still running after EXIT_WITHIN s fails the test
    (it and every process under it are killed first, so that nothing is left spinning)."""
    try:
        _, stderr = process.communicate(timeout=EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        for pid in [*_descendants(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, stderr = process.communicate()
        pytest.fail(f"mpiexec still running {EXIT_WITHIN} s after the signal (a hang):\n{stderr}")
    return process.returncode, stderr


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (Linux /proc): mpiexec's proxy and the ranks."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _is_rank(pid: int) -> bool:
    """Whether a process under mpiexec is a rank (``python -m mpi4py ...``), not hydra's proxy."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"\0mpi4py\0" in handle.read()
    except OSError:
        return False


def assert_equal_run(folder: Path, reference: Path, atol: float = 1e-12) -> None:
    """Model tensors and history (but ``seconds``) of two runs agree to ``atol`` (float64)."""
    tensors, history = run_record(folder)
    expected_tensors, expected_history = run_record(reference)
    assert sorted(tensors) == sorted(expected_tensors)
    for name, tensor in expected_tensors.items():
        assert tensors[name].dtype == np.float64
        np.testing.assert_allclose(tensors[name], tensor, rtol=0, atol=atol, err_msg=name)
    assert history[0] == expected_history[0] and len(history) == len(expected_history)
    values = np.array(history[1:], dtype=float)
    expected = np.array(expected_history[1:], dtype=float)
    np.testing.assert_allclose(values, expected, rtol=atol, atol=atol)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted command in one process."""
    return reference_run(tmp_path_factory, TRAIN)


def interrupt_ranks(k: int, sent: signal.Signals, cwd: Path) -> tuple[int, str]:
    """Start ``mpiexec -n k`` training, signal mpiexec after epoch 1's checkpoint."""
    process = start_ranks(k, [*TRAIN, "--out", "run", "--checkpoint-every", "1"], cwd, 1)
    wait_until_paused(cwd, process)
    process.send_signal(sent)  # mpiexec passes it on; rank 0 goes on once it has it
    return exit_of(process)


def assert_interrupted(folder: Path, stderr: str, by: str) -> None:
    """What one process leaves after a stop signal: the message, checkpoint and model."""
    assert f"Training interrupted by {by}." in stderr
    assert "resume with: betaprop train --resume run" in stderr
    assert "Traceback" not in stderr
    assert "stopping all ranks" not in stderr  # an agreed stop, not an abort
    saved = load_checkpoint(folder)
    assert saved.history.interrupted and saved.state.epoch == 1  # stopped in epoch 2
    model = read_model(folder / "model.safetensors")
    assert model.metadata["training"]["interrupted"] is True
    assert np.isfinite(model.network.params).all()


@pytest.fixture(scope="module")
def ctrl_c_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """A run of ``mpiexec -n 2`` stopped by Ctrl-C (SIGINT to mpiexec): its folder, exit, stderr."""
    cwd = tmp_path_factory.mktemp("ctrl_c")
    code, stderr = interrupt_ranks(2, signal.SIGINT, cwd)
    return cwd / "run", code, stderr


def test_ctrl_c_to_mpiexec_writes_the_checkpoint_exits_130_and_resumes_in_one_process(
    ctrl_c_run: tuple[Path, int, str], reference: Path, tmp_path: Path
) -> None:
    folder, code, stderr = ctrl_c_run
    assert code == 130, stderr
    assert_interrupted(folder, stderr, "user")
    shutil.copytree(folder, tmp_path / "run")
    resumed = run(["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_equal_run(tmp_path / "run", reference)
    again = run(["train", "--resume", "run"], tmp_path)
    assert again.returncode == 2 and "is finished (epoch 6)" in again.stderr


def test_sigterm_to_mpiexec_stops_like_ctrl_c_and_exits_143(tmp_path: Path) -> None:
    """What timeout and container runtimes send to mpiexec, which passes it to every rank."""
    code, stderr = interrupt_ranks(2, signal.SIGTERM, tmp_path)
    assert code == 143, stderr
    assert_interrupted(tmp_path / "run", stderr, "SIGTERM")


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_batch(tmp_path: Path) -> None:
    """What a batch system may do (signal the tasks, not mpiexec): here one rank of two."""
    process = start_ranks(2, [*TRAIN, "--out", "run", "--checkpoint-every", "1"], tmp_path, 1)
    wait_until_paused(tmp_path, process)
    ranks = [pid for pid in _descendants(process.pid) if _is_rank(pid)]
    assert len(ranks) == 2, ranks
    os.kill(max(ranks), signal.SIGINT)  # pending there once kill returns
    release(tmp_path)
    code, stderr = exit_of(process)
    assert code == 130, stderr
    assert_interrupted(tmp_path / "run", stderr, "user")


def test_a_checkpoint_of_two_processes_resumes_with_three(
    ctrl_c_run: tuple[Path, int, str], reference: Path, tmp_path: Path
) -> None:
    """--resume under MPI with another K (uneven shards): only the summation order changes."""
    folder, code, stderr = ctrl_c_run
    assert code == 130, stderr
    shutil.copytree(folder, tmp_path / "run")
    resumed = run_ranks(3, ["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_equal_run(tmp_path / "run", reference)


def test_a_checkpoint_of_one_process_resumes_with_two(reference: Path, tmp_path: Path) -> None:
    process = start_paused([*TRAIN, "--out", "run", "--checkpoint-every", "1"], tmp_path, 1)
    wait_until_paused(tmp_path, process)
    process.send_signal(signal.SIGINT)
    code, stderr = exit_of(process)
    assert code == 130, stderr
    assert load_checkpoint(tmp_path / "run").state.epoch == 1
    resumed = run_ranks(2, ["train", "--resume", "run", "--quiet"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert_equal_run(tmp_path / "run", reference)
