"""The ``betaprop`` command: train, trace, gradcheck, info, predict, evaluate, export, bench.

Every user error (a bad option, a bad data file, a damaged model file) ends the command
with one line on stderr, exit code 2, no traceback and nothing written. A failed gradient
check and a diverging training run exit with code 1. Progress and tables use rich and go
to stderr and stdout respectively; ``--quiet`` silences both.

One module per command group: ``train`` (with ``settings``, ``runs`` and ``progress``:
training, ``--resume``, the run folder ``write_run`` writes, the progress bar), ``models``
(info, predict, evaluate), ``explain`` (trace, gradcheck), ``export`` (ONNX) and ``bench``;
``options`` holds what they share (option types, ``UserError``, exit codes).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..files.datasets import DataError
from ..files.model import ModelFileError
from . import bench, explain, export, models, study, train
from .options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USER_ERROR, Parser, UserError, fail
from .runs import TrainRun, write_run
from .train import train_run

__all__ = ["main", "build_parser", "train_run", "write_run", "TrainRun", "UserError"]


def build_parser() -> Parser:
    """The argument parser of the ``betaprop`` command and its subcommands."""
    parser = Parser(
        prog="betaprop",
        description="Multilayer perceptrons trained by backpropagation, in NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"betaprop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train.add_command(commands)
    explain.add_commands(commands)
    models.add_commands(commands)
    export.add_parser(commands)
    study.add_command(commands)
    commands.add_parser(
        "bench", help="benchmarks against scikit-learn and PyTorch (betaprop.bench)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``betaprop`` command; returns the exit code.

    A closed stdout (``betaprop info M | head -1``) ends the command quietly with exit code
    0, as ``head`` users expect: what was wanted has been read. Ctrl-C ends it with one line
    and 130. The console script's entry point, ``_betaprop_command.main``, calls this after
    installing its Ctrl-C handler, so that a Ctrl-C during the imports is one line too.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _run(args_list)
        sys.stdout.flush()  # a closed pipe shows here, not as an error at exit
        return code
    except (UserError, DataError, ModelFileError) as error:
        fail(str(error))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
        print("betaprop: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `betaprop predict ... | head`: the reader has what it wanted
        _quiet_stdout()
        return 0
    except OSError as error:  # a full disk or device under stdout (`> /dev/full`), an I/O error
        _quiet_stdout()
        where = f": {error.filename}" if error.filename else " (writing the output)"
        fail(f"{error.strerror or error}{where}")
        return EXIT_FAILED


def _run(args_list: list[str]) -> int:
    """Parse the arguments and run the command's handler."""
    if args_list and args_list[0] == "bench":
        return bench.run(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    args.argv = args_list  # a checkpoint keeps the command line, for --resume
    return int(args.handler(args))


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so that what is left in its buffer goes nowhere at exit,
    instead of raising BrokenPipeError again (Python's "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's captured stdout)
        pass
