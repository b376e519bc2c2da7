"""The ``betaprop`` console command, from its first line: Ctrl-C at any moment is one line.

``import betaprop`` loads NumPy and SciPy (most of a second), and the console script imports
its entry point before it calls it: an entry point inside the ``betaprop`` package would run
only after those imports, so a Ctrl-C during them ended in a KeyboardInterrupt traceback.
This module is that entry point (``[project.scripts]`` in pyproject.toml); it imports only
``signal`` and ``sys``, installs the Ctrl-C handler, then imports and runs
``betaprop.cli.main``. A Ctrl-C at any moment ends the command with one line on stderr,
``betaprop: interrupted``, and exit code 130 (128 + SIGINT), also when the interrupt landed
where Python can only ignore it (a ``__del__`` method, a weakref callback). Training keeps
its own handler while it runs (the first Ctrl-C finishes the mini-batch and writes a
checkpoint; ``betaprop.cli.train``). ``betaprop.cli.main`` stays usable in-process: it changes
no process-wide state; this module owns the process and may.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C
# what stops the command, as Ctrl-C does: kill, timeout, Slurm, container runtimes; a closed
# terminal. Training puts its own handler in while it runs (it finishes the mini-batch).
# The same tuple as betaprop.training.interrupt.SIGNALS, written here because importing
# betaprop loads NumPy, which is what a Ctrl-C may interrupt.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def main() -> int:
    """Run the ``betaprop`` command (arguments from ``sys.argv``); returns the exit code."""
    stopped_by: list[int] = []  # the stop signal that arrived outside training, if one did

    def on_stop(signum: int, frame: object) -> None:
        stopped_by.append(signum)
        raise KeyboardInterrupt

    def unraisable(report: object) -> None:  # an interrupt in a __del__: counted, not printed
        if not isinstance(getattr(report, "exc_value", None), KeyboardInterrupt):
            sys.__unraisablehook__(report)  # type: ignore[arg-type]

    # a signal the shell ignores for us (SIGINT for a background job, SIGHUP under nohup) or
    # handles otherwise stays as it is
    defaults = {signal.SIGINT: signal.default_int_handler}
    installed = []
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is defaults.get(number, signal.SIG_DFL):
            signal.signal(number, on_stop)
            installed.append(number)
    sys.unraisablehook = unraisable
    code: int | None = None
    try:
        try:
            from betaprop.cli import main as command

            code = command()
        finally:  # the command is over: a late signal changes nothing
            for number in installed:
                signal.signal(number, signal.SIG_IGN)
    except KeyboardInterrupt:
        for number in installed:
            signal.signal(number, signal.SIG_IGN)
    if stopped_by and stopped_by[0] != signal.SIGINT:
        if code is None:
            print(f"betaprop: stopped by {signal.Signals(stopped_by[0]).name}", file=sys.stderr)
        return 128 + stopped_by[0]
    if code is None or (stopped_by and code < 128):  # betaprop.cli.main said it otherwise
        print("betaprop: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    return code
