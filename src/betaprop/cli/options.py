"""What every command shares: the user error and exit codes, the argument parser that reports
one line, the option types, and the rich console that prints tables and progress."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from ..engine.activations import ACTIVATIONS
from ..engine.activations import names as activation_names
from ..engine.init import RULES
from ..engine.losses import LOSSES

__all__ = [
    "UserError",
    "Parser",
    "EXIT_USER_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "positive_float",
    "non_negative_float",
    "fraction",
    "int_at_least",
    "int_list_at_least",
    "hidden_sizes",
    "layer_sizes",
    "float_list",
    "hidden_activations",
    "add_layer_options",
    "layer_settings",
    "refuse_constant_output",
    "option_error",
    "separator",
    "refuse_overwriting",
    "rich_console",
    "fail",
]

EXIT_USER_ERROR = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


class UserError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
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


def positive_float(text: str) -> float:
    return _number(text, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    return _number(text, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")


def fraction(text: str) -> float:
    return _number(text, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    return parse


def _int_list(text: str, low: int, example: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = [low - 1]
    if not values or min(values) < low:
        raise argparse.ArgumentTypeError(
            f"must be integers >= {low} separated by commas (e.g. {example}), got {text!r}"
        )
    return values


def int_list_at_least(low: int, example: str) -> Callable[[str], list[int]]:
    """An option type: integers >= ``low`` separated by commas (``example`` in the error)."""
    return lambda text: _int_list(text, low, example)


def _sizes_list(text: str, allow_empty: bool) -> list[int]:
    if allow_empty and text.strip().lower() in ("", "none"):
        return []
    return _int_list(text, 1, "128,64")


def hidden_sizes(text: str) -> list[int]:
    """Hidden layer sizes N_1,...,N_{Q-1}; 'none' (or nothing) for no hidden layer."""
    return _sizes_list(text, allow_empty=True)


def layer_sizes(text: str) -> list[int]:
    """All layer sizes N_0,...,N_Q, at least two."""
    values = _sizes_list(text, allow_empty=False)
    if len(values) < 2:
        raise argparse.ArgumentTypeError(
            f"must name at least 2 layers N_0,...,N_Q (e.g. 2,3,2), got {text!r}"
        )
    return values


def float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = [math.nan]
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"must be finite numbers separated by commas, got {text!r}"
        )
    return values


def hidden_activations(text: str, n_hidden: int) -> list[str]:
    """The --activation option: one hidden activation name for all layers, or one per layer."""
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


def add_layer_options(parser: argparse.ArgumentParser, past_seed: bool = False) -> None:
    """--batch-norm, --dropout P and --init NAME: the hidden layers' remedies and step 1;
    with ``past_seed`` also --layer-norm and --residual (train and trace)."""
    norm = parser.add_mutually_exclusive_group()
    norm.add_argument(
        "--batch-norm",
        action="store_true",
        help="batch normalisation on every hidden layer (u = gamma (s - mu) / sigma + shift)",
    )
    if past_seed:
        norm.add_argument(
            "--layer-norm",
            action="store_true",
            help="layer normalisation on every hidden layer (mu, sigma per example)",
        )
        parser.add_argument(
            "--residual",
            action="store_true",
            help="residual hidden layers: y^q = y^{q-1} + f(u^q) wherever N_q = N_{q-1}",
        )
    parser.add_argument(
        "--dropout",
        type=fraction,
        default=0.0,
        metavar="P",
        help="inverted dropout of rate P in [0, 1) on every hidden layer; default 0",
    )
    parser.add_argument(
        "--init",
        choices=sorted(RULES),
        help="weight initialisation rule for every layer (default: by activation)",
    )


def layer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Network`` that ``add_layer_options`` asked for."""
    normalization = None
    if getattr(args, "batch_norm", False):
        normalization = "batch"
    elif getattr(args, "layer_norm", False):
        normalization = "layer"
    return {
        "normalization": normalization,
        "residual": getattr(args, "residual", False),
        "dropout": getattr(args, "dropout", 0.0),
        "init": getattr(args, "init", None),
    }


def separator(text: str) -> str:
    """--sep: one character (``tab`` or ``\\t`` for a tab) that is not a quote or a line break.

    Every reader of a table (pandas' C parser, the numbers reader, Python's ``csv``) takes one
    character; a longer separator would need pandas' slow Python engine for some of them only.
    """
    value = "\t" if text in ("tab", "\\t") else text
    if len(value) != 1 or value in ('"', "\n", "\r"):
        raise argparse.ArgumentTypeError(
            f"must be one character other than a quote or a line break ('tab' for a tab), "
            f"got {text!r}"
        )
    return value


def refuse_constant_output(output: str | None, loss: str, n_outputs: int, why: str) -> None:
    """Refuse an output activation that normalises over the output layer (softmax) on a
    layer of one neuron: y = e^s / e^s = 1 whatever the input, so nothing can be learned.
    ``output`` None is the loss's own (softmax for cross-entropy); ``why`` says where the one
    output comes from (``--task regression``)."""
    name = output if output is not None else LOSSES[loss].canonical_output
    if n_outputs == 1 and not ACTIVATIONS[name].elementwise:
        option = f"--output {name}" if output is not None else f"--loss {loss} (output {name})"
        raise UserError(
            f"{option} needs at least 2 outputs, got 1 for {why}: {name} of one number is "
            "the constant 1, so nothing can be learned"
        )


def option_error(error: Exception) -> UserError:
    """A ValueError of the library about an argument that is also a command-line option
    ("output must be ...") as the option's UserError ("--output must be ...")."""
    text = str(error)
    for name in ("output", "loss", "activation", "init", "dropout"):
        if text.startswith(f"{name} must"):
            return UserError(f"--{text}")
    return UserError(text)


# ----------------------------------------------------------------------------- files
def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: ``os.path.samefile`` follows symbolic links and
    compares device and inode, so a hard link is the same file too."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or holds a NUL byte)
        return False


def refuse_overwriting(
    outputs: Iterable[tuple[str, str | None]], inputs: Iterable[tuple[str, str | None]]
) -> None:
    """Raise UserError if a file a command writes is one of the files it reads.

    ``outputs`` are (option, path) pairs, ``inputs`` (what, path) pairs, e.g.
    ``[("--out", "p.csv")]`` and ``[("the model file", "m.safetensors"), ("the data file",
    "d.csv")]``; a None path is left out. Called by every command that writes, before it
    reads or writes anything, so that nothing is lost.
    """
    sources = [(what, path) for what, path in inputs if path]
    for option, target in outputs:
        if not target:
            continue
        for what, source in sources:
            if _same_file(target, source):
                raise UserError(
                    f"{option} must not be {what} {source!r} (the same file), got {target!r}; "
                    "nothing written"
                )


# ----------------------------------------------------------------------------- output
def rich_console(stderr: bool = False, quiet: bool = False) -> Any:
    """A rich console: tables to stdout, progress to stderr (``stderr=True``).

    Markup and emoji codes are off: what it prints holds names, labels and paths from the
    user's files, and a column named ``[/bold]`` or a label ``[red]c1[/red]`` or ``:cat:``
    must print as written (styles are given as ``style=``, never inside the text). A closed
    stdout (``betaprop info M | head -1``) raises BrokenPipeError, which ``main`` ends quietly.
    """
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich's own exits with code 1
            raise BrokenPipeError

    return _Console(
        stderr=stderr, quiet=quiet, highlight=False, soft_wrap=False, markup=False, emoji=False
    )


def fail(message: str) -> None:
    """Print an error as one line on stderr, prefixed ``betaprop: error:`` unless it names
    the command already; under MPI the line names the rank (``betaprop: rank 1: error:``)."""
    from ..training.distributed import rank_label

    text = " ".join(message.split())
    if not text.startswith("betaprop"):
        text = f"betaprop: error: {text}"
    if text.startswith("betaprop: "):
        text = f"betaprop: {rank_label()}{text[len('betaprop: ') :]}"
    print(text, file=sys.stderr)
