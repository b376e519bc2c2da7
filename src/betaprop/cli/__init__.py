"""The ``betaprop`` command: train, trace, gradcheck, info, predict, evaluate, bench.

Every user error (a bad option, a bad data file, a damaged model file) ends the command
with one line on stderr, exit code 2, no traceback and nothing written. A failed gradient
check and a diverging training run exit with code 1. Progress and tables use rich and go
to stderr and stdout respectively; ``--quiet`` silences both.

``train`` writes a run folder (``write_run``): ``model.safetensors`` (weights, the
standardisation and label encoding, the training settings and metrics), ``history.csv``
(one row per epoch, with the per-layer diagnostics) and ``report.png``.

``train --checkpoint-every N`` also keeps ``checkpoint.safetensors`` in the run folder
(``betaprop.checkpoint``), replaced atomically every N epochs. Ctrl-C finishes the current
mini-batch, writes the run folder with the best weights so far, writes a checkpoint, prints
how to resume and exits with code 130; ``train --resume DIR`` continues the run with its
own settings and ends bit for bit where the uninterrupted run would have.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn

import numpy as np

from .. import __version__
from ..engine.activations import ACTIVATIONS
from ..engine.activations import names as activation_names
from ..files.datasets import (
    BUNDLED,
    SYNTHETIC,
    DataError,
    Dataset,
    Preprocessing,
    class_labels,
    infer_task,
    load_data,
)
from ..engine.losses import LOSSES
from ..engine.network import Network
from ..training.optimizers import OPTIMIZERS, SCHEDULES, get_optimizer, get_schedule
from ..files.model import ModelFile, ModelFileError, atomic_write, read_model, save
from ..training.loop import Callback, DivergenceError, History, InterruptedWarning, evaluate, fit

__all__ = ["main", "build_parser", "train_run", "write_run", "TrainRun", "UserError"]

MODEL_FILE = "model.safetensors"
HISTORY_FILE = "history.csv"
REPORT_FILE = "report.png"
DEFAULT_DATA = "digits"
EXIT_USER_ERROR = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C
CHECKPOINT_FILE = "checkpoint.safetensors"  # betaprop.checkpoint.FILENAME


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) via UserError."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"argument ([^:]+): (must .*)$", message)
        if match:  # "argument --lr: must be ..." -> "--lr must be ..."
            message = f"{match.group(1).split('/')[0]} {match.group(2)}"
        raise UserError(f"{self.prog}: {message}")


# ----------------------------------------------------------------------------- option types
def _number(text: str, accepted: Callable[[float], bool], description: str) -> float:
    """``text`` as a float if ``accepted`` holds for it, else an error naming ``description``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not accepted(value):
        raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def _non_negative_float(text: str) -> float:
    return _number(text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def _fraction(text: str) -> float:
    return _number(text, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


def _sizes_list(text: str, allow_empty: bool) -> list[int]:
    if allow_empty and text.strip().lower() in ("", "none"):
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = [0]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"must be integers >= 1 separated by commas (e.g. 128,64), got {text!r}"
        )
    return values


def _hidden(text: str) -> list[int]:
    return _sizes_list(text, allow_empty=True)


def _sizes(text: str) -> list[int]:
    values = _sizes_list(text, allow_empty=False)
    if len(values) < 2:
        raise argparse.ArgumentTypeError(
            f"must name at least 2 layers N_0,...,N_Q (e.g. 2,3,2), got {text!r}"
        )
    return values


def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = [math.nan]
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"must be finite numbers separated by commas, got {text!r}"
        )
    return values


def _activations(text: str, n_hidden: int) -> list[str]:
    """One hidden activation name for all layers, or one per hidden layer."""
    names = [part.strip() for part in text.split(",")]
    accepted = activation_names(hidden_only=True)
    for name in names:
        if name not in accepted:
            raise UserError(f"--activation must be one of {accepted}, got {name!r}")
    if len(names) == 1:
        return names * n_hidden
    if len(names) != n_hidden:
        raise UserError(
            f"--activation must be one name or {n_hidden} names (one per hidden layer of "
            f"--hidden), got {len(names)}: {text!r}"
        )
    return names


def _add_small_network_options(
    parser: argparse.ArgumentParser, sizes: list[int], activation: str, output: str | None
) -> None:
    """--sizes, --activation, --output, --loss and --seed of the small random network that
    ``trace`` and ``gradcheck`` build (``_small_network``) when no --model is given."""
    parser.add_argument("--sizes", type=_sizes, default=sizes)
    parser.add_argument("--activation", default=activation)
    parser.add_argument("--output", choices=sorted(ACTIVATIONS), default=output)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="squared_error")
    parser.add_argument("--seed", type=_int_at_least(0), default=0)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``betaprop`` command and its subcommands."""
    parser = _Parser(
        prog="betaprop",
        description="Multilayer perceptrons trained by backpropagation, in NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"betaprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    data_names = ", ".join(BUNDLED + SYNTHETIC)

    train = commands.add_parser(
        "train",
        help="train a network (default: the bundled digits) and write a run folder",
        description="Train a multilayer perceptron. Writes the model file, history.csv and "
        "report.png to --out.",
    )
    train.add_argument(
        "--data", default=DEFAULT_DATA, help=f"CSV file or bundled dataset ({data_names})"
    )
    train.add_argument("--target", help="target column of a CSV file (default: the last)")
    train.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
    train.add_argument(
        "--hidden",
        type=_hidden,
        default=[128],
        help="hidden layer sizes, e.g. 128,64 ('none': no hidden layer); default 128",
    )
    train.add_argument(
        "--activation",
        default="relu",
        help=f"hidden activation, one or one per layer: {', '.join(activation_names(True))}",
    )
    train.add_argument(
        "--output", choices=sorted(ACTIVATIONS), help="output activation (default: by loss)"
    )
    train.add_argument(
        "--loss",
        choices=sorted(LOSSES),
        help="default: cross_entropy (classification), squared_error (regression)",
    )
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    train.add_argument(
        "--lr", type=_positive_float, help="learning rate (default: the optimizer's)"
    )
    train.add_argument(
        "--momentum", type=_fraction, help="momentum of sgd and rmsprop, in [0, 1) (default 0)"
    )
    train.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        help="L2 penalty on the weights (not the biases); default 0",
    )
    train.add_argument(
        "--schedule",
        choices=sorted(SCHEDULES),
        default="constant",
        help="learning-rate schedule, stepped every epoch (cosine spans --epochs)",
    )
    train.add_argument("--epochs", type=_int_at_least(1), default=100)
    train.add_argument("--batch-size", type=_int_at_least(1), default=32)
    train.add_argument("--seed", type=_int_at_least(0), default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--val-fraction", type=_fraction, default=0.1)
    train.add_argument("--test-fraction", type=_fraction, default=0.2)
    train.add_argument(
        "--early-stopping",
        type=_int_at_least(0),
        default=10,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement (0: never); default 10",
    )
    train.add_argument(
        "--checkpoint-every",
        type=_int_at_least(1),
        metavar="N",
        help=f"write {CHECKPOINT_FILE} to the run folder every N epochs (Ctrl-C always does)",
    )
    train.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run whose checkpoint is in DIR, with that run's settings",
    )
    train.add_argument("--out", help="run folder (default: runs/<timestamp>/)")
    train.add_argument("--quiet", action="store_true", help="print nothing")
    train.set_defaults(handler=_cmd_train)

    trace = commands.add_parser(
        "trace",
        help="steps 2-5 for one example, with the formulas and the numbers",
        description="Print steps 2-5 of backpropagation for one example through a tiny "
        "network (default 2-3-2 sigmoid, squared error) or a saved model.",
    )
    _add_small_network_options(trace, sizes=[2, 3, 2], activation="sigmoid", output="sigmoid")
    trace.add_argument("--x", type=_floats, help="the example x (default: 1, 0.5, -0.5, ...)")
    trace.add_argument("--d", type=_floats, help="the target d (default: 1, 0, 0, ...)")
    trace.add_argument("--model", help="trace a saved model instead")
    trace.add_argument("--example", type=_int_at_least(0), help="row of --data to trace")
    trace.add_argument("--data", help="CSV file or bundled dataset for --example")
    trace.add_argument("--lang", choices=("en", "ru"), default="en")
    trace.add_argument("--format", choices=("text", "markdown", "json", "html"), default="text")
    trace.add_argument("--max-entries", type=_int_at_least(1), default=8)
    trace.add_argument("--out", help="write to this file instead of the terminal")
    trace.set_defaults(handler=_cmd_trace)

    check = commands.add_parser(
        "gradcheck",
        help="compare backpropagation with finite differences, per layer",
        description="Central finite differences in float64 against backpropagation's "
        "gradients; exit code 1 if an error is above --tolerance.",
    )
    _add_small_network_options(check, sizes=[4, 5, 3], activation="tanh", output=None)
    check.add_argument("--examples", type=_int_at_least(1), default=8)
    check.add_argument("--tolerance", type=_positive_float, default=1e-6)
    check.add_argument("--model", help="check a saved model (random inputs of its size)")
    check.set_defaults(handler=_cmd_gradcheck)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model")
    info.set_defaults(handler=_cmd_info)

    predict = commands.add_parser("predict", help="predict with a model file")
    predict.add_argument("model")
    predict.add_argument("data", help="CSV file (or bundled dataset) with the feature columns")
    predict.add_argument("--proba", action="store_true", help="also write class probabilities")
    predict.add_argument("--out", help="write the predictions to this CSV file")
    predict.set_defaults(handler=_cmd_predict)

    evaluate_ = commands.add_parser("evaluate", help="metrics of a model file on labelled data")
    evaluate_.add_argument("model")
    evaluate_.add_argument("data")
    evaluate_.add_argument("--target", help="target column (default: the model's)")
    evaluate_.set_defaults(handler=_cmd_evaluate)

    commands.add_parser(
        "bench", help="benchmarks against scikit-learn and PyTorch (betaprop.bench)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``betaprop`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "bench":
        return _bench(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        args.argv = args_list  # a checkpoint keeps the command line, for --resume
        return int(args.handler(args))
    except (UserError, DataError, ModelFileError) as error:
        _fail(str(error))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
        print("betaprop: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `betaprop predict ... | head`
        return 0


def _fail(message: str) -> None:
    text = " ".join(message.split())
    if not text.startswith("betaprop"):
        text = f"betaprop: error: {text}"
    print(text, file=sys.stderr)


def _bench(argv: list[str]) -> int:
    try:
        from .. import bench  # type: ignore[attr-defined]
    except ModuleNotFoundError as error:
        if error.name != "betaprop.bench":
            raise
        print(
            "betaprop bench: error: the benchmark module betaprop.bench is missing from this "
            "installation",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    return int(bench.main(argv))


def _console(stderr: bool = False, quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, quiet=quiet, highlight=False, soft_wrap=False)


# ----------------------------------------------------------------------------- train
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


def _default_out() -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join("runs", stamp)
    k = 2
    while os.path.exists(out):
        out = os.path.join("runs", f"{stamp}-{k}")
        k += 1
    return out


def _check_out(out: str) -> None:
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


def _split(
    n: int, labels: list[str] | None, val: float, test: float, seed: int
) -> dict[str, np.ndarray]:
    """Seeded train/validation/test row indices, stratified by class where possible."""
    from sklearn.model_selection import train_test_split

    if val + test >= 1.0:
        raise UserError(
            f"--val-fraction + --test-fraction must be < 1, got {val!r} + {test!r} = {val + test!r}"
        )
    rows = np.arange(n)

    def cut(index: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        if fraction == 0.0:
            return index, index[:0]
        strata = None if labels is None else np.array([labels[i] for i in index])
        try:
            kept, taken = train_test_split(
                index, test_size=fraction, random_state=seed, stratify=strata
            )
        except ValueError:  # a class too rare to stratify, or too few rows
            try:
                kept, taken = train_test_split(index, test_size=fraction, random_state=seed)
            except ValueError:
                raise UserError(
                    f"the data must have enough rows for the splits, got {n} rows with "
                    f"--val-fraction {val!r} and --test-fraction {test!r}"
                ) from None
        return np.sort(kept), np.sort(taken)

    rest, test_rows = cut(rows, test)
    train_rows, val_rows = cut(rest, val / (1.0 - test) if val else 0.0)
    if len(train_rows) == 0:
        raise UserError(f"the training split is empty ({n} rows); lower the fractions")
    return {"train": train_rows, "validation": val_rows, "test": test_rows}


def _build_network(args: argparse.Namespace, n_inputs: int, prep: Preprocessing) -> Network:
    classification = prep.task == "classification"
    loss = args.loss or ("cross_entropy" if classification else "squared_error")
    if LOSSES[loss].classification and not classification:
        accepted = sorted(k for k, v in LOSSES.items() if not v.classification)
        raise UserError(f"--loss must be one of {accepted} for regression, got {loss!r}")
    if classification and not LOSSES[loss].classification and loss != "squared_error":
        accepted = sorted(k for k, v in LOSSES.items() if v.classification) + ["squared_error"]
        raise UserError(f"--loss must be one of {accepted} for classification, got {loss!r}")
    if classification:
        if loss == "binary_cross_entropy":
            if prep.n_classes != 2:
                raise UserError(
                    f"--loss binary_cross_entropy needs 2 classes, got {prep.n_classes}: "
                    "use cross_entropy"
                )
            n_outputs = 1
        else:
            n_outputs = prep.n_classes
    else:
        n_outputs = 1
    hidden = list(args.hidden)
    activations = _activations(args.activation, len(hidden)) if hidden else []
    try:
        return Network(
            [n_inputs, *hidden, n_outputs],
            activation=activations,
            output=args.output,
            loss=loss,
            dtype=args.dtype,
            seed=args.seed,
        )
    except (TypeError, ValueError) as error:
        raise UserError(str(error)) from None


def _optimizer_and_schedule(args: argparse.Namespace) -> tuple[Any, Any]:
    """The optimizer (step 6) and learning-rate schedule that the options ask for."""
    settings: dict[str, Any] = {}
    if args.lr is not None:
        settings["learning_rate"] = args.lr
    if getattr(args, "weight_decay", None) is not None:
        settings["weight_decay"] = args.weight_decay
    if getattr(args, "momentum", None) is not None:
        accepting = sorted(
            name
            for name, kind in OPTIMIZERS.items()
            if "momentum" in {f.name for f in dataclasses.fields(kind)}
        )
        if args.optimizer not in accepting:
            raise UserError(
                f"--momentum needs --optimizer one of {accepting}, got {args.optimizer!r}"
            )
        settings["momentum"] = args.momentum
    name = getattr(args, "schedule", "constant")
    try:
        optimizer = get_optimizer(args.optimizer, **settings)
        schedule = get_schedule(name, T_max=args.epochs) if name == "cosine" else get_schedule(name)
    except (TypeError, ValueError) as error:
        raise UserError(str(error)) from None
    return optimizer, schedule


def _metrics(
    net: Network, prep: Preprocessing, data: Dataset, rows: np.ndarray
) -> dict[str, float]:
    """Loss and scores on some rows: accuracy and macro F1, or R², MAE and RMSE."""
    from sklearn import metrics

    Z = prep.transform(data.X[rows], net.dtype)
    D = prep.encode(data.target[rows], net.sizes[-1], net.dtype)
    loss, _ = evaluate(net, Z, D)
    predicted = prep.decode(net.predict(Z))
    result = {"loss": float(loss)}
    if prep.task == "classification":
        truth = prep.labels(data.target[rows])
        result["accuracy"] = float(metrics.accuracy_score(truth, predicted))
        result["f1_macro"] = float(
            metrics.f1_score(truth, predicted, average="macro", zero_division=0)
        )
    else:
        truth_values = np.array([float(v) for v in data.target[rows]])  # in its own units
        values = np.asarray(predicted, dtype=np.float64)
        result["r2"] = float(metrics.r2_score(truth_values, values)) if len(rows) > 1 else math.nan
        result["mae"] = float(metrics.mean_absolute_error(truth_values, values))
        result["rmse"] = float(np.sqrt(metrics.mean_squared_error(truth_values, values)))
    return result


class _Progress(Callback):
    """Live progress bar: epoch, batch, loss, validation score, time left."""

    def __init__(
        self, progress: Any, epochs: int, batches: int, score_name: str, diagnostics: Any
    ) -> None:
        self.progress = progress
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
            self.progress.console.print(f"[yellow]warning: epoch {epoch}: {message}[/]")
        self.printed = len(self.diagnostics.warnings)

    def on_train_end(self, net: Network, history: History) -> None:
        done = len(history.epoch) * self.batches
        self.progress.update(self.task, total=done, completed=done)


def _make_progress(console: Any, epochs: int, batches: int) -> Any:
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


def train_run(args: argparse.Namespace, console: Any | None = None) -> TrainRun:
    """Train as ``betaprop train`` does and write the run folder; returns it all in memory.

    Raises ``UserError``/``DataError`` before anything is written, ``DivergenceError``
    (nothing written) if training diverges.
    """
    from ..files.checkpoint import Checkpoint
    from ..explain.diagnostics import Diagnostics, GradientWarning

    saved = None
    if getattr(args, "resume", None):
        saved, args = _resumed(args)
    out = args.out if args.out else _default_out()
    _check_out(out)
    created = not os.path.exists(out)
    data = load_data(args.data, args.target, seed=args.seed)
    task = infer_task(data) if args.task == "auto" else args.task
    labels = data.target
    stratify = class_labels(labels) if task == "classification" else None
    splits = _split(len(data.X), stratify, args.val_fraction, args.test_fraction, args.seed)
    prep = Preprocessing.fit(data, task, splits["train"])
    if args.loss == "poisson":  # counts: the log link needs the target as it is, >= 0
        prep.target_mean, prep.target_scale = 0.0, 1.0
        lowest = min(float(v) for v in data.target) if task == "regression" else 0.0
        if lowest < 0:
            raise UserError(f"--loss poisson needs a target >= 0 (counts), got {lowest!r}")
    net = _build_network(args, data.X.shape[1], prep)
    optimizer, schedule = _optimizer_and_schedule(args)

    def arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
        rows = splits[name]
        return (
            prep.transform(data.X[rows], net.dtype),
            prep.encode(data.target[rows], net.sizes[-1], net.dtype),
        )

    X, D = arrays("train")
    validation = arrays("validation") if len(splits["validation"]) else None
    fingerprint = hashlib.sha256(X.tobytes() + D.tobytes()).hexdigest()
    settings: dict[str, Any] = {
        "optimizer": optimizer,
        "epochs": args.epochs,
        "seed": args.seed,
        "early_stopping": args.early_stopping or None,
        "schedule": schedule,
    }
    if saved is not None:
        settings = _resume_settings(saved, net, fingerprint)
    diagnostics = Diagnostics(X, D, max_examples=256)
    argv = getattr(args, "argv", None)
    checkpoint = Checkpoint(
        out,
        every=getattr(args, "checkpoint_every", None),
        metadata={"argv": _portable_argv(argv), "data_sha256": fingerprint},
        # a resumed run also ends with a checkpoint, so that --resume then says it is finished
        final=getattr(args, "checkpoint_every", None) is not None or saved is not None,
    )
    callbacks: list[Callback] = [diagnostics, checkpoint]
    batch_size = min(args.batch_size, len(X))
    batches = math.ceil(len(X) / batch_size)
    score_name = "accuracy" if net.loss.classification or task == "classification" else "R²"
    quiet = console is None or getattr(args, "quiet", False)
    progress = None
    if not quiet:
        progress = _make_progress(console, args.epochs, batches)
        callbacks.append(_Progress(progress, args.epochs, batches, score_name, diagnostics))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientWarning)
        warnings.simplefilter("ignore", InterruptedWarning)  # _cmd_train says it
        if progress is not None:
            progress.start()
        try:
            history = fit(
                net,
                X,
                D,
                batch_size=batch_size,
                validation_data=validation,
                callbacks=callbacks,
                **settings,
            )
        except DivergenceError:
            if created and os.path.isdir(out) and not os.listdir(out):
                os.rmdir(out)  # made for this run by a callback, and still empty
            raise
        finally:
            if progress is not None:
                progress.stop()
    seconds = time.perf_counter() - started

    metrics = {name: _metrics(net, prep, data, rows) for name, rows in splits.items() if len(rows)}
    confusion = None
    if task == "classification":
        from sklearn.metrics import confusion_matrix

        shown = next(name for name in ("test", "validation", "train") if len(splits[name]))
        rows = splits[shown]
        predicted = prep.decode(net.predict(prep.transform(data.X[rows], net.dtype)))
        confusion = confusion_matrix(prep.labels(data.target[rows]), predicted, labels=prep.classes)
        prep.extra["confusion_split"] = shown
    training = {
        "data": data.source,
        "bundled": data.source in BUNDLED + SYNTHETIC,
        "target": data.target_name,
        "task": task,
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
        "rows": {name: int(len(rows)) for name, rows in splits.items()},
        "seconds": seconds,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = {
        "preprocessing": prep.to_dict(),
        "training": training,
        "metrics": _finite(metrics),
    }
    run = TrainRun(
        net,
        prep,
        history,
        data,
        splits,
        metrics,
        metadata,
        out,
        seconds,
        confusion,
        list(diagnostics.warnings),
    )
    write_run(out, net, metadata, history, confusion=confusion, prep=prep)
    return run


def _resumed(args: argparse.Namespace) -> tuple[Any, argparse.Namespace]:
    """The checkpoint in ``--resume DIR`` and the arguments of the run that wrote it."""
    from ..files.checkpoint import load_checkpoint

    defaults = vars(build_parser().parse_args(["train"]))
    own = ("resume", "quiet", "checkpoint_every", "argv", "handler", "command")
    changed = sorted(k for k, v in vars(args).items() if k not in own and v != defaults.get(k))
    if changed:
        option = "--" + changed[0].replace("_", "-")
        raise UserError(f"--resume goes on with the run's own settings: drop {option}")
    saved = load_checkpoint(args.resume)
    argv = saved.metadata.get("argv")
    if (
        not isinstance(argv, list)
        or not all(isinstance(token, str) for token in argv)
        or argv[:1] != ["train"]
        or any(token.startswith("--resume") for token in argv)
    ):
        raise UserError(
            f"--resume: {saved.path} was not written by betaprop train (it holds no command line)"
        )
    restored = build_parser().parse_args(argv)
    folder = os.path.dirname(saved.path) or "."
    if saved.finished:
        raise UserError(
            f"--resume: the run in {folder} is finished (epoch {saved.state.epoch}"
            f"{', stopped early' if saved.history.stopped_early else ''}); nothing to resume"
        )
    restored.out, restored.resume, restored.quiet, restored.argv = folder, None, args.quiet, argv
    if args.checkpoint_every is not None:
        restored.checkpoint_every = args.checkpoint_every
    return saved, restored


def _resume_settings(saved: Any, net: Network, fingerprint: str) -> dict[str, Any]:
    """Arguments of ``fit`` that continue the saved run; checks it matches data and network."""
    if saved.metadata.get("data_sha256") != fingerprint:
        raise UserError(
            f"--resume: the training data differ from those of {saved.path} (their SHA-256 "
            "differs): resume with the same data file"
        )
    twin = saved.network
    if (twin.sizes, twin.activations, twin.loss.name, twin.dtype) != (
        net.sizes,
        net.activations,
        net.loss.name,
        net.dtype,
    ):
        raise UserError(f"--resume: the network in {saved.path} does not match its settings")
    net.params[...] = twin.params
    state = saved.state
    return {
        "optimizer": state.optimizer,
        "epochs": saved.remaining_epochs,
        "early_stopping": state.early_stopping,
        "schedule": state.schedule,
        "history": saved.history,
        "state": state,
    }


def _portable_argv(argv: list[str] | None) -> list[str] | None:
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


def _finite(value: Any) -> Any:
    """JSON-ready copy with NaN/inf replaced by None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
        writer.writerow([_cell(values[i]) for values in columns.values()])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if value is None:
        return ""
    return str(value)


def _cmd_train(args: argparse.Namespace) -> int:
    console = None if args.quiet else _console(stderr=True)
    try:
        run = train_run(args, console)
    except DivergenceError as error:
        if args.checkpoint_every:
            _fail(f"{error} Only the checkpoints from before it were written.")
        else:
            _fail(f"{error} Nothing was written.")
        return EXIT_FAILED
    if args.quiet:
        return EXIT_INTERRUPTED if run.history.interrupted else 0
    _print_train_table(run)
    if run.history.interrupted:
        print(
            "Training interrupted by user. Checkpoint: "
            f"{os.path.join(run.out, CHECKPOINT_FILE)}\n"
            f"resume with: betaprop train --resume {shlex.quote(run.out)}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


def _print_train_table(run: TrainRun) -> None:
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
    console = _console()
    console.print(table)
    hidden = sorted(set(run.net.activations[:-1]))
    console.print(
        f"network {list(run.net.sizes)}, hidden {', '.join(hidden) or '-'}, output "
        f"{run.net.activations[-1]}, loss {run.net.loss.name}"
    )
    console.print(f"wrote {os.path.join(run.out, MODEL_FILE)}, {HISTORY_FILE}, {REPORT_FILE}")


# ----------------------------------------------------------------------------- using a model
def _open_model(path: str) -> tuple[ModelFile, Preprocessing | None]:
    model = read_model(path)
    fields = model.metadata.get("preprocessing")
    if fields is None:
        return model, None
    try:
        prep = Preprocessing.from_dict(fields)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    if len(prep.feature_names) != model.network.sizes[0]:
        raise ModelFileError(
            f"{path}: the preprocessing has {len(prep.feature_names)} features for "
            f"N_0 = {model.network.sizes[0]} inputs"
        )
    return model, prep


def _require_prep(path: str, prep: Preprocessing | None) -> Preprocessing:
    if prep is None:
        raise UserError(
            f"{path} holds no preprocessing (saved from Python without it): use "
            "betaprop.load and net.predict on already scaled features"
        )
    return prep


def _model_data(path: str, prep: Preprocessing, data_spec: str, target: str | None) -> Dataset:
    """The model's feature columns of a data file, and the ``target`` column unless None
    (then a target column in the file is ignored, even with empty cells)."""
    return load_data(
        data_spec, target, require_target=target is not None, features=prep.feature_names
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    model, prep = _open_model(args.model)
    prep = _require_prep(args.model, prep)
    net = model.network
    if args.proba and prep.task != "classification":
        raise UserError("--proba is for classification models; this model does regression")
    data = _model_data(args.model, prep, args.data, None)
    P = net.predict(prep.transform(prep.columns_of(data), net.dtype))
    predicted = prep.decode(P)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["prediction"]
    if args.proba:
        assert prep.classes is not None
        if P.shape[1] == 1:  # one sigmoid output: P(classes[1])
            P = np.hstack([1.0 - P.astype(np.float64), P.astype(np.float64)])
        header += [f"p_{label}" for label in prep.classes]
    writer.writerow(header)
    for i, value in enumerate(predicted):
        row = [_cell(value)]
        if args.proba:
            row += [repr(float(p)) for p in P[i]]
        writer.writerow(row)
    if args.out:
        if os.path.isdir(args.out):
            raise UserError(f"--out must be a file, got {args.out!r} (a folder)")
        atomic_write(args.out, buffer.getvalue().encode("utf-8"))
    else:
        sys.stdout.write(buffer.getvalue())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rich.table import Table

    model, prep = _open_model(args.model)
    prep = _require_prep(args.model, prep)
    net = model.network
    target = args.target if args.target else prep.target_name
    data = _model_data(args.model, prep, args.data, target)
    data = Dataset(prep.columns_of(data), data.target, prep.feature_names, target, data.source)
    values = _metrics(net, prep, data, np.arange(len(data.X)))
    table = Table(title="betaprop evaluate", caption=f"{args.model} on {args.data}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("rows", str(len(data.X)))
    for name, value in values.items():
        table.add_row(name, f"{value:.6g}")
    _console().print(table)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from rich.table import Table

    model, prep = _open_model(args.model)
    net = model.network
    console = _console()
    layers = Table(title=f"betaprop model {args.model}")
    for name in ("layer q", "N_q", "activation", "weights W^q", "biases b^q"):
        layers.add_column(name, justify="right" if name != "activation" else "left")
    layers.add_row("0 (input)", str(net.sizes[0]), "-", "-", "-")
    for q in range(1, net.Q + 1):
        layers.add_row(
            str(q) + (" (output)" if q == net.Q else ""),
            str(net.sizes[q]),
            net.activations[q - 1],
            str(net.sizes[q] * net.sizes[q - 1]),
            str(net.sizes[q]),
        )
    console.print(layers)
    facts = Table(show_header=False)
    facts.add_column("what")
    facts.add_column("value")
    facts.add_row("loss", net.loss.name)
    facts.add_row("dtype", net.dtype)
    facts.add_row("parameters", f"{net.n_params} ({net.n_weights} weights)")
    facts.add_row("format", f"{model.header.get('format')} v{model.header.get('format_version')}")
    facts.add_row("saved by", f"betaprop {model.header.get('betaprop_version')}")
    facts.add_row("sha256", model.sha256)
    if prep is not None:
        facts.add_row("task", prep.task)
        facts.add_row("target", prep.target_name)
        if prep.classes is not None:
            facts.add_row("classes", ", ".join(prep.classes))
        names = prep.feature_names
        shown = ", ".join(names[:8]) + (f", ... ({len(names)})" if len(names) > 8 else "")
        facts.add_row("features", shown)
    training = model.metadata.get("training")
    if isinstance(training, dict):
        keys = ("data", "optimizer", "learning_rate", "epochs_run", "batch_size", "seed")
        facts.add_row("trained", ", ".join(f"{k} {training.get(k)}" for k in keys))
        facts.add_row("finished", str(training.get("finished")))
    metrics = model.metadata.get("metrics")
    if isinstance(metrics, dict):
        for split, values in metrics.items():
            if isinstance(values, dict):
                text = ", ".join(
                    f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, (int, float))
                )
                facts.add_row(f"{split} metrics", text)
    console.print(facts)
    return 0


# ----------------------------------------------------------------------------- look inside
def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..engine.gradcheck import gradcheck

    if args.model:
        net = read_model(args.model).network
    else:
        net = _small_network(args.sizes, args.activation, args.output, args.loss, args.seed)
    rng = np.random.default_rng(args.seed)
    X = rng.normal(size=(args.examples, net.sizes[0]))
    D = _random_targets(net, rng, args.examples)
    report = gradcheck(net, X, D, tolerance=args.tolerance)
    table = Table(
        title=f"gradient check: sizes {list(net.sizes)} {net.activations} {net.loss.name}"
    )
    for name in ("layer q", "param", "max elementwise", "normwise"):
        table.add_column(name, justify="right")
    for row in report.rows:
        table.add_row(
            str(row.layer), f"{row.name}^{row.layer}", f"{row.max_elementwise:.3e}",
            f"{row.normwise:.3e}",
        )  # fmt: skip
    console = _console()
    console.print(table)
    verdict = "passed" if report.passed else "FAILED"
    console.print(
        f"{verdict}: max norm-wise relative error {report.max_error:.3e} "
        f"(tolerance {args.tolerance:.0e})"
    )
    return 0 if report.passed else EXIT_FAILED


def _random_targets(net: Network, rng: np.random.Generator, n: int) -> np.ndarray:
    N = net.sizes[-1]
    if net.loss.name == "cross_entropy":
        return np.eye(N)[rng.integers(0, N, size=n)]
    if net.loss.name == "binary_cross_entropy":
        return rng.integers(0, 2, size=(n, N)).astype(np.float64)
    return rng.normal(size=(n, N))


def _small_network(
    sizes: list[int], activation: str, output: str | None, loss: str, seed: int
) -> Network:
    hidden = _activations(activation, len(sizes) - 2) if len(sizes) > 2 else []
    try:
        return Network(sizes, hidden, output, loss, "float64", seed)
    except (TypeError, ValueError) as error:
        raise UserError(str(error)) from None


def _cmd_trace(args: argparse.Namespace) -> int:
    from ..explain.trace import as_dict, render, trace

    if args.model:
        if args.x is not None or args.d is not None:
            raise UserError("--x/--d trace the default network; with --model use --example")
        model, prep = _open_model(args.model)
        net = model.network
        prep = _require_prep(args.model, prep)
        if args.example is None:
            raise UserError("--model needs --example ROW (a row of --data)")
        spec = args.data
        if spec is None:
            training = model.metadata.get("training", {})
            if isinstance(training, dict) and training.get("bundled"):
                spec = str(training.get("data"))
            else:
                raise UserError("--example needs --data (the CSV file to take the row from)")
        data = _model_data(args.model, prep, spec, prep.target_name)
        if args.example >= len(data.X):
            raise UserError(
                f"--example must be a row index in [0, {len(data.X) - 1}], got {args.example}"
            )
        i = args.example
        x = prep.transform(prep.columns_of(data)[i : i + 1])[0]
        d = prep.encode(data.target[i : i + 1], net.sizes[-1])[0]
    else:
        if args.example is not None or args.data is not None:
            raise UserError("--example and --data need --model")
        net = _small_network(args.sizes, args.activation, args.output, args.loss, args.seed)
        x = np.array(args.x if args.x is not None else _default_x(net.sizes[0]))
        d = np.array(args.d if args.d is not None else _default_d(net.sizes[-1]))
        for name, values, N in (("--x", x, net.sizes[0]), ("--d", d, net.sizes[-1])):
            if len(values) != N:
                raise UserError(f"{name} must have {N} values (the layer size), got {len(values)}")
    result = trace(net, x, d)
    if args.format == "json":
        text = json.dumps(as_dict(result), indent=1) + "\n"
    elif args.format == "html":  # the page embeds the same as_dict(result)
        from ..explain.trace_page import page

        text = page(result, args.lang)
    else:
        text = render(result, args.lang, args.format, args.max_entries)
    if args.out:
        if os.path.isdir(args.out):
            raise UserError(f"--out must be a file, got {args.out!r} (a folder)")
        atomic_write(args.out, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0 if result.agrees else EXIT_FAILED


def _default_x(N: int) -> list[float]:
    return [1.0 if i == 0 else (0.5 if i % 2 else -0.5) for i in range(N)]


def _default_d(N: int) -> list[float]:
    return [1.0] + [0.0] * (N - 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
