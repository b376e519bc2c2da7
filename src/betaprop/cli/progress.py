"""What ``betaprop train`` shows: the live progress bar (a training callback) on stderr and
the table of results on stdout."""

from __future__ import annotations

import math
import os
from typing import Any

from ..engine.network import Network
from ..training.state import Callback, History
from .options import rich_console
from .runs import HISTORY_FILE, MODEL_FILE, REPORT_FILE, TrainRun

__all__ = ["ProgressBar", "print_train_table"]


class ProgressBar(Callback):
    """Live progress bar: epoch, batch, loss, validation score, time left."""

    def __init__(
        self, console: Any, epochs: int, batches: int, score_name: str, diagnostics: Any
    ) -> None:
        self.progress = _display(console, epochs, batches)  # started and stopped by the caller
        self.epochs, self.batches = epochs, batches
        self.score_name = score_name
        self.diagnostics = diagnostics
        self.task: Any = None
        self.total, self.seen = 0.0, 0
        self.val = "-"
        self.printed = 0

    def on_train_begin(self, net: Network, history: History) -> None:
        self.task = self.progress.add_task(
            "train",
            total=self.epochs * self.batches,
            epoch=1,
            batch=0,
            loss=math.nan,
            val=self.val,
        )

    def on_batch_end(self, net: Network, epoch: int, batch: int, loss: float) -> None:
        if batch == 1:
            self.total, self.seen = 0.0, 0
        self.total += loss
        self.seen += 1
        self.progress.update(
            self.task, advance=1, epoch=epoch, batch=batch, loss=self.total / self.seen
        )

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        if history.val_score:
            self.val = f"{self.score_name} {history.val_score[-1]:.4f}"
        self.progress.update(self.task, val=self.val)
        for _epoch, _layer, message in self.diagnostics.warnings[self.printed :]:
            self.progress.console.print(f"warning: epoch {epoch}: {message}", style="yellow")
        self.printed = len(self.diagnostics.warnings)

    def on_train_end(self, net: Network, history: History) -> None:
        done = len(history.epoch) * self.batches
        self.progress.update(self.task, total=done, completed=done)


def _display(console: Any, epochs: int, batches: int) -> Any:
    """The rich Progress display that a ``ProgressBar`` updates."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"epoch {{task.fields[epoch]:>{len(str(epochs))}}}/{epochs}"),
        BarColumn(),
        TextColumn(f"batch {{task.fields[batch]:>{len(str(batches))}}}/{batches}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[val]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def print_train_table(run: TrainRun) -> None:
    """The metrics of each split, the network and the files written."""
    from rich.table import Table

    task = run.prep.task
    names = ["accuracy", "f1_macro"] if task == "classification" else ["r2", "mae", "rmse"]
    table = Table(title=f"betaprop train: {run.data.source} ({task})")
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("loss", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for split, values in run.metrics.items():
        table.add_row(
            split,
            str(len(run.splits[split])),
            f"{values['loss']:.4f}",
            *(f"{values[name]:.4f}" for name in names),
        )
    h = run.history
    stopped = f", stopped early (best epoch {h.best_epoch})" if h.stopped_early else ""
    table.caption = f"{len(h.epoch)} epochs{stopped}, {run.seconds:.2f} s"
    console = rich_console()
    console.print(table)
    hidden = sorted(set(run.net.activations[:-1]))
    console.print(
        f"network {list(run.net.sizes)}, hidden {', '.join(hidden) or '-'}, output "
        f"{run.net.activations[-1]}, loss {run.net.loss.name}"
    )
    for what, value in run.prep.describe():
        console.print(f"{what}: {value}")
    console.print(f"wrote {os.path.join(run.out, MODEL_FILE)}, {HISTORY_FILE}, {REPORT_FILE}")
