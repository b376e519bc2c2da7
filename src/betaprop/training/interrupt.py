"""Ctrl-C during training: the first one finishes the mini-batch, a second one stops at once.

SIGTERM (what ``kill``, ``timeout``, Slurm and container runtimes send) and SIGHUP (a closed
terminal) are treated as Ctrl-C: the first finishes the mini-batch and training returns with
usable weights (the command then writes its checkpoint and model), a second stops at once.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["InterruptGuard", "SIGNALS"]


# the signals that ask training to stop, where the platform has them
SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class InterruptGuard:
    """While active in the main thread, the first stop signal only sets ``requested``.

    ``fit`` checks the flag after every mini-batch; ``signal`` is the number of the signal
    that asked (SIGINT for Ctrl-C). A second signal raises ``KeyboardInterrupt`` at once.
    The previous handlers are restored on exit. Nothing is installed outside the main
    thread, and a signal is left alone when it is ignored or its handler was not installed
    from Python (it could not be restored); ``installed`` is whether SIGINT's was.
    """

    def __init__(self) -> None:
        self.requested = False
        self.installed = False
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        for number in SIGNALS:
            try:
                previous = signal.getsignal(number)
                if previous is None or previous is signal.SIG_IGN:
                    continue
                signal.signal(number, self._handle)
            except (ValueError, OSError):  # no signals here (an embedded interpreter)
                continue
            self.previous[number] = previous
        self.installed = signal.SIGINT in self.previous
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum

    def __exit__(self, *exc: object) -> None:
        for number, previous in self.previous.items():
            signal.signal(number, previous)
        self.previous.clear()
        self.installed = False
