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
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


def main() -> int:
    """Run the ``betaprop`` command (arguments from ``sys.argv``); returns the exit code."""
    interrupted = False

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    def unraisable(report: Any) -> None:  # an interrupt in a __del__: counted, not printed
        if not isinstance(report.exc_value, KeyboardInterrupt):
            sys.__unraisablehook__(report)

    # a shell that starts a job in the background ignores SIGINT for it: so do we
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_interrupt)
        sys.unraisablehook = unraisable
    code: int | None = None
    try:
        try:
            from betaprop.cli import main as command

            code = command()
        finally:  # the command is over: a late Ctrl-C changes nothing
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code is None or (interrupted and code < 128):  # betaprop.cli.main said it otherwise
        print("betaprop: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    return code
