"""``betaprop train``: from the options to a trained network and its run folder, and
``--resume`` of an interrupted run.

``train --checkpoint-every N`` also keeps a checkpoint (``betaprop.files.checkpoint``) in the
run folder, replaced atomically every N epochs. Ctrl-C finishes the current mini-batch,
writes the run folder with the best weights so far, writes a checkpoint, prints how to resume
and exits with code 130; ``train --resume DIR`` continues the run with its own settings and
ends bit for bit where the uninterrupted run would have.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import secrets
import shlex
import signal
import sys
import time
from typing import Any

from ..engine.activations import ACTIVATIONS
from ..engine.activations import names as activation_names
from ..engine.losses import LOSSES
from ..files.checkpoint import Checkpoint, load_checkpoint
from ..files.datasets import (
    BUNDLED,
    SYNTHETIC,
)
from ..training.distributed import array_bytes, is_lead, world
from ..training.optimizers import OPTIMIZERS
from ..training.schedules import SCHEDULES
from ..training.state import Callback, DivergenceError
from .fingerprint import data_digest
from .models import add_table_options, metrics, minority_warning
from .options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    Parser,
    UserError,
    add_layer_options,
    fail,
    fraction,
    hidden_sizes,
    int_at_least,
    non_negative_float,
    positive_float,
    refuse_overwriting,
    rich_console,
)
from .progress import ProgressBar, print_train_table
from .resuming import refuse_finished_model, resume_settings
from .runs import (
    CHECKPOINT_FILE,
    MODEL_FILE,
    RUN_FILES,
    RunFolder,
    TrainRun,
    check_out,
    default_out,
    finite,
    portable_argv,
    write_run,
)
from .settings import build_network, optimizer_and_schedule
from .sharded import encoded_splits
from .sharded_metrics import reduced_metrics
from .streaming import add_stream_options, train_stream, wants_stream
from .training import (
    confusion_split,
    data_settings,
    final_confusion,
    fit_network,
    largest_of_ranks,
    require_training_memory,
    split_inputs,
    training_data,
    training_record,
)

__all__ = ["add_command", "train_run"]

DEFAULT_DATA = "digits"


def add_command(commands: Any) -> None:
    """The subcommand train and its options."""
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
    add_table_options(train)
    train.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
    train.add_argument(
        "--class-weight",
        choices=("balanced",),
        help="balanced: weigh each class n / (k n_c) in the loss, as scikit-learn's "
        "class_weight (a rare class counts as much as a frequent one)",
    )
    train.add_argument(
        "--hidden",
        type=hidden_sizes,
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
    add_layer_options(train, past_seed=True)  # --batch-norm, --layer-norm, --residual, ...
    _add_training_options(train)
    add_stream_options(train)
    train.set_defaults(handler=_cmd_train)


def _add_training_options(train: Any) -> None:
    """train's options for step 6 and the run: optimizer, schedule, epochs, folders."""
    train.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    train.add_argument("--lr", type=positive_float, help="learning rate (default: the optimizer's)")
    train.add_argument(
        "--momentum", type=fraction, help="momentum of sgd and rmsprop, in [0, 1) (default 0)"
    )
    train.add_argument(
        "--weight-decay",
        type=non_negative_float,
        help="L2 penalty on the weights (not the biases); default 0",
    )
    train.add_argument(
        "--schedule",
        choices=sorted(SCHEDULES),
        default="constant",
        help="learning-rate schedule, stepped every epoch (cosine spans --epochs)",
    )
    train.add_argument("--epochs", type=int_at_least(1), default=100)
    train.add_argument("--batch-size", type=int_at_least(1), default=32)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--val-fraction", type=fraction, default=0.1)
    train.add_argument("--test-fraction", type=fraction, default=0.2)
    train.add_argument(
        "--early-stopping",
        type=int_at_least(0),
        default=10,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement (0: never); default 10",
    )
    train.add_argument(
        "--checkpoint-every",
        type=int_at_least(1),
        metavar="N",
        help=f"write {CHECKPOINT_FILE} to the run folder every N epochs (Ctrl-C always does)",
    )
    train.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run whose checkpoint is in DIR, with that run's settings",
    )
    train.add_argument("--out", help="run folder (default: runs/<timestamp>/, made unique)")
    train.add_argument(
        "--force",
        action="store_true",
        help="replace the run that --out already holds (its model file and checkpoint)",
    )
    train.add_argument("--quiet", action="store_true", help="print nothing")


def _seed(text: str) -> int:
    """--seed: an integer in [0, 2**32 - 1] (what NumPy's and scikit-learn's seeds take)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {2**32 - 1}], got {text!r}")
    return value


def _cmd_train(args: argparse.Namespace) -> int:
    if not is_lead(world()):  # under mpiexec: rank 0 alone prints (and writes)
        args.quiet = True
    console = None if args.quiet else rich_console(stderr=True)
    try:
        run = train_run(args, console)
    except DivergenceError as error:
        if args.checkpoint_every:
            fail(f"{error} Only the checkpoints from before it were written.")
        else:
            fail(f"{error} Nothing was written.")
        return EXIT_FAILED
    code = _interrupted_exit(run.history) if run.history.interrupted else 0
    if args.quiet:
        return code
    print_train_table(run)
    minority_warning(run.metrics)
    if run.history.interrupted:
        by = run.history.stop_signal
        who = "by user" if by in (None, signal.SIGINT) else f"by {signal.Signals(by).name}"
        print(
            f"Training interrupted {who}. Checkpoint: "
            f"{os.path.join(run.out, CHECKPOINT_FILE)}\n"
            f"resume with: betaprop train --resume {shlex.quote(run.out)}",
            file=sys.stderr,
        )
    return code


def _interrupted_exit(history: Any) -> int:
    """128 + the signal that stopped training, as shells report it (130 for Ctrl-C)."""
    if history.stop_signal is None:
        return EXIT_INTERRUPTED
    return 128 + int(history.stop_signal)


# ----------------------------------------------------------------------------- one run
def train_run(args: argparse.Namespace, console: Any | None = None) -> TrainRun:
    """Train as ``betaprop train`` does and write the run folder; returns it all in memory.

    Raises ``UserError``/``DataError`` before anything is written, ``DivergenceError``
    (nothing written) if training diverges.
    """

    saved = None
    if getattr(args, "resume", None):
        saved, args = _resumed(args)
    lead = is_lead(world())  # under mpiexec, rank 0 alone owns and writes the folder
    force = bool(getattr(args, "force", False)) and saved is None
    out = args.out if args.out else default_out(create=lead)
    check_out(out, force=force, resume=saved is not None)
    refuse_overwriting(
        [(f"--out {out!r} (its {name})", os.path.join(out, name)) for name in RUN_FILES],
        [("the data file", args.data)],
    )
    created = not args.out or not os.path.exists(out)
    if not lead:
        return _train_in(args, console, saved, out, created)
    with RunFolder(out, created):
        if force:  # the replaced run's checkpoint must not be resumed into this run
            for name in (CHECKPOINT_FILE, MODEL_FILE):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(out, name))
        return _train_in(args, console, saved, out, created)


def _train_in(
    args: argparse.Namespace, console: Any | None, saved: Any, out: str, created: bool
) -> TrainRun:
    """``train_run`` once the run folder is owned: data, network, training, the folder."""
    from ..explain.diagnostics import Diagnostics

    if wants_stream(args):  # --stream, or a table larger than memory: part by part
        return train_stream(args, console, out, saved)  # (cli/streaming.py)
    comm = world()  # mpiexec -n K python -m mpi4py -m betaprop train: data parallel
    data, prep, splits, say_notes, shard = training_data(args, comm)
    mine = shard.local if shard is not None else splits  # the rows this process holds
    require_training_memory(args, data.X.shape[1], prep, largest_of_ranks(comm, len(mine["train"])))
    net = build_network(args, data.X.shape[1], prep)
    optimizer, schedule = optimizer_and_schedule(args)
    say_notes()  # the options are good: a refusal above was its one line alone
    inputs: dict[str, Any] = {}
    if shard is not None:  # a table of numbers: standardised in place, no second matrix
        fingerprint = data_digest(prep, data, shard)  # the same whichever rank holds which row
        inputs = encoded_splits(prep, data, shard)
    X, D = split_inputs(net, prep, data, mine["train"], inputs.get("train"))
    if shard is None:
        digest = hashlib.sha256()  # of X's bytes, then D's: never a copy of them
        for A in (X, D):
            digest.update(array_bytes(A))
        fingerprint = digest.hexdigest()
    settings: dict[str, Any] = {
        "optimizer": optimizer,
        "epochs": args.epochs,
        "seed": args.seed,
        "early_stopping": args.early_stopping or None,
        "schedule": schedule,
    }
    if saved is not None:
        settings = resume_settings(saved, net, fingerprint)
    lead = is_lead(comm)
    if comm is not None:
        settings["comm"] = comm
    settings.update(data_settings(args, net, prep, data, splits, shard, inputs))
    # (a rank without training rows has no examples to diagnose: nothing to watch)
    diagnostics: Any = Diagnostics(X, D, max_examples=256) if len(X) else _Unwatched()
    checkpoint, run_id = _checkpoint(args, out, saved, fingerprint)
    bar = None
    if console is not None and not getattr(args, "quiet", False):
        batches = math.ceil(len(splits["train"]) / settings["batch_size"])
        classes = net.loss.classification or prep.task == "classification"
        score_name = "accuracy" if classes else "R²"
        bar = ProgressBar(console, args.epochs, batches, score_name, diagnostics)
    started = time.perf_counter()
    try:
        history = fit_network(net, X, D, settings, [diagnostics, checkpoint] if lead else [], bar)
    except DivergenceError:
        if created and os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)  # made for this run by a callback, and still empty
        raise
    seconds = time.perf_counter() - started
    del X, D
    settings["validation_data"] = None  # the metrics below take the rows from ``data``
    scores = {
        name: metrics(net, prep, data, rows)
        if shard is None
        else reduced_metrics(net, prep, inputs[name], data.target[mine[name]], comm)
        for name, rows in splits.items()
        if len(rows)
    }  # sharded: sums over the ranks' rows
    classification = prep.task == "classification"
    if classification:
        confusion_split(prep, splits)  # saved with the preprocessing
    run = TrainRun(net, prep, history, data, splits, scores, {}, out, seconds)
    run.warnings = list(diagnostics.warnings)
    run.metadata["preprocessing"] = prep.to_dict()
    run.metadata["training"] = training_record(args, run, optimizer, settings["batch_size"])
    run.metadata["training"]["run_id"] = run_id
    run.metadata["metrics"] = finite(scores)

    made = final_confusion(run, shard, inputs, comm) if classification else None
    if lead:
        write_run(out, net, run.metadata, history, confusion=made, prep=prep)
    return run


def _checkpoint(args: argparse.Namespace, out: str, saved: Any, fingerprint: str) -> tuple:
    """The run's checkpoint callback (every --checkpoint-every epochs, and on Ctrl-C) and the
    run's id (a resumed run keeps its own)."""
    every = getattr(args, "checkpoint_every", None)
    run_id = saved.metadata.get("run_id") if saved is not None else None
    run_id = run_id if isinstance(run_id, str) else secrets.token_hex(8)
    checkpoint = Checkpoint(
        out,
        every=every,
        metadata={
            "argv": portable_argv(getattr(args, "argv", None)),
            "data_sha256": fingerprint,
            "run_id": run_id,
        },
        # a resumed run also ends with a checkpoint, so that --resume then says it is finished
        final=every is not None or saved is not None,
    )
    return checkpoint, run_id


class _Unwatched(Callback):
    """Diagnostics of a rank that holds no training rows: no warnings."""

    warnings: list = []


def _train_parser() -> argparse.ArgumentParser:
    """A ``betaprop`` parser with the train subcommand only: reads a saved command line."""
    parser = Parser(prog="betaprop")
    add_command(parser.add_subparsers(dest="command", parser_class=Parser))
    return parser


def _resumed(args: argparse.Namespace) -> tuple[Any, argparse.Namespace]:
    """The checkpoint in ``--resume DIR`` and the arguments of the run that wrote it."""
    own = ("resume", "quiet", "checkpoint_every", "argv", "handler", "command")
    given = _given(args)
    changed = sorted(k for k in given if k not in own)
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
    restored = _train_parser().parse_args(argv)
    folder = os.path.dirname(saved.path) or "."
    if saved.finished:
        raise UserError(
            f"--resume: the run in {folder} is finished (epoch {saved.state.epoch}"
            f"{', stopped early' if saved.history.stopped_early else ''}); nothing to resume"
        )
    refuse_finished_model(folder, saved)
    restored.out, restored.resume, restored.quiet, restored.argv = folder, None, args.quiet, argv
    if args.checkpoint_every is not None:
        restored.checkpoint_every = args.checkpoint_every
    return saved, restored


def _given(args: argparse.Namespace) -> list[str]:
    """The train options given on the command line (``args.argv``), even at their default
    value (``--epochs 100``); without ``args.argv``, those that differ from the default."""
    argv = getattr(args, "argv", None)
    if not isinstance(argv, list):
        defaults = vars(_train_parser().parse_args(["train"]))
        return [k for k, v in vars(args).items() if v != defaults.get(k)]
    parser = Parser(prog="betaprop")
    commands = parser.add_subparsers(dest="command", parser_class=Parser)
    add_command(commands)
    for action in commands.choices["train"]._actions:  # absent unless given
        action.default = argparse.SUPPRESS
    return [k for k in vars(parser.parse_args(argv)) if k != "command"]
