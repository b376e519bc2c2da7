"""Run folders of ``betaprop train``: where one goes, what it holds (``write_run``), and the
training run in memory (``TrainRun``).

A run folder holds ``model.safetensors`` (weights, the standardisation and label encoding,
the training settings and metrics), ``history.csv`` (one row per epoch, with the per-layer
diagnostics), ``report.png``, and with ``--checkpoint-every`` or after Ctrl-C the checkpoint
of ``betaprop.files.checkpoint`` (``FILENAME``).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ..engine.network import Network
from ..files.checkpoint import FILENAME as CHECKPOINT_FILE
from ..files.datasets import Dataset
from ..files.model import atomic_write, save
from ..files.preprocessing import Preprocessing
from ..training.state import History
from .models import cell
from .options import UserError

__all__ = [
    "MODEL_FILE",
    "HISTORY_FILE",
    "REPORT_FILE",
    "CHECKPOINT_FILE",
    "TrainRun",
    "default_out",
    "check_out",
    "write_run",
    "finite",
    "portable_argv",
]

MODEL_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.png"


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
    confusion: np.ndarray | None = None
    warnings: list[tuple[int, int, str]] = field(default_factory=list)


def default_out() -> str:
    """runs/<timestamp>/, with -2, -3, ... appended if that folder exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join("runs", stamp)
    k = 2
    while os.path.exists(out):
        out = os.path.join("runs", f"{stamp}-{k}")
        k += 1
    return out


def check_out(out: str) -> None:
    """Raise UserError unless ``out`` can become a run folder."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out must be a folder, got {out!r} (an existing file)")
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
    confusion: np.ndarray | None = None,
    prep: Preprocessing | None = None,
) -> dict[str, str]:
    """Write a run folder: the model file, history.csv and report.png (each atomically).

    Creates ``out`` if needed; returns the paths written. Every file is replaced whole,
    so this can be called again (after every epoch, say) on the same folder.
    """
    from ..explain import plots

    os.makedirs(out, exist_ok=True)
    paths = {
        "model": os.path.join(out, MODEL_FILE),
        "history": os.path.join(out, HISTORY_FILE),
        "report": os.path.join(out, REPORT_FILE),
    }
    save(net, paths["model"], metadata=metadata)
    atomic_write(paths["history"], _history_csv(history).encode("utf-8"))
    temporary = os.path.join(out, f".{REPORT_FILE}.tmp.png")
    classification = prep is not None and prep.task == "classification"
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
    os.replace(temporary, paths["report"])
    return paths


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
