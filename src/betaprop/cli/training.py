"""The steps of ``betaprop train`` between the options and the run folder: the data and its
splits, the memory check, fitting with the command's callbacks, and the training record.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.losses import LOSSES
from ..engine.network import Network
from ..files.datasets import (
    BUNDLED,
    SYNTHETIC,
    Dataset,
    class_labels,
    infer_task,
    load_data,
)
from ..files.preprocessing import Preprocessing
from ..training.loop import fit
from ..training.state import Callback, History, InterruptedWarning
from .memory import network_bytes, require_memory
from .models import impute_strategy, print_notes, table_options
from .options import (
    UserError,
)
from .progress import ProgressBar
from .runs import (
    TrainRun,
)
from .settings import split_rows
from .sharded import Shard, balanced_weights, shardable, sharded_data_and_splits

if TYPE_CHECKING:
    from ..explain.plots import Confusion

BLOCK_ROWS = 65536  # rows encoded at a time (split_arrays)

__all__ = [
    "confusion_matrix",
    "confusion_split",
    "data_and_splits",
    "data_settings",
    "final_confusion",
    "fit_network",
    "largest_of_ranks",
    "require_training_memory",
    "split_arrays",
    "split_inputs",
    "training_data",
    "training_record",
]


def require_training_memory(
    args: argparse.Namespace, n_inputs: int, prep: Preprocessing, n: int
) -> None:
    """Refuse options whose network, batch and data need more memory than is available,
    before the network is made (``cli.memory``)."""
    outputs = max(prep.n_classes, 1)
    sizes = [n_inputs, *args.hidden, outputs]
    itemsize = np.dtype(args.dtype).itemsize
    batch = min(args.batch_size, max(n, 1))
    needed, n_params = network_bytes(sizes, itemsize, batch, n * (n_inputs + outputs))
    require_memory(
        f"--hidden {','.join(map(str, args.hidden)) or 'none'}",
        needed,
        f"{n_params:,} parameters in {args.dtype}, batches of {batch}, {n:,} training rows",
    )


def data_and_splits(
    args: argparse.Namespace,
) -> tuple[Dataset, Preprocessing, dict[str, np.ndarray], Callable[[], None]]:
    """The data of --data, its preprocessing (fitted on the training rows), the splits, and
    what prints the notes on them: the caller calls it once the options are known to be good
    (the memory pre-check, the network), so that a refusal is its one line alone."""
    data = load_data(
        args.data, args.target, seed=args.seed, dtype=args.dtype, **table_options(args)
    )  # in the network's dtype: a float32 run reads a large file in half the memory
    task = infer_task(data) if args.task == "auto" else args.task
    stratify = class_labels(data.target) if task == "classification" else None
    splits = split_rows(len(data.X), stratify, args.val_fraction, args.test_fraction, args.seed)
    impute = impute_strategy(args, data)
    prep = Preprocessing.fit(
        data, task, splits["train"], impute=impute, indicator=getattr(args, "indicator", False)
    )
    # the notes' words now: the table as read (its frame) is let go once encoded
    notes, filled = list(data.notes), filled_note(data, impute)
    if prep.columns is not None:  # a table: from here on, its encoded features
        data = Dataset(prep.encode_table(data), data.target, list(prep.feature_names),
                       data.target_name, data.source, data.task)  # fmt: skip
    encoded = data

    def say_notes() -> None:  # --quiet prints nothing
        if not getattr(args, "quiet", False):
            print_notes(notes)
            if args.task == "auto" and encoded.task is None:
                task_note(encoded, task)  # the target and its name, as read
            if filled:
                print(filled, file=sys.stderr)

    if args.loss and LOSSES[args.loss].targets == "counts":  # the log link needs them as they are
        prep.target_mean, prep.target_scale = 0.0, 1.0
        lowest = min(float(v) for v in data.target) if task == "regression" else 0.0
        if lowest < 0:
            raise UserError(f"--loss {args.loss} needs a target >= 0 (counts), got {lowest!r}")
    return data, prep, splits, say_notes


def training_data(args: argparse.Namespace, comm: Any) -> tuple[Any, Any, Any, Any, Shard | None]:
    """``data_and_splits``; under K ranks with a data file, each rank's own rows
    (``cli.sharded``), else the whole table on every rank."""
    if shardable(args, comm):
        loaded = sharded_data_and_splits(args, comm)
        if loaded is not None:
            return loaded
    return (*data_and_splits(args), None)


def largest_of_ranks(comm: Any, count: int) -> int:
    """The largest ``count`` of the ranks (the memory pre-check: every rank's is the same)."""
    if comm is None:
        return count
    from ..training.launch import mpi

    return int(comm.allreduce(count, op=mpi().MAX))


def task_note(data: Dataset, task: str) -> None:
    """One line on stderr saying which task a numeric target made, and how to choose the other."""
    from ..files.datasets import MAX_INTEGER_CLASSES, numeric_labels

    other = "regression" if task == "classification" else "classification"
    numbers = numeric_labels(data.target)
    if numbers is None:
        return  # text labels: classification, no other choice
    if task == "classification":
        count = len(np.unique(numbers))
        why = f"its {count} distinct values are integers (at most {MAX_INTEGER_CLASSES})"
    else:
        why = "its values are numbers"
    print(
        f"betaprop: note: task {task} (target {data.target_name!r}: {why}); --task {other} "
        "chooses the other",
        file=sys.stderr,
    )


def filled_note(data: Dataset, impute: str | None) -> str | None:
    """The line saying which gaps were filled, and with what; None when none were."""
    if impute is None or data.frame is None:
        return None
    gaps = data.frame.isna().sum()
    filled = [(name, int(gaps[name])) for name in data.feature_names if gaps[name]]
    if not filled:
        return None
    shown = ", ".join(f"{name} ({count})" for name, count in filled[:6])
    more = f" and {len(filled) - 6} more columns" if len(filled) > 6 else ""
    return (
        f"betaprop: note: filled {sum(c for _, c in filled)} missing values ({impute}; "
        f"categories: the most frequent) in {shown}{more}; --impute none refuses them"
    )


def class_weights(
    args: argparse.Namespace, prep: Preprocessing, data: Dataset, rows: np.ndarray
) -> np.ndarray | None:
    """--class-weight balanced: each training row weighs n / (k n_c), its class c's share
    (scikit-learn's "balanced"), so that every class weighs the same in the loss."""
    if getattr(args, "class_weight", None) is None:
        return None
    if prep.task != "classification":
        raise UserError("--class-weight is for classification; this run does regression")
    labels = np.array(class_labels(data.target[rows]), dtype=object)
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return len(labels) / (len(classes) * counts[index])


def split_arrays(
    net: Network, prep: Preprocessing, data: Dataset, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs X (n, N_0) and targets D (n, N_Q) of some rows, as the network takes them
    (none: a rank that holds no rows of a split)."""
    X = np.empty((len(rows), net.sizes[0]), net.dtype)
    D = np.empty((len(rows), net.sizes[-1]), net.dtype)
    # in blocks of rows: the float64 arithmetic of ``transform`` never holds the whole split
    for start in range(0, len(rows), BLOCK_ROWS):
        block = rows[start : start + BLOCK_ROWS]
        X[start : start + len(block)] = prep.transform(data.X[block], net.dtype)
        D[start : start + len(block)] = prep.encode(data.target[block], net.sizes[-1], net.dtype)
    return X, D


def split_inputs(net: Any, prep: Any, data: Any, rows: Any, inputs: Any) -> tuple[Any, Any]:
    """X, D of some rows: from the table (``split_arrays``), or, sharded, the split's
    standardised ``inputs`` with their targets."""
    if inputs is None or not len(rows):
        return split_arrays(net, prep, data, rows)
    return inputs, prep.encode(data.target[rows], net.sizes[-1], net.dtype)


def data_settings(
    args: argparse.Namespace, net: Any, prep: Any, data: Any, splits: Any, shard: Any, inputs: Any
) -> dict[str, Any]:
    """``fit``'s arguments about the data besides X, D: the batch size, sharded the global
    numbers of this rank's training rows, sample weights, and the validation rows."""
    settings: dict[str, Any] = {"batch_size": min(args.batch_size, len(splits["train"]))}
    mine = shard.local if shard is not None else splits
    if shard is not None:  # each rank its own rows (training.sharding)
        settings["rows"] = shard.numbers["train"]
        weighted = getattr(args, "class_weight", None) is not None
        settings["sample_weight"] = balanced_weights(prep, data, shard) if weighted else None
    else:
        settings["sample_weight"] = class_weights(args, prep, data, splits["train"])
    validation = split_inputs(net, prep, data, mine["validation"], inputs.get("validation"))
    settings["validation_data"] = validation if len(splits["validation"]) else None
    return settings


def final_confusion(run: TrainRun, shard: Any, inputs: Any, comm: Any) -> Any:
    """What draws the report's confusion matrix once the model is written: counted from the
    rows (one process), or, sharded, the sums of every rank's counts (taken now, by all)."""
    net, prep, data, splits = run.net, run.prep, run.data, run.splits
    if shard is None:

        def confusion() -> Any:  # after the model and history are written (write_run)
            run.confusion = confusion_matrix(net, prep, data, splits)
            return run.confusion

        return confusion
    from .sharded_metrics import reduced_confusion  # (which imports this module)

    shown = prep.extra["confusion_split"]
    target = data.target[shard.local[shown]]
    run.confusion = reduced_confusion(net, prep, inputs[shown], target, comm)
    return lambda: run.confusion


def fit_network(
    net: Network,
    X: np.ndarray,
    D: np.ndarray,
    settings: dict[str, Any],
    callbacks: list[Callback],
    bar: ProgressBar | None,
) -> History:
    """``fit`` with the progress bar (if any) on, and the warnings the run folder reports off."""
    from ..explain.diagnostics import GradientWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientWarning)
        warnings.simplefilter("ignore", InterruptedWarning)  # _cmd_train says it
        # overflow on the way to a divergence: the DivergenceError's one line says it
        warnings.simplefilter("ignore", RuntimeWarning)
        if bar is not None:
            callbacks = [*callbacks, bar]
            bar.progress.start()
        try:
            return fit(net, X, D, callbacks=callbacks, **settings)
        finally:
            if bar is not None:
                bar.progress.stop()


def confusion_split(prep: Preprocessing, splits: dict[str, np.ndarray]) -> str:
    """The split the report's confusion matrix counts: test, else validation, else training
    (recorded in the preprocessing, so the model file says which)."""
    shown = next(name for name in ("test", "validation", "train") if len(splits[name]))
    prep.extra["confusion_split"] = shown
    return shown


def confusion_matrix(
    net: Network, prep: Preprocessing, data: Dataset, splits: dict[str, np.ndarray]
) -> Confusion:
    """The confusion matrix that the report shows, on the rows of ``confusion_split``: of
    the ``MOST_CLASSES`` most frequent classes when there are more, counted from the labels
    (never a C x C matrix)."""
    from ..explain.plots import Confusion

    rows = splits[confusion_split(prep, splits)]
    assert prep.classes is not None  # a classification
    predicted = prep.decode(net.predict(prep.transform(data.X[rows], net.dtype)))
    return Confusion.of(prep.labels(data.target[rows]), list(predicted), prep.classes)


def training_record(
    args: argparse.Namespace, run: TrainRun, optimizer: Any, batch_size: int
) -> dict[str, Any]:
    """The training settings and outcome that the model file keeps (``info`` shows them)."""
    net, history, data = run.net, run.history, run.data
    return {
        "data": data.source,
        "bundled": data.source in BUNDLED + SYNTHETIC,
        "target": data.target_name,
        "task": run.prep.task,
        "hidden": list(args.hidden),
        "activation": list(net.activations[:-1]),
        "output": net.activations[-1],
        "loss": net.loss.name,
        "optimizer": args.optimizer,
        "learning_rate": float(optimizer.learning_rate),
        "momentum": getattr(optimizer, "momentum", None),
        "weight_decay": float(optimizer.weight_decay),
        "schedule": getattr(args, "schedule", "constant"),
        "epochs": args.epochs,
        "epochs_run": len(history.epoch),
        "interrupted": history.interrupted,
        "best_epoch": history.best_epoch,
        "stopped_early": history.stopped_early,
        "early_stopping": args.early_stopping,
        "batch_size": batch_size,
        "seed": args.seed,
        "dtype": net.dtype,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
        "rows": {name: int(len(rows)) for name, rows in run.splits.items()},
        "seconds": run.seconds,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- --resume
