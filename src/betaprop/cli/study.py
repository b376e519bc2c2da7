"""``betaprop study depth``: the vanishing-gradient study (``betaprop.explain.study``).

Trains the same data (a seeded, stratified training split; the rest held out for the test
accuracy) at several depths Q with several hidden configurations and writes, to
``--out``, ``study-depth.png`` (RMS beta^q against q at initialisation and after training,
and the training curves), ``study-depth.csv`` (one row per run) and ``beta.csv`` (every
measured RMS beta^q); the table is printed too. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from datetime import datetime
from typing import Any

from ..engine.init import RULES
from ..files.container import atomic_write
from .options import (
    Parser,
    UserError,
    int_at_least,
    int_list_at_least,
    positive_float,
    refuse_overwriting,
    rich_console,
)

__all__ = ["add_command", "FIGURE_FILE", "TABLE_FILE", "BETA_FILE"]

# explain.study.DEFAULT_CONFIGURATIONS (a test checks they agree; not imported: CLI start-up)
CONFIGURATIONS = ("sigmoid", "tanh", "relu", "relu+bn", "relu+res+ln", "relu+res+bn")
FIGURE_FILE = "study-depth.png"
TABLE_FILE = "study-depth.csv"
BETA_FILE = "beta.csv"


def add_command(commands: Any) -> None:
    """The subcommand ``study`` with its study ``depth``."""
    study = commands.add_parser(
        "study",
        help="studies of backpropagation: depth (the vanishing gradient)",
        description="Measured studies of what the seed says about backpropagation.",
    )
    kinds = study.add_subparsers(dest="study", metavar="STUDY", parser_class=Parser)
    kinds.required = True
    depth = kinds.add_parser(
        "depth",
        help="RMS of the local errors beta^q per layer at several depths (vanishing gradient)",
        description="Train the same data (a seeded stratified training split) at several "
        "depths Q with sigmoid, tanh, ReLU, ReLU + batch norm and residual ReLU layers with "
        "layer or batch norm; measure the RMS of beta^q per layer q at initialisation and "
        "after training and the accuracy on the held-out test rows; write a figure (PNG) "
        "and a table (CSV).",
    )
    depth.add_argument("--depths", type=int_list_at_least(2, "5,20,50,100"),
                       default=[5, 20, 50, 100],
                       help="depths Q, comma-separated (default 5,20,50,100)")  # fmt: skip
    depth.add_argument("--activations", type=_configurations,
                       default=list(CONFIGURATIONS),
                       help="hidden activations, NAME+bn (batch norm) or NAME+ln (layer "
                       "norm), +res for residual layers (default "
                       f"{','.join(CONFIGURATIONS)})")  # fmt: skip
    depth.add_argument("--epochs", type=int_at_least(1), default=10)
    depth.add_argument("--data", default="digits", help="bundled dataset or CSV file")
    depth.add_argument("--width", type=int_at_least(1), default=32, help="hidden layer size")
    depth.add_argument("--batch-size", type=int_at_least(2), default=32)
    depth.add_argument("--lr", type=positive_float, default=1e-3, help="Adam's learning rate")
    depth.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.25,
        help="rows held out (stratified) for the test score (default 0.25)",
    )
    depth.add_argument("--seed", type=int_at_least(0), default=0,
                       help="weights, shuffles and the split")  # fmt: skip
    depth.add_argument("--init", choices=(*RULES, "auto"), default="auto",
                       help="the weights' rule (default auto: each activation's own, He "
                       "for ReLU; torch's nn.Linear default for +res)")  # fmt: skip
    depth.add_argument("--out", help="folder for the figure and tables "
                       "(default: runs/study-depth-<timestamp>/)")  # fmt: skip
    depth.add_argument("--lang", choices=("en", "ru"), default="en", help="figure language")
    depth.add_argument("--quiet", action="store_true", help="no progress, no table")
    depth.set_defaults(handler=_cmd_depth)


def _configurations(text: str) -> list[str]:
    """--activations: hidden activation names, each optionally with +bn or +ln and +res."""
    from ..explain.study import check_configuration

    names = [part.strip() for part in text.split(",")]
    for name in names:
        try:
            check_configuration(name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"must be {str(error).removeprefix('configuration must be ')}"
            ) from None
    return names


def _fraction(text: str) -> float:
    """--test-fraction: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value


def _cmd_depth(args: argparse.Namespace) -> int:
    from ..explain.study import beta_table, depth_study, figure, study_data, table

    out = args.out or _default_out()
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out must be a folder, got {out!r} (an existing file)")
    refuse_overwriting(
        [(f"--out {out!r} (its {name})", os.path.join(out, name))
         for name in (FIGURE_FILE, TABLE_FILE, BETA_FILE)],
        [("the data file", args.data)],
    )  # fmt: skip
    X, D, loss = study_data(args.data, args.seed)
    console = rich_console(stderr=True, quiet=args.quiet)
    progress, report = _progress(console, args)
    with progress:
        study = depth_study(
            X, D, depths=args.depths, configurations=args.activations, epochs=args.epochs,
            width=args.width, seed=args.seed, loss=loss, learning_rate=args.lr,
            batch_size=args.batch_size, data=os.path.basename(args.data),
            test_fraction=args.test_fraction, progress=report,
            init=None if args.init == "auto" else args.init,
        )  # fmt: skip
    os.makedirs(out, exist_ok=True)
    rows = table(study)
    atomic_write(os.path.join(out, TABLE_FILE), _csv(rows))
    atomic_write(os.path.join(out, BETA_FILE), _csv(beta_table(study)))
    picture = io.BytesIO()
    figure(study, args.lang).savefig(picture, format="png", dpi=100)
    atomic_write(os.path.join(out, FIGURE_FILE), picture.getvalue())
    if not args.quiet:
        _print_table(rows, study, out)
    return 0


def _default_out() -> str:
    """runs/study-depth-<timestamp>/, with -2, -3, ... appended if that folder exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.join("runs", f"study-depth-{stamp}")
    k = 2
    while os.path.exists(out):
        out = os.path.join("runs", f"study-depth-{stamp}-{k}")
        k += 1
    return out


def _progress(console: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """A rich progress bar over every epoch of every run, and the function that moves it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.fields[run]:<16}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, transient=False,
    )  # fmt: skip
    total = len(args.depths) * len(args.activations) * args.epochs
    task = progress.add_task("study", total=total, run="")

    def report(configuration: str, Q: int, epoch: int) -> None:
        progress.update(task, advance=1, run=f"{configuration} Q={Q}")

    return progress, report


def _csv(rows: list[dict[str, Any]]) -> bytes:
    """Rows of equal keys as CSV text (numbers with repr's full precision)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def _print_table(rows: list[dict[str, Any]], study: Any, out: str) -> None:
    """The measured ratios: RMS beta^1 / RMS beta^{Q-1} at the start and after training."""
    from rich.table import Table

    title = (f"betaprop study depth: {study.data}, width {study.width}, {study.epochs} epochs; "
             f"{study.n_train} training rows, score on {study.n_test} held-out rows")  # fmt: skip
    table = Table(title=title)
    headings = ("config", "Q", "β1 start", "β(Q-1) start", "β1/β(Q-1) start",
                "β1/β(Q-1) end", "train loss", "test score")  # fmt: skip
    for heading in headings:
        table.add_column(heading, justify="left" if heading == "config" else "right")
    for row in rows:
        name = row["configuration"] + (" (diverged)" if row["diverged"] else "")
        table.add_row(
            name, str(row["Q"]), f"{row['beta_1_start']:.2e}",
            f"{row['beta_last_hidden_start']:.2e}", f"{row['ratio_start']:.2e}",
            f"{row['ratio_end']:.2e}", f"{row['loss_last_epoch']:.4f}", f"{row['test_score']:.4f}",
        )  # fmt: skip
    console = rich_console()
    console.print(table)
    console.print(f"wrote {os.path.join(out, FIGURE_FILE)}, {TABLE_FILE}, {BETA_FILE}")
