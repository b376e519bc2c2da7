"""Run folders of ``betaprop train``: where one goes, what it holds (``write_run``), and the
training run in memory (``TrainRun``).

A run folder holds ``model.safetensors`` (weights, the standardisation and label encoding,
the training settings and metrics), ``history.csv`` (one row per epoch, with the per-layer
diagnostics), ``report.png``, and with ``--checkpoint-every`` or after Ctrl-C the checkpoint
of ``betaprop.files.checkpoint`` (``FILENAME``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.network import Network
from ..files.checkpoint import FILENAME as CHECKPOINT_FILE
from ..files.datasets import Dataset
from ..files.model import atomic_write, save
from ..files.preprocessing import Preprocessing
from ..training.state import History
from .models import cell
from .options import UserError

if TYPE_CHECKING:
    from ..explain.plots import Confusion

__all__ = [
    "MODEL_FILE",
    "HISTORY_FILE",
    "REPORT_FILE",
    "CHECKPOINT_FILE",
    "TrainRun",
    "default_out",
    "check_out",
    "LOCK_FILE",
    "RUN_FILES",
    "RunFolder",
    "write_run",
    "finite",
    "portable_argv",
]

MODEL_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.png"
LOCK_FILE = ".betaprop.lock"  # held (flock) by the one process writing a run folder
# every file that train writes (or replaces) in a run folder
RUN_FILES = (MODEL_FILE, HISTORY_FILE, REPORT_FILE, CHECKPOINT_FILE, LOCK_FILE)


@dataclass
class TrainRun:
    """Everything a training run produced, in memory (``train_run``)."""

    net: Network
    prep: Preprocessing
    history: History
    data: Dataset
    splits: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    metadata: dict[str, Any]
    out: str
    seconds: float
    confusion: Confusion | None = None  # what report.png shows (None: regression)
    warnings: list[tuple[int, int, str]] = field(default_factory=list)


def default_out(create: bool = True) -> str:
    """runs/<timestamp>/, with -2, -3, ... appended if that folder exists.

    With ``create`` the folder is made here, by ``os.mkdir`` (atomic): two runs started in
    the same second get different folders, never one between them.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    k = 1
    while True:
        out = os.path.join("runs", stamp if k == 1 else f"{stamp}-{k}")
        k += 1
        if not create:
            if not os.path.exists(out):
                return out
            continue
        try:
            os.makedirs("runs", exist_ok=True)
            os.mkdir(out)
            return out
        except FileExistsError:
            continue
        except OSError as error:
            raise UserError(f"cannot create the run folder {out!r}: {error.strerror}") from None


def check_out(out: str, *, force: bool = False, resume: bool = False) -> None:
    """Raise UserError unless ``out`` can become a run folder.

    A folder that already holds a run (its model file or checkpoint) is refused unless
    ``force`` (replace that run) or ``resume`` (continue it).
    """
    if os.path.lexists(out) and not os.path.exists(out):
        raise UserError(f"--out {out!r} is a dangling symbolic link")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out must be a folder, got {out!r} (an existing file)")
    held = [
        name for name in (MODEL_FILE, CHECKPOINT_FILE) if os.path.lexists(os.path.join(out, name))
    ]
    if held and not force and not resume:
        raise UserError(
            f"--out {out!r} holds a run ({held[0]}): choose another folder, continue it with "
            "--resume, or replace it with --force"
        )
    existing = os.path.join(out, MODEL_FILE)
    if os.path.isdir(existing):
        raise UserError(f"--out must not hold a folder named {MODEL_FILE}, got {out!r}")
    parent = os.path.abspath(out)  # the folder itself, or the nearest one that exists
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"--out must be a folder betaprop can create or write, got {out!r}")


def write_run(
    out: str,
    net: Network,
    metadata: dict[str, Any],
    history: History,
    *,
    confusion: Confusion | Callable[[], Confusion] | np.ndarray | None = None,
    prep: Preprocessing | None = None,
) -> dict[str, str]:
    """Write a run folder: the model file, history.csv and report.png (each atomically), in
    that order: the figure comes last, so nothing it needs can cost the model.

    ``confusion`` is what the report's confusion panel shows (``plots.Confusion``, or (C, C)
    counts), or a function that computes it once the model and history are written. Creates
    ``out`` if needed; returns the paths written. Every file is replaced whole, so this can
    be called again (after every epoch, say) on the same folder. A file that cannot be
    written (a full disk, no memory left for the figure) raises a UserError that names what
    is complete.
    """
    os.makedirs(out, exist_ok=True)
    paths = {
        "model": os.path.join(out, MODEL_FILE),
        "history": os.path.join(out, HISTORY_FILE),
        "report": os.path.join(out, REPORT_FILE),
    }
    written: list[str] = []

    def step(name: str, write: Any) -> None:
        try:
            write()
        except (OSError, ValueError, MemoryError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            reason = "out of memory" if isinstance(error, MemoryError) else reason
            kept = ", ".join(written) if written else "nothing"
            lacking = [p for p in (MODEL_FILE, HISTORY_FILE, REPORT_FILE) if p not in written]
            raise UserError(
                f"the run folder {out!r} is incomplete: {name} could not be written ({reason}); "
                f"complete: {kept}; not written: {', '.join(lacking)}"
            ) from None
        written.append(name)

    step(MODEL_FILE, lambda: save(net, paths["model"], metadata=metadata))
    step(
        HISTORY_FILE,
        lambda: atomic_write(paths["history"], _history_csv(history).encode("utf-8")),
    )
    step(REPORT_FILE, lambda: _report(out, paths["report"], net, history, confusion, prep))
    return paths


def _report(
    out: str,
    path: str,
    net: Network,
    history: History,
    confusion: Confusion | Callable[[], Confusion] | np.ndarray | None,
    prep: Preprocessing | None,
) -> None:
    """report.png, written to a unique temporary file and renamed (atomic)."""
    from ..explain import plots

    if callable(confusion):
        confusion = confusion()
    temporary = os.path.join(out, f".{REPORT_FILE}.{secrets.token_hex(6)}.tmp.png")
    classification = prep is not None and prep.task == "classification"
    try:
        plots.report(
            history,
            temporary,
            confusion=confusion,
            class_names=prep.classes if prep is not None else None,
            confusion_title=(
                f"confusion matrix ({prep.extra.get('confusion_split', 'test')})"
                if prep is not None
                else "confusion matrix"
            ),
            score_name="accuracy" if classification else "R²",
            title=f"betaprop: sizes {list(net.sizes)}, {net.activations[0]}, {net.loss.name}",
        )
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class RunFolder:
    """Ownership of a run folder while one process writes it (a context manager).

    Entering creates the folder if needed and takes an exclusive ``flock`` on its
    ``LOCK_FILE``, which records the holder's pid and host. A second writer is refused
    with a UserError naming the holder; a lock left by a process that died is no lock at
    all (the kernel released it), so it is taken over. Leaving releases the lock and
    removes the lock file; after a failure a folder made here that is still empty is
    removed too.
    """

    def __init__(self, out: str, created: bool) -> None:
        self.out, self.created = out, created
        self.path = os.path.join(out, LOCK_FILE)
        self.fd: int | None = None

    def __enter__(self) -> RunFolder:
        import fcntl

        try:
            os.makedirs(self.out, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"cannot create the run folder {self.out!r}: {error.strerror}"
            ) from None
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as error:
                raise UserError(
                    f"cannot write in the run folder {self.out!r}: {error.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                raise UserError(
                    f"the run folder {self.out!r} is being written by another betaprop process "
                    f"({holder}); wait for it, or choose another --out"
                ) from None
            except OSError:  # a file system without flock: go on unlocked
                pass
            try:  # the file locked must still be the lock file (not one just removed)
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            self.fd = fd
            return self
        raise UserError(f"cannot lock the run folder {self.out!r}")

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self.fd)  # releases the flock
            self.fd = None
        if kind is not None and self.created:
            try:
                os.rmdir(self.out)  # only if still empty
            except OSError:
                pass


def _history_csv(history: History) -> str:
    columns = history.columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for i in range(len(history.epoch)):
        writer.writerow([cell(values[i]) for values in columns.values()])
    return buffer.getvalue()


def finite(value: Any) -> Any:
    """JSON-ready copy with NaN/inf replaced by None."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def portable_argv(argv: list[str] | None) -> list[str] | None:
    """The command line with ``--data`` made absolute when it names a file."""
    if argv is None:
        return None
    portable = list(argv)
    for i, token in enumerate(portable):
        if token == "--data" and i + 1 < len(portable) and os.path.isfile(portable[i + 1]):
            portable[i + 1] = os.path.abspath(portable[i + 1])
        elif token.startswith("--data=") and os.path.isfile(token[len("--data=") :]):
            portable[i] = "--data=" + os.path.abspath(token[len("--data=") :])
    return portable
